/**
 * Prompt rows held as an Apache Arrow table: one row per prompt, image bytes in a binary column (read back as
 * zero-copy views), JSON values (messages, ground truth, extra columns) as utf8 JSON text.
 *
 *   id: utf8, file: utf8, line: int32, format: utf8, messages: utf8 (JSON), images: list<struct<path: utf8, bytes: binary>>,
 *   videos: list<struct<path: utf8, frames: list<struct<path: utf8, bytes: binary>>>>,
 *   ground_truth: utf8 (JSON), reward_method: utf8?, data_source: utf8?, extra: utf8 (JSON)
 */
import { Binary, Field, Int32, List, Struct, Table, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import type { DatasetFormat, PromptRow, RowImage, RowMessage, RowVideo } from './types.js';

const imageStruct = new Struct([new Field('path', new Utf8(), true), new Field('bytes', new Binary(), true)]);
const imagesType = new List(new Field('item', imageStruct, true));
// A video: a file / frame-directory path, or its frames (images).
const videoStruct = new Struct([new Field('path', new Utf8(), true), new Field('frames', imagesType, true)]);
const videosType = new List(new Field('item', videoStruct, true));

function imageCell(img: RowImage): { path: string | null; bytes: Uint8Array | null } {
  return 'bytes' in img ? { path: null, bytes: img.bytes } : { path: img.path, bytes: null };
}

function videoCell(v: RowVideo): { path: string | null; frames: ReturnType<typeof imageCell>[] | null } {
  return 'path' in v ? { path: v.path, frames: null } : { path: null, frames: v.frames.map(imageCell) };
}

function readImages(list: Vector | null): RowImage[] {
  const images: RowImage[] = [];
  if (list) {
    for (let k = 0; k < list.length; k++) {
      const cell = list.get(k) as { path: string | null; bytes: Uint8Array | null };
      images.push(cell.bytes ? { bytes: cell.bytes } : { path: cell.path ?? '' });
    }
  }
  return images;
}

/** Build a prompt table from rows (the rows' image bytes are copied into the table). */
export function rowsToTable(rows: readonly PromptRow[]): Table {
  const col = <T>(fn: (r: PromptRow) => T): T[] => rows.map(fn);
  const vectors: Record<string, Vector> = {
    id: vectorFromArray(col((r) => r.id), new Utf8()),
    file: vectorFromArray(col((r) => r.source.file), new Utf8()),
    line: vectorFromArray(col((r) => r.source.line), new Int32()),
    format: vectorFromArray(col((r) => r.format), new Utf8()),
    messages: vectorFromArray(col((r) => JSON.stringify(r.messages)), new Utf8()),
    images: vectorFromArray(col((r) => r.images.map(imageCell)), imagesType),
    videos: vectorFromArray(col((r) => (r.videos ?? []).map(videoCell)), videosType),
    ground_truth: vectorFromArray(col((r) => JSON.stringify(r.groundTruth ?? null)), new Utf8()),
    reward_method: vectorFromArray(col((r) => r.rewardMethod), new Utf8()),
    data_source: vectorFromArray(col((r) => r.dataSource), new Utf8()),
    extra: vectorFromArray(col((r) => JSON.stringify(r.extra)), new Utf8()),
  };
  return new Table(vectors);
}

/** Concatenate prompt tables (e.g. one per source file) into one. */
export function concatTables(tables: readonly Table[]): Table {
  // An empty table has no record batch; Arrow's concat would then build columns from no data, so leave it out.
  const nonEmpty = tables.filter((t) => t.numRows > 0);
  if (nonEmpty.length === 0) return tables[0] ?? rowsToTable([]);
  const [first, ...rest] = nonEmpty;
  return rest.length === 0 ? first! : first!.concat(...rest);
}

interface Columns {
  id: Vector;
  file: Vector;
  line: Vector;
  format: Vector;
  messages: Vector;
  images: Vector;
  /** Absent in tables built before videos were supported: no row has videos then. */
  videos: Vector | null;
  ground_truth: Vector;
  reward_method: Vector;
  data_source: Vector;
  extra: Vector;
}

const tableColumns = new WeakMap<Table, Columns>();

function columns(table: Table): Columns {
  let c = tableColumns.get(table);
  if (!c) {
    const get = (name: Exclude<keyof Columns, 'videos'>): Vector => {
      const v = table.getChild(name);
      if (!v) throw new RangeError(`not a prompt table: column "${name}" is missing (have ${table.schema.fields.map((f) => f.name).join(', ')})`);
      return v;
    };
    c = {
      id: get('id'),
      file: get('file'),
      line: get('line'),
      format: get('format'),
      messages: get('messages'),
      images: get('images'),
      videos: table.getChild('videos'),
      ground_truth: get('ground_truth'),
      reward_method: get('reward_method'),
      data_source: get('data_source'),
      extra: get('extra'),
    };
    tableColumns.set(table, c);
  }
  return c;
}

/** Row `index` of a prompt table. Image bytes are views into the table's buffers (no copy). */
export function readRow(table: Table, index: number): PromptRow {
  if (!Number.isSafeInteger(index) || index < 0 || index >= table.numRows) {
    throw new RangeError(`readRow: index ${index} is outside the table's ${table.numRows} rows`);
  }
  const c = columns(table);
  const images = readImages(c.images.get(index) as Vector | null);
  const vids = c.videos ? (c.videos.get(index) as Vector | null) : null;
  const videos: RowVideo[] = [];
  if (vids) {
    for (let k = 0; k < vids.length; k++) {
      const cell = vids.get(k) as { path: string | null; frames: Vector | null };
      videos.push(cell.path !== null ? { path: cell.path } : { frames: readImages(cell.frames) });
    }
  }
  return {
    id: c.id.get(index) as string,
    source: { file: c.file.get(index) as string, line: c.line.get(index) as number },
    format: c.format.get(index) as DatasetFormat,
    messages: JSON.parse(c.messages.get(index) as string) as RowMessage[],
    images,
    ...(videos.length > 0 ? { videos } : {}),
    groundTruth: JSON.parse(c.ground_truth.get(index) as string) as unknown,
    rewardMethod: (c.reward_method.get(index) as string | null) ?? null,
    dataSource: (c.data_source.get(index) as string | null) ?? null,
    extra: JSON.parse(c.extra.get(index) as string) as Record<string, unknown>,
  };
}

/** Rows `[start, end)` of a prompt table. */
export function readRows(table: Table, start = 0, end = table.numRows): PromptRow[] {
  const out: PromptRow[] = [];
  for (let i = start; i < end; i++) out.push(readRow(table, i));
  return out;
}

/** Rows `[start, end)` as a new table sharing the buffers (Arrow slice, no copy). */
export function sliceTable(table: Table, start: number, end: number): Table {
  return table.slice(start, end);
}
