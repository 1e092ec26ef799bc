/**
 * RolloutLog: every rollout of every step, saved as Parquet so users can query them
 * (RUN_DIR/rollouts/step-000123.parquet, one row per completion).
 *
 * Peers dump rollouts only in debug mode (R1-V's LOG_PATH text file) or as a logger table (TRL's completions
 * table, verl's generation samples); a Parquet file per step is queryable with DuckDB, pandas/pyarrow, polars or
 * hyparquet without our code, e.g. `SELECT step, avg(reward) FROM 'run/rollouts/*.parquet' GROUP BY step`.
 *
 * Columns (in this order):
 *   step INT32, promptId STRING, groupIndex INT32 (prompt group within the step), sampleIndex INT32 (completion
 *   within its group), prompt STRING, completion STRING, reward DOUBLE (weighted total), reward_<name> DOUBLE
 *   (nullable; one column per reward function, its own unweighted value), advantage DOUBLE, length INT32
 *   (completion tokens), truncated BOOLEAN (hit the length limit), finishReason STRING ("stop", "length", …),
 *   images LIST<STRING> (image paths as the dataset gave them), and, when thumbnails are enabled,
 *   thumbnails LIST<BINARY> (one small JPEG per image, in the same order; an empty value where the image could
 *   not be read).
 * Key-value metadata "vlm-grpo.rollouts" holds {"version":1,"step":…,"rewardNames":[…]}.
 *
 * Reading the binary thumbnails with hyparquet needs `utf8: false` (its default decodes every BYTE_ARRAY as text;
 * the STRING columns are annotated UTF8 and stay strings either way).
 *
 * Each file is written to a temporary name in the same directory and renamed into place, so a reader (or a crash)
 * never sees half a file.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type SchemaElement } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import sharp from 'sharp';

import { ReportError } from './errors.js';

/** The rollouts folder's name inside a run directory. */
export const ROLLOUTS_DIR = 'rollouts';
const META_KEY = 'vlm-grpo.rollouts';
const STEP_FILE = /^step-(\d+)\.parquet$/;

/** One completion as the trainer hands it to {@link RolloutLog.write}. */
export interface RolloutInput {
  /** The dataset row's id (or index as a string). */
  promptId: string;
  /** Index of the prompt group within the step (0-based). */
  groupIndex: number;
  /** Index of the completion within its group (0-based). */
  sampleIndex: number;
  /** The prompt text (the user turn, or the rendered chat prompt). */
  prompt: string;
  /** The generated completion text. */
  completion: string;
  /** The weighted total reward. */
  reward: number;
  /** Each reward function's own value by label; a missing or null value is stored as null. */
  rewards: Record<string, number | null>;
  /** The completion's advantage. */
  advantage: number;
  /** Completion length in tokens. */
  length: number;
  /** Whether the completion hit the maximum completion length. */
  truncated: boolean;
  /** Why generation stopped: "stop" (EOS / stop string), "length", … */
  finishReason: string;
  /** Image paths as given by the dataset (absolute, or relative to `imageRoot`). */
  images: string[];
  /** Ready-made JPEG thumbnails, one per image; when absent and thumbnails are enabled they are made from `images`. */
  thumbnails?: Uint8Array[];
}

/** One row of a rollouts file as read back. */
export interface RolloutRecord extends RolloutInput {
  /** The optimizer step. */
  step: number;
}

/** Thumbnail settings. */
export interface ThumbnailOptions {
  /** Longest side in pixels (default 128). */
  maxSize?: number;
  /** JPEG quality 1–100 (default 70). */
  quality?: number;
}

/** Options of {@link RolloutLog}. */
export interface RolloutLogOptions {
  /** Store a small JPEG per image (default false; true = {maxSize: 128, quality: 70}). */
  thumbnails?: boolean | ThumbnailOptions;
  /** Folder relative image paths are resolved against when making thumbnails (default: the working directory). */
  imageRoot?: string;
  /** Receives warnings (an image that could not be read). Default: console.warn, once per path. */
  onWarning?: (message: string) => void;
}

/** Options of {@link RolloutLog.read}. */
export interface ReadRolloutsOptions {
  /** First step to read (inclusive; default: the first). */
  fromStep?: number;
  /** Last step to read (inclusive; default: the last). */
  toStep?: number;
  /** Read the thumbnails column when present (default true). */
  thumbnails?: boolean;
}

/** Options of {@link RolloutLog.readStep}. */
export interface ReadStepOptions {
  /** First row (inclusive, default 0). */
  rowStart?: number;
  /** Last row (exclusive, default: all). */
  rowEnd?: number;
  /** Read the thumbnails column when present (default true). */
  thumbnails?: boolean;
}

/** Path of the rollouts file of `step` inside `runDir`. */
export function rolloutStepPath(runDir: string, step: number): string {
  return join(runDir, ROLLOUTS_DIR, `step-${String(step).padStart(6, '0')}.parquet`);
}

function fail(what: string): never {
  throw new TypeError(what);
}

function checkInput(r: RolloutInput, i: number): void {
  const at = `RolloutLog.write: records[${i}]`;
  if (r === null || typeof r !== 'object') fail(`${at} must be an object`);
  for (const k of ['promptId', 'prompt', 'completion', 'finishReason'] as const) {
    if (typeof r[k] !== 'string') fail(`${at}.${k} must be a string, got ${typeof r[k]}`);
  }
  for (const k of ['groupIndex', 'sampleIndex', 'length'] as const) {
    const v = r[k];
    if (typeof v !== 'number') fail(`${at}.${k} must be a number, got ${typeof v}`);
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`${at}.${k} must be a non-negative int32, got ${v}`);
  }
  for (const k of ['reward', 'advantage'] as const) {
    if (typeof r[k] !== 'number') fail(`${at}.${k} must be a number, got ${typeof r[k]}`);
  }
  if (typeof r.truncated !== 'boolean') fail(`${at}.truncated must be a boolean, got ${typeof r.truncated}`);
  if (r.rewards === null || typeof r.rewards !== 'object') fail(`${at}.rewards must be an object of numbers`);
  for (const [k, v] of Object.entries(r.rewards)) {
    if (v !== null && v !== undefined && typeof v !== 'number') fail(`${at}.rewards.${k} must be a number or null, got ${typeof v}`);
  }
  if (!Array.isArray(r.images) || r.images.some((p) => typeof p !== 'string')) fail(`${at}.images must be an array of strings`);
  if (r.thumbnails !== undefined) {
    if (!Array.isArray(r.thumbnails) || r.thumbnails.some((t) => !(t instanceof Uint8Array))) {
      fail(`${at}.thumbnails must be an array of Uint8Array`);
    }
    if (r.thumbnails.length !== r.images.length) {
      throw new RangeError(`${at}.thumbnails has ${r.thumbnails.length} entries but images has ${r.images.length}`);
    }
  }
}

const listOf = (name: string, leaf: SchemaElement): SchemaElement[] => [
  { name, repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  leaf,
];

/** Writes one Parquet file of rollouts per step; static methods read them back. */
export class RolloutLog {
  /** The rollouts directory (RUN_DIR/rollouts). */
  readonly dir: string;
  private readonly runDir: string;
  private readonly thumbs: Required<ThumbnailOptions> | undefined;
  private readonly imageRoot: string;
  private readonly onWarning: (message: string) => void;
  private readonly warned = new Set<string>();
  /** Thumbnails by resolved path: a group's G completions share their images, so each is encoded once. */
  private readonly thumbCache = new Map<string, Uint8Array>();

  /** @param runDir the run directory (RUN_DIR/rollouts is created when missing) */
  constructor(runDir: string, options: RolloutLogOptions = {}) {
    if (typeof runDir !== 'string' || runDir === '') throw new TypeError('RolloutLog: runDir must be a non-empty string');
    this.runDir = runDir;
    this.dir = join(runDir, ROLLOUTS_DIR);
    mkdirSync(this.dir, { recursive: true });
    const t = options.thumbnails ?? false;
    if (t === false) {
      this.thumbs = undefined;
    } else {
      const o = t === true ? {} : t;
      const maxSize = o.maxSize ?? 128;
      const quality = o.quality ?? 70;
      if (!Number.isInteger(maxSize) || maxSize < 8 || maxSize > 4096) {
        throw new RangeError(`RolloutLog: thumbnails.maxSize must be an integer in [8, 4096], got ${maxSize}`);
      }
      if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
        throw new RangeError(`RolloutLog: thumbnails.quality must be an integer in [1, 100], got ${quality}`);
      }
      this.thumbs = { maxSize, quality };
    }
    this.imageRoot = options.imageRoot ?? process.cwd();
    this.onWarning = options.onWarning ?? ((m: string) => console.warn(m));
  }

  /** Path of the file for `step`. */
  stepPath(step: number): string {
    return rolloutStepPath(this.runDir, step);
  }

  private async thumbnail(path: string): Promise<Uint8Array> {
    const abs = isAbsolute(path) ? path : resolve(this.imageRoot, path);
    const hit = this.thumbCache.get(abs);
    if (hit) return hit;
    const t = this.thumbs as Required<ThumbnailOptions>;
    let out: Uint8Array;
    try {
      out = await makeThumbnail(abs, t.maxSize, t.quality);
    } catch (err) {
      if (!this.warned.has(abs)) {
        this.warned.add(abs);
        this.onWarning(`RolloutLog: no thumbnail for ${abs}: ${err instanceof Error ? err.message : String(err)}`);
      }
      out = new Uint8Array(0);
    }
    if (this.thumbCache.size >= 256) this.thumbCache.delete(this.thumbCache.keys().next().value as string);
    this.thumbCache.set(abs, out);
    return out;
  }

  /**
   * Write the rollouts of `step` (one row per completion) atomically.
   * @returns the path of the written file
   * @throws TypeError/RangeError naming the bad record and field
   */
  async write(step: number, records: readonly RolloutInput[]): Promise<string> {
    if (!Number.isInteger(step) || step < 0 || step > 0x7fffffff) throw new RangeError(`RolloutLog.write: step must be a non-negative int32, got ${step}`);
    if (!Array.isArray(records)) throw new TypeError('RolloutLog.write: records must be an array');
    records.forEach(checkInput);

    // The union of reward labels, in first-seen order; a record lacking one stores null.
    const names: string[] = [];
    const seen = new Set<string>();
    for (const r of records) {
      for (const k of Object.keys(r.rewards)) {
        if (!seen.has(k)) {
          seen.add(k);
          names.push(k);
        }
      }
    }

    const schema: SchemaElement[] = [
      { name: 'step', type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'promptId', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      { name: 'groupIndex', type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'sampleIndex', type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'prompt', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      { name: 'completion', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      { name: 'reward', type: 'DOUBLE', repetition_type: 'REQUIRED' },
      ...names.map((n): SchemaElement => ({ name: `reward_${n}`, type: 'DOUBLE', repetition_type: 'OPTIONAL' })),
      { name: 'advantage', type: 'DOUBLE', repetition_type: 'REQUIRED' },
      { name: 'length', type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'truncated', type: 'BOOLEAN', repetition_type: 'REQUIRED' },
      { name: 'finishReason', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      ...listOf('images', { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' }),
    ];
    const col = <K extends keyof RolloutInput>(k: K): RolloutInput[K][] => records.map((r) => r[k]);
    const columnData: { name: string; data: unknown[] }[] = [
      { name: 'step', data: records.map(() => step) },
      { name: 'promptId', data: col('promptId') },
      { name: 'groupIndex', data: col('groupIndex') },
      { name: 'sampleIndex', data: col('sampleIndex') },
      { name: 'prompt', data: col('prompt') },
      { name: 'completion', data: col('completion') },
      { name: 'reward', data: col('reward') },
      ...names.map((n) => ({ name: `reward_${n}`, data: records.map((r) => r.rewards[n] ?? null) })),
      { name: 'advantage', data: col('advantage') },
      { name: 'length', data: col('length') },
      { name: 'truncated', data: col('truncated') },
      { name: 'finishReason', data: col('finishReason') },
      { name: 'images', data: records.map((r) => [...r.images]) },
    ];
    if (this.thumbs) {
      schema.push(...listOf('thumbnails', { name: 'element', type: 'BYTE_ARRAY', repetition_type: 'REQUIRED' }));
      const thumbs: Uint8Array[][] = [];
      for (const r of records) {
        thumbs.push(r.thumbnails ? [...r.thumbnails] : await Promise.all(r.images.map((p: string) => this.thumbnail(p))));
      }
      columnData.push({ name: 'thumbnails', data: thumbs });
    }
    const topLevel = columnData.length;
    schema.unshift({ name: 'root', num_children: topLevel });

    const buf = parquetWriteBuffer({
      schema,
      columnData: columnData as Parameters<typeof parquetWriteBuffer>[0]['columnData'],
      // Long completions: keep the min/max statistics short (they are only useful for ids and numbers).
      statisticsTruncateLength: 64,
      kvMetadata: [{ key: META_KEY, value: JSON.stringify({ version: 1, step, rewardNames: names }) }],
      createdBy: 'vlm-grpo',
    });
    const path = this.stepPath(step);
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    try {
      writeFileSync(tmp, new Uint8Array(buf));
      renameSync(tmp, path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return path;
  }

  /** The steps that have a rollouts file in `runDir`, ascending. */
  static listSteps(runDir: string): number[] {
    const dir = join(runDir, ROLLOUTS_DIR);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
    const steps: number[] = [];
    for (const name of readdirSync(dir)) {
      const m = STEP_FILE.exec(name);
      if (m) steps.push(Number(m[1]));
    }
    return steps.sort((a, b) => a - b);
  }

  /** Number of rows in the rollouts file of `step` (reads only the footer). */
  static async countRows(runDir: string, step: number): Promise<number> {
    const file = await openStep(runDir, step);
    const meta = await parquetMetadataAsync(file).catch((err: unknown) => badFile(runDir, step, err));
    return Number(meta.num_rows);
  }

  /** Read the rollouts of one step (optionally a row range). */
  static async readStep(runDir: string, step: number, options: ReadStepOptions = {}): Promise<RolloutRecord[]> {
    const file = await openStep(runDir, step);
    const metadata = await parquetMetadataAsync(file).catch((err: unknown) => badFile(runDir, step, err));
    const names = parquetSchema(metadata).children.map((c) => c.element.name);
    const wantThumbs = (options.thumbnails ?? true) && names.includes('thumbnails');
    const columns = names.filter((n) => wantThumbs || n !== 'thumbnails');
    const readOpts: Parameters<typeof parquetReadObjects>[0] = { file, metadata, columns, utf8: false };
    if (options.rowStart !== undefined) readOpts.rowStart = options.rowStart;
    if (options.rowEnd !== undefined) readOpts.rowEnd = options.rowEnd;
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects(readOpts);
    } catch (err) {
      badFile(runDir, step, err);
    }
    const rewardCols = columns.filter((c) => c.startsWith('reward_'));
    return rows.map((row) => {
      const rewards: Record<string, number | null> = {};
      for (const c of rewardCols) rewards[c.slice('reward_'.length)] = (row[c] as number | null | undefined) ?? null;
      const rec: RolloutRecord = {
        step: Number(row.step),
        promptId: String(row.promptId),
        groupIndex: Number(row.groupIndex),
        sampleIndex: Number(row.sampleIndex),
        prompt: String(row.prompt),
        completion: String(row.completion),
        reward: row.reward as number,
        rewards,
        advantage: row.advantage as number,
        length: Number(row.length),
        truncated: Boolean(row.truncated),
        finishReason: String(row.finishReason),
        images: ((row.images as string[] | null | undefined) ?? []).map(String),
      };
      if (wantThumbs) rec.thumbnails = ((row.thumbnails as Uint8Array[] | null | undefined) ?? []).map((t) => new Uint8Array(t));
      return rec;
    });
  }

  /** Read the rollouts of every step in [fromStep, toStep] (inclusive), in step order. */
  static async read(runDir: string, options: ReadRolloutsOptions = {}): Promise<RolloutRecord[]> {
    const from = options.fromStep ?? -Infinity;
    const to = options.toStep ?? Infinity;
    const out: RolloutRecord[] = [];
    const stepOpts: ReadStepOptions = {};
    if (options.thumbnails !== undefined) stepOpts.thumbnails = options.thumbnails;
    for (const step of RolloutLog.listSteps(runDir)) {
      if (step < from || step > to) continue;
      out.push(...(await RolloutLog.readStep(runDir, step, stepOpts)));
    }
    return out;
  }
}

function badFile(runDir: string, step: number, err: unknown): never {
  throw new ReportError('ERR_REPORT_BAD_ROLLOUTS', `cannot read ${rolloutStepPath(runDir, step)}: ${err instanceof Error ? err.message : String(err)}`,
    'The file is not a rollouts Parquet file written by vlm-grpo (or it is damaged); delete it or write it again.', { cause: err });
}

async function openStep(runDir: string, step: number) {
  const path = rolloutStepPath(runDir, step);
  if (!existsSync(path)) {
    throw new ReportError('ERR_REPORT_BAD_ROLLOUTS', `no rollouts file for step ${step}: ${path} does not exist`,
      `List the available steps with RolloutLog.listSteps(runDir) (found: ${RolloutLog.listSteps(runDir).slice(0, 10).join(', ') || 'none'}).`);
  }
  return asyncBufferFromFile(path);
}

/** A JPEG thumbnail (longest side ≤ maxSize, never enlarged, EXIF orientation applied) of an image file or buffer. */
export async function makeThumbnail(input: string | Uint8Array, maxSize = 128, quality = 70): Promise<Uint8Array> {
  const buf = await sharp(input)
    .autoOrient()
    .resize(maxSize, maxSize, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
