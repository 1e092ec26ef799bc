/**
 * Pieces shared by the format readers: turning raw column values (from JSON or Parquet) into JSON-safe values,
 * image references into resolved paths or bytes, and text with `<image>` placeholders into message parts.
 *
 * Placeholder rule (all formats): each `<image>` in the prompt text (or an explicit `{type: 'image'}` part) takes
 * the next image of the row, in reading order across messages; each `<video>` (or `{type: 'video'}`) the next video. A row with images and no placeholder at all gets its
 * images before the text of its first user message (R1-V, and VLM-R1's own behaviour). Any other count mismatch
 * is a row error.
 */
import path from 'node:path';
import type { DatasetFormat, PromptRow, RowContentPart, RowImage, RowMessage, RowSource, RowVideo } from '../types.js';

/** The placeholder that marks where an image goes in prompt text (VLM-R1, verl, EasyR1). */
export const IMAGE_PLACEHOLDER = '<image>';
/** The placeholder that marks where a video goes in prompt text (VLM-R1, verl). */
export const VIDEO_PLACEHOLDER = '<video>';

/** A row that parsed but does not fit its format; the loader skips it as 'invalid' with this message. */
export class InvalidRowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRowError';
  }
}

/** Where a format reader is: the row's source plus the source file's settings. */
export interface RowContext {
  source: RowSource;
  /** Folder relative image paths resolve against (absolute). */
  imageFolder: string;
  /** Reward method for rows that do not name one (the source's `rewardMethod`), or null. */
  defaultRewardMethod: string | null;
}

/** A format reader: raw record → normalised row, throwing {@link InvalidRowError} for rows that do not fit. */
export type RowNormaliser = (record: Record<string, unknown>, ctx: RowContext) => PromptRow;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A string, or the UTF-8 text of bytes (Parquet string columns written without the UTF8 annotation); else undefined. */
export function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) {
    try {
      return utf8.decode(value);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** True for a plain object (not an array, bytes, or null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value) &&
    !(value instanceof Date);
}

/**
 * A JSON-safe copy of a column value: bigint → number (or a decimal string beyond 2^53), bytes → UTF-8 text (or
 * `{ base64 }` when not valid UTF-8), Date → ISO string, typed arrays → arrays, undefined/NaN/±Inf → null.
 */
export function toJsonValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (value instanceof Uint8Array) {
    const text = asText(value);
    return text !== undefined ? text : { base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => toJsonValue(v));
  if (Array.isArray(value)) return value.map((v) => toJsonValue(v));
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), toJsonValue(v)]));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJsonValue(v);
    return out;
  }
  return null;
}

/** The record's columns except `consumed`, as JSON-safe values (the row's `extra`). */
export function extraColumns(record: Record<string, unknown>, consumed: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) if (!consumed.includes(k)) out[k] = toJsonValue(v);
  return out;
}

/** A non-empty string (or text bytes) as a reward-method / data-source name; null for null/undefined/empty. */
export function optionalName(value: unknown, field: string): string | null {
  if (value === null || value === undefined) return null;
  const text = asText(value);
  if (text === undefined) throw new InvalidRowError(`"${field}" must be a string, got ${describeValue(value)}`);
  const trimmed = text.trim();
  return trimmed.length > 0 ? trimmed : null;
}

/** Short description of a value's type for messages: "number 3", "an object", "null". */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** The row id: the row's own (string or number) when present, else "<file name>:<line>". */
export function rowId(own: unknown, source: RowSource): string {
  if (typeof own === 'string' && own.length > 0) return own;
  if (typeof own === 'number' && Number.isFinite(own)) return String(own);
  if (typeof own === 'bigint') return own.toString();
  return `${path.basename(source.file)}:${source.line}`;
}

function resolvePath(p: string, ctx: RowContext, what = 'an image path'): string {
  let s = p.trim();
  if (s.startsWith('file://')) s = s.slice('file://'.length);
  if (s.length === 0) throw new InvalidRowError(`${what} is empty`);
  return path.isAbsolute(s) ? path.normalize(s) : path.resolve(ctx.imageFolder, s);
}

/**
 * One image reference → a resolved {@link RowImage}. Accepts a path string, image bytes, or an object with
 * `bytes` and/or `path` (HF `datasets` Image feature, verl `images: [{bytes}]` / `[{path}]`); bytes win when both
 * are set, as in verl's `process_image`.
 */
export function parseImageRef(value: unknown, ctx: RowContext, where: string): RowImage {
  if (value instanceof Uint8Array) {
    if (value.byteLength === 0) throw new InvalidRowError(`${where} has empty image bytes`);
    return { bytes: value };
  }
  const text = typeof value === 'string' ? value : undefined;
  if (text !== undefined) return { path: resolvePath(text, ctx) };
  if (isRecord(value)) {
    const bytes = value.bytes;
    if (bytes instanceof Uint8Array && bytes.byteLength > 0) return { bytes };
    if (Array.isArray(bytes) && bytes.length > 0 && bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) {
      return { bytes: Uint8Array.from(bytes as number[]) };
    }
    const p = asText(value.path) ?? asText(value.image);
    if (p !== undefined && p.trim().length > 0) return { path: resolvePath(p, ctx) };
    throw new InvalidRowError(`${where} has neither image bytes nor a path (keys: ${Object.keys(value).join(', ') || 'none'})`);
  }
  throw new InvalidRowError(`${where} must be a path, image bytes or {bytes}/{path}, got ${describeValue(value)}`);
}

/** A column holding one image reference or a list of them (null/undefined/empty list → none). */
export function parseImageList(value: unknown, ctx: RowContext, field: string): RowImage[] {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return value.map((v, k) => parseImageRef(v, ctx, `"${field}"[${k}]`));
  if (ArrayBuffer.isView(value) && !(value instanceof Uint8Array)) {
    throw new InvalidRowError(`"${field}" must be a path, a list of paths or image objects, got a numeric array`);
  }
  return [parseImageRef(value, ctx, `"${field}"`)];
}

/**
 * One video reference → a resolved {@link RowVideo}: a path string (a video file or a directory of frames), a list
 * of frame references (paths, bytes or {bytes}/{path} objects), or an object holding one of those under `video`
 * (qwen-vl-utils / verl `{"type": "video", "video": …}`) or `path`.
 */
export function parseVideoRef(value: unknown, ctx: RowContext, where: string): RowVideo {
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const text = asText(value);
    if (text === undefined) throw new InvalidRowError(`${where} must be a path or a list of frames, got ${describeValue(value)}`);
    return { path: resolvePath(text, ctx, 'a video path') };
  }
  if (Array.isArray(value)) {
    if (value.length === 0) throw new InvalidRowError(`${where} is an empty list of frames`);
    return { frames: value.map((f, k) => parseImageRef(f, ctx, `${where}[${k}]`)) };
  }
  if (isRecord(value)) {
    const inner = value.video ?? value.path;
    if (inner !== undefined && inner !== null) return parseVideoRef(inner, ctx, where);
    throw new InvalidRowError(`${where} has neither "video" nor "path" (keys: ${Object.keys(value).join(', ') || 'none'})`);
  }
  throw new InvalidRowError(`${where} must be a video path, a list of frame paths or {video}, got ${describeValue(value)}`);
}

/**
 * A column holding videos. `single` (VLM-R1 `video`): a string is one video and a list is that video's frames.
 * Otherwise (`videos`): a list of videos, each a path, a list of frames or {video}.
 */
export function parseVideoList(value: unknown, ctx: RowContext, field: string, single: boolean): RowVideo[] {
  if (value === null || value === undefined) return [];
  if (single || !Array.isArray(value)) return [parseVideoRef(value, ctx, `"${field}"`)];
  return value.map((v, k) => parseVideoRef(v, ctx, `"${field}"[${k}]`));
}

/** A prompt message before placeholder resolution: text (possibly with `<image>` / `<video>`) or parts. */
export interface RawMessage {
  role: string;
  content: string | RowContentPart[];
}

/** Split text on `<image>` and `<video>` into text, image and video parts (empty text pieces dropped). */
export function splitPlaceholders(text: string): RowContentPart[] {
  const parts: RowContentPart[] = [];
  for (const piece of text.split(/(<image>|<video>)/)) {
    if (piece === IMAGE_PLACEHOLDER) parts.push({ type: 'image' });
    else if (piece === VIDEO_PLACEHOLDER) parts.push({ type: 'video' });
    else if (piece.length > 0) parts.push({ type: 'text', text: piece });
  }
  return parts;
}

/** Merge adjacent text parts and drop empty ones. */
export function mergeText(parts: readonly RowContentPart[]): RowContentPart[] {
  const out: RowContentPart[] = [];
  for (const p of parts) {
    if (p.type === 'text') {
      if (p.text.length === 0) continue;
      const last = out[out.length - 1];
      if (last && last.type === 'text') {
        out[out.length - 1] = { type: 'text', text: last.text + p.text };
        continue;
      }
      out.push({ type: 'text', text: p.text });
    } else {
      out.push({ type: p.type });
    }
  }
  return out;
}

/**
 * Messages with `<image>` / `<video>` placeholders (or image / video parts) → {@link RowMessage}s whose image parts
 * match `numImages` and video parts `numVideos`, following the placeholder rule of the module comment (videos
 * without any `<video>` go before the text of the first user message, after its images).
 */
export function buildMessages(raw: readonly RawMessage[], numImages: number, numVideos = 0): RowMessage[] {
  const messages: RowMessage[] = raw.map((m) => {
    const parts = typeof m.content === 'string' ? splitPlaceholders(m.content) : m.content.flatMap((p) => (p.type === 'text' ? splitPlaceholders(p.text) : [p]));
    return { role: m.role, content: mergeText(parts) };
  });
  for (const [kind, placeholder, count] of [['image', IMAGE_PLACEHOLDER, numImages], ['video', VIDEO_PLACEHOLDER, numVideos]] as const) {
    let placeholders = 0;
    for (const m of messages) for (const p of m.content) if (p.type === kind) placeholders++;
    if (placeholders === count) continue;
    if (placeholders === 0) {
      const first = messages.findIndex((m) => m.role === 'user');
      if (first < 0) throw new InvalidRowError(`the row has ${count} ${kind}(s) but no user message to put them in`);
      const added: RowContentPart[] = Array.from({ length: count }, () => ({ type: kind }));
      const content = messages[first]!.content;
      // Images first, then videos, then the text (an image-only prepend keeps R1-V's layout).
      let at = 0;
      while (kind === 'video' && at < content.length && content[at]!.type === 'image') at++;
      messages[first] = { role: 'user', content: [...content.slice(0, at), ...added, ...content.slice(at)] };
      continue;
    }
    throw new InvalidRowError(
      `the prompt has ${placeholders} ${placeholder} placeholder(s) but the row has ${count} ${kind}(s); ` +
        `give one ${placeholder} per ${kind} (or none, to put all ${kind}s before the text)`,
    );
  }
  return messages;
}

/** Assemble a row (the last step of every format reader). */
export function makeRow(fields: {
  ownId: unknown;
  ctx: RowContext;
  format: DatasetFormat;
  messages: RowMessage[];
  images: RowImage[];
  videos?: RowVideo[];
  groundTruth: unknown;
  rewardMethod: string | null;
  dataSource: string | null;
  extra: Record<string, unknown>;
}): PromptRow {
  const { ctx } = fields;
  if (!fields.messages.some((m) => m.role === 'user')) throw new InvalidRowError('the prompt has no user message');
  return {
    id: rowId(fields.ownId, ctx.source),
    source: { ...ctx.source },
    format: fields.format,
    messages: fields.messages,
    images: fields.images,
    ...(fields.videos && fields.videos.length > 0 ? { videos: fields.videos } : {}),
    groundTruth: toJsonValue(fields.groundTruth),
    rewardMethod: fields.rewardMethod ?? ctx.defaultRewardMethod,
    dataSource: fields.dataSource,
    extra: fields.extra,
  };
}
