/**
 * Parquet reader on hyparquet (+ hyparquet-compressors for gzip/zstd/brotli/lz4): one row group at a time, rows as
 * objects with nested structs and lists assembled (`prompt: [{role, content}]`, `images: [{bytes, path}]`,
 * `reward_model: {ground_truth}`).
 *
 * Byte columns without a UTF8 annotation stay bytes (`utf8: false`), so image bytes are never mangled into strings;
 * the format readers decode text from bytes where they expect text. Row numbers are 1-based over the whole file.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataError } from './errors.js';
import type { RawItem } from './jsonl.js';

async function open(file: string): Promise<{ buffer: AsyncBuffer; metadata: FileMetaData }> {
  let buffer: AsyncBuffer;
  try {
    buffer = await asyncBufferFromFile(file);
  } catch (err) {
    throw new DataError('ERR_DATA_READ', `Cannot read ${file}: ${(err as Error).message}`, 'Check that the file exists and is readable.', {
      cause: err,
    });
  }
  try {
    return { buffer, metadata: await parquetMetadataAsync(buffer) };
  } catch (err) {
    throw new DataError('ERR_DATA_PARQUET', `${file} is not a readable Parquet file: ${(err as Error).message}`,
      'Check that the download is complete (the footer is at the end of the file), or re-export the data.', { cause: err });
  }
}

/** Number of rows of a Parquet file (from its footer). */
export async function parquetRowCount(file: string): Promise<number> {
  return Number((await open(file)).metadata.num_rows);
}

/** Records of a Parquet file, row group by row group. A corrupt row group stops with DataError `ERR_DATA_PARQUET`. */
export async function* readParquet(file: string): AsyncGenerator<RawItem> {
  const { buffer, metadata } = await open(file);
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, rowStart: start, rowEnd: end, utf8: false, compressors });
    } catch (err) {
      throw new DataError('ERR_DATA_PARQUET', `Cannot decode rows ${start + 1}–${end} of ${file}: ${(err as Error).message}`,
        'The file is damaged or uses an unsupported encoding; re-export it (e.g. with pyarrow) and retry.', { cause: err });
    }
    for (let i = 0; i < rows.length; i++) yield { line: start + i + 1, record: rows[i]! };
    start = end;
  }
}
