/**
 * MetricsLog: RUN_DIR/metrics.jsonl, one StepMetrics JSON object per line, one line per optimizer step.
 *
 * Writing: each append validates the object (zod; a wrong field is a TypeError naming it), serialises it to one
 * line and hands it to the OS with a single write on a file opened for appending, so a process crash loses at
 * most the line being written (set `fsync: true` to also survive a power cut, at the cost of a disk flush per
 * step). Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".
 *
 * Reading is tolerant of the one thing a crash leaves behind: a cut last line. It is skipped with a warning.
 * Any other unreadable line is real corruption and throws a ReportError with the line number.
 *
 * Opening an existing log appends to it (a resumed run continues the same file). A cut last line is removed
 * first, and `resumeFromStep: k` drops the lines of steps after k (logged by the crashed run after the checkpoint
 * it resumes from), so the file holds each step once.
 *
 * Users can load it with anything that reads JSON Lines, e.g. pandas.read_json(path, lines=True) or
 * `jq -s` (nested objects: pandas.json_normalize).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { ReportError } from './errors.js';
import { validateStepMetrics, type StepMetrics } from './step-metrics.js';

/** The metrics file's name inside a run directory. */
export const METRICS_FILE = 'metrics.jsonl';

/** Options of {@link MetricsLog}. */
export interface MetricsLogOptions {
  /** fsync after every line (default false: the OS has the line, which survives a crash of this process). */
  fsync?: boolean;
  /** Resuming from a checkpoint at step k: drop existing lines with step > k before appending. */
  resumeFromStep?: number;
  /** Receives warnings (a cut last line was removed or skipped). Default: console.warn. */
  onWarning?: (message: string) => void;
}

/** Options of {@link MetricsLog.read}. */
export interface ReadMetricsOptions {
  /** Receives warnings (a cut last line was skipped). Default: console.warn. */
  onWarning?: (message: string) => void;
}

function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value === 'NaN') return NaN;
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  return value;
}

/** Serialise one StepMetrics to its JSONL line (with the trailing newline). */
export function formatMetricsLine(m: StepMetrics): string {
  return `${JSON.stringify(m, replacer)}\n`;
}

interface ParsedLines {
  metrics: StepMetrics[];
  /** Byte length of the text up to and including the last good line's newline (for repairing the file). */
  goodLength: number;
  /** The last line was cut (skipped). */
  cut: boolean;
}

function parseLines(text: string, file: string, onWarning: (m: string) => void): ParsedLines {
  const lines = text.split('\n');
  const metrics: StepMetrics[] = [];
  let cut = false;
  let goodChars = 0;
  let offset = 0;
  // Only the last non-blank line can have been cut by a crash.
  let lastContent = lines.length - 1;
  while (lastContent > 0 && (lines[lastContent] as string).trim() === '') lastContent--;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const isLast = i === lines.length - 1;
    const lineEnd = offset + line.length + (isLast ? 0 : 1);
    if (line.trim() === '') {
      offset = lineEnd;
      if (!isLast) goodChars = lineEnd;
      continue;
    }
    let parsed: StepMetrics | undefined;
    let problem = '';
    try {
      parsed = validateStepMetrics(JSON.parse(line, reviver), `line ${i + 1}`);
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    // A complete last line without its newline is fine; a broken one is what a crash leaves.
    const lastContentLine = i === lastContent;
    if (parsed) {
      metrics.push(parsed);
      goodChars = lineEnd;
    } else if (lastContentLine) {
      cut = true;
      onWarning(`${file}: skipped the last line (${line.length} characters), which is incomplete or invalid — ` +
        `probably cut by a crash while it was written (${problem})`);
    } else {
      throw new ReportError('ERR_REPORT_CORRUPT_METRICS', `${file}: line ${i + 1} is not a valid metrics line: ${problem}`,
        `Fix or delete line ${i + 1} of ${file} (each line must be one StepMetrics JSON object).`);
    }
    offset = lineEnd;
  }
  return { metrics, goodLength: Buffer.byteLength(text.slice(0, goodChars), 'utf8'), cut };
}

/** Appends one line per step to RUN_DIR/metrics.jsonl. Use {@link MetricsLog.read} to read it back. */
export class MetricsLog {
  /** Absolute or relative path of the metrics file. */
  readonly path: string;
  /** The last step in the file when it was opened (0 for a new file). */
  readonly lastStepOnOpen: number;
  private fd: number | undefined;
  private readonly fsync: boolean;

  /**
   * Open (creating RUN_DIR and the file when missing) RUN_DIR/metrics.jsonl for appending.
   * @param runDir the run directory
   */
  constructor(runDir: string, options: MetricsLogOptions = {}) {
    if (typeof runDir !== 'string' || runDir === '') throw new TypeError('MetricsLog: runDir must be a non-empty string');
    const onWarning = options.onWarning ?? ((m: string) => console.warn(m));
    const resume = options.resumeFromStep;
    if (resume !== undefined && (!Number.isInteger(resume) || resume < 0)) {
      throw new RangeError(`MetricsLog: resumeFromStep must be a non-negative integer, got ${resume}`);
    }
    this.fsync = options.fsync ?? false;
    mkdirSync(runDir, { recursive: true });
    this.path = join(runDir, METRICS_FILE);
    let lastStep = 0;
    if (existsSync(this.path) && statSync(this.path).size > 0) {
      const text = readFileSync(this.path, 'utf8');
      const parsed = parseLines(text, this.path, onWarning);
      let keep = parsed.metrics;
      if (resume !== undefined) keep = keep.filter((m) => m.step <= resume);
      if (keep.length !== parsed.metrics.length || parsed.cut || Buffer.byteLength(text, 'utf8') !== parsed.goodLength) {
        if (keep.length !== parsed.metrics.length) {
          onWarning(`${this.path}: dropped ${parsed.metrics.length - keep.length} line(s) after step ${resume} (resuming from step ${resume})`);
        }
        // Rewrite through a temp file so a crash during the repair leaves either the old or the new file.
        const tmp = `${this.path}.tmp-${process.pid}`;
        writeFileSync(tmp, keep.map(formatMetricsLine).join(''));
        renameSync(tmp, this.path);
      }
      for (const m of keep) lastStep = Math.max(lastStep, m.step);
    }
    this.lastStepOnOpen = lastStep;
    this.fd = openSync(this.path, 'a');
  }

  /**
   * Validate `metrics` and append it as one line. The line reaches the OS before this returns.
   * @throws TypeError naming the first invalid field; ReportError when the log is closed
   */
  append(metrics: StepMetrics): void {
    if (this.fd === undefined) {
      throw new ReportError('ERR_REPORT_CLOSED', `MetricsLog for ${this.path} is closed`, 'Open a new MetricsLog to append more steps.');
    }
    validateStepMetrics(metrics, `MetricsLog.append: step ${String((metrics as { step?: unknown } | null)?.step)}`);
    const buf = Buffer.from(formatMetricsLine(metrics), 'utf8');
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done);
    if (this.fsync) fsyncSync(this.fd);
  }

  /** Close the file (idempotent). */
  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Read a metrics log back, in file order.
   * @param runDirOrFile a run directory (its metrics.jsonl is read) or the path of a .jsonl file
   * @throws ReportError when the file is missing or a line other than the last is invalid
   */
  static read(runDirOrFile: string, options: ReadMetricsOptions = {}): StepMetrics[] {
    const onWarning = options.onWarning ?? ((m: string) => console.warn(m));
    let file = runDirOrFile;
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, METRICS_FILE);
    if (!existsSync(file)) {
      throw new ReportError('ERR_REPORT_NO_METRICS', `no metrics log at ${file}`,
        'Pass the run directory the trainer wrote (it holds metrics.jsonl), or the path of the .jsonl file.');
    }
    return parseLines(readFileSync(file, 'utf8'), file, onWarning).metrics;
  }
}
