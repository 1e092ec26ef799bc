/**
 * Loading one data file ("source") into a prompt table: read the records (JSONL, JSON array or Parquet, by
 * extension), detect or apply the format, normalise each record, check that image files exist, and record every
 * skipped row (malformed line, invalid row, missing image) with its file and line.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Table } from 'apache-arrow';
import { detectFormat, DETECT_SAMPLE, normaliserFor } from './detect.js';
import { DataError, type SkipLog } from './errors.js';
import { InvalidRowError, type RowContext } from './formats/common.js';
import { readJsonArray, readJsonl, type RawItem } from './jsonl.js';
import { readParquet } from './parquet.js';
import { concatTables, rowsToTable } from './table.js';
import type { DatasetFormat, PromptRow } from './types.js';

/** One data file and how to read it. */
export interface DataSource {
  /** A .jsonl / .ndjson, .json (array of rows) or .parquet file. */
  path: string;
  /** Folder relative image paths resolve against. Default: the data file's folder. */
  imageFolder?: string;
  /** The file's format; 'auto' (default) detects it from the first rows. */
  format?: DatasetFormat | 'auto';
  /** Reward method for rows that name none (VLM-R1's per-file --reward_method). */
  rewardMethod?: string | null;
}

/** What loading a source produced. */
export interface LoadedSource {
  file: string;
  /** The format the rows were read as; null when the file had no readable record to detect it from. */
  format: DatasetFormat | null;
  /** The usable rows. */
  table: Table;
  /** Records in the file, bad ones included. */
  total: number;
}

/** Rows per Arrow chunk while loading (bounds the JS-object copy of a large file). */
const CHUNK_ROWS = 1024;
/** Image files checked at once. */
const STAT_CONCURRENCY = 32;

function readerFor(file: string): (file: string) => AsyncGenerator<RawItem> {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.parquet') return readParquet;
  if (ext === '.json') return readJsonArray;
  if (ext === '.jsonl' || ext === '.ndjson') return readJsonl;
  throw new DataError('ERR_DATA_READ', `Unknown data file type "${ext || '(no extension)'}" of ${file}.`,
    'Use a .jsonl / .ndjson (one JSON object per line), .json (an array of objects) or .parquet file.');
}

async function imageMissing(file: string): Promise<boolean> {
  try {
    return !(await stat(file)).isFile();
  } catch {
    return true;
  }
}

/** Check the path images of `rows`; returns, per row, the first missing image's index or -1. */
async function findMissingImages(rows: readonly PromptRow[]): Promise<number[]> {
  const jobs: Array<{ row: number; k: number; file: string }> = [];
  rows.forEach((r, row) => r.images.forEach((img, k) => { if ('path' in img) jobs.push({ row, k, file: img.path }); }));
  const missing = new Array<number>(rows.length).fill(-1);
  for (let i = 0; i < jobs.length; i += STAT_CONCURRENCY) {
    const batch = jobs.slice(i, i + STAT_CONCURRENCY);
    const res = await Promise.all(batch.map((j) => imageMissing(j.file)));
    batch.forEach((j, b) => { if (res[b] && (missing[j.row]! < 0 || j.k < missing[j.row]!)) missing[j.row] = j.k; });
  }
  return missing;
}

/**
 * Load one source file. Skipped rows go to `skips`; the file-level problems (unreadable file, unknown format)
 * throw DataError.
 */
export async function loadSource(spec: DataSource, skips: SkipLog, options: { checkImages: boolean }): Promise<LoadedSource> {
  const file = path.resolve(spec.path);
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) {
    throw new DataError('ERR_DATA_READ', `Data file not found: ${file}`, 'Check the path in the dataset sources (relative paths resolve against the working directory).', {
      cause: st,
    });
  }
  if (!st.isFile()) throw new DataError('ERR_DATA_READ', `Data source ${file} is not a file.`, 'List each .jsonl / .json / .parquet file as its own source.');
  const read = readerFor(file);
  const imageFolder = path.resolve(spec.imageFolder ?? path.dirname(file));
  let format: DatasetFormat | undefined = spec.format === 'auto' ? undefined : spec.format;
  const defaultRewardMethod = spec.rewardMethod ?? null;
  const tables: Table[] = [];
  let pending: PromptRow[] = [];
  let buffered: RawItem[] | undefined = format === undefined ? [] : undefined;
  let total = 0;
  let bufferedRecords = 0;

  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    let rows = pending;
    pending = [];
    if (options.checkImages) {
      const missing = await findMissingImages(rows);
      rows = rows.filter((r, i) => {
        const k = missing[i]!;
        if (k < 0) return true;
        const img = r.images[k] as { path: string };
        skips.record({ source: r.source, reason: 'missing-image', message: `image ${k + 1} of ${r.images.length} not found: ${img.path}` });
        return false;
      });
    }
    if (rows.length > 0) tables.push(rowsToTable(rows));
  };
  const handle = async (item: RawItem): Promise<void> => {
    const source = { file, line: item.line };
    if ('error' in item) {
      skips.record({ source, reason: 'malformed', message: item.error });
      return;
    }
    const ctx: RowContext = { source, imageFolder, defaultRewardMethod };
    try {
      pending.push(normaliserFor(format!)(item.record, ctx));
    } catch (err) {
      if (!(err instanceof InvalidRowError)) throw err;
      skips.record({ source, reason: 'invalid', message: `${err.message} (read as ${format})` });
    }
    if (pending.length >= CHUNK_ROWS) await flush();
  };
  const startBuffered = async (): Promise<void> => {
    const items = buffered!;
    buffered = undefined;
    if (bufferedRecords === 0 && items.length > 0) {
      // Only malformed lines: count them (the dataset's bad-fraction check reports it) rather than guess a format.
      for (const i of items) if ('error' in i) skips.record({ source: { file, line: i.line }, reason: 'malformed', message: i.error });
      return;
    }
    format = detectFormat(items.flatMap((i) => ('record' in i ? [i.record] : [])), file);
    for (const i of items) await handle(i);
  };

  for await (const item of read(file)) {
    total++;
    if (buffered) {
      buffered.push(item);
      if ('record' in item) bufferedRecords++;
      if (bufferedRecords >= DETECT_SAMPLE) await startBuffered();
      continue;
    }
    await handle(item);
  }
  if (buffered) await startBuffered();
  await flush();
  return { file, format: format ?? null, table: concatTables(tables), total };
}
