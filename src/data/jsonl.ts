/**
 * JSON Lines and JSON-array readers. Each yields the file's records with their 1-based line (or item) number; a line
 * that is not a JSON object is yielded as an error so the loader can skip it with a warning naming the line.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { DataError } from './errors.js';
import { isRecord } from './formats/common.js';

/** One item of a data file: a record, or why the line could not be read. */
export type RawItem = { line: number; record: Record<string, unknown> } | { line: number; error: string };

function shorten(text: string): string {
  const t = text.trim();
  return t.length > 60 ? `${t.slice(0, 60)}…` : t;
}

/** Records of a JSON Lines file. Blank lines are ignored; a line that is not a JSON object yields an error item. */
export async function* readJsonl(file: string): AsyncGenerator<RawItem> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim().length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        yield { line, error: `not valid JSON (${(err as Error).message}): ${shorten(text)}` };
        continue;
      }
      if (!isRecord(value)) {
        yield { line, error: `expected a JSON object per line, got ${Array.isArray(value) ? 'an array' : typeof value}: ${shorten(text)}` };
        continue;
      }
      yield { line, record: value };
    }
  } catch (err) {
    throw new DataError('ERR_DATA_READ', `Cannot read ${file}: ${(err as Error).message}`, 'Check that the file exists and is readable.', {
      cause: err,
    });
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** Records of a .json file holding an array of objects; item n (1-based) is reported as line n. */
export async function* readJsonArray(file: string): AsyncGenerator<RawItem> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DataError('ERR_DATA_READ', `Cannot read ${file}: ${(err as Error).message}`, 'Check that the file exists and is readable.', {
      cause: err,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataError(
      'ERR_DATA_READ',
      `${file} is not valid JSON: ${(err as Error).message}`,
      'A .json data file must hold one array of row objects; for one object per line use the .jsonl extension.',
      { cause: err },
    );
  }
  if (!Array.isArray(value)) {
    throw new DataError('ERR_DATA_READ', `${file} holds ${typeof value === 'object' && value !== null ? 'an object' : typeof value}, not an array of rows.`,
      'A .json data file must hold one array of row objects; for one object per line use the .jsonl extension.');
  }
  for (let i = 0; i < value.length; i++) {
    const item = value[i] as unknown;
    if (isRecord(item)) yield { line: i + 1, record: item };
    else yield { line: i + 1, error: `expected an object, got ${Array.isArray(item) ? 'an array' : item === null ? 'null' : typeof item}` };
  }
}
