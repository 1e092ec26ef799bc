/**
 * Atomic file writes: the data goes to a temporary file beside the target, is flushed to disk, then renamed over
 * the target, so a reader (or a crash) never sees a half-written file.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Writes `data` (one buffer/string, or several written in order) to `file` atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly (string | Uint8Array)[]): void {
  const chunks = Array.isArray(data) ? (data as readonly (string | Uint8Array)[]) : [data as string | Uint8Array];
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(tmp, 'wx');
  let ok = false;
  try {
    for (const c of chunks) {
      const bytes = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    }
    fsyncSync(fd);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) unlinkSync(tmp);
  }
  try {
    renameSync(tmp, file);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}
