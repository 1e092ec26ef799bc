/**
 * PromptDataset: the prompts of a training (or validation) split, held as one Arrow table, served in a seeded
 * per-epoch shuffle as prepared model inputs.
 *
 * - Order: epoch e visits every row once in `permutation(size, seed, e)`; `next(n)` continues across epochs. The
 *   cursor {epoch, index} is saved with `state()` and restored with `restore()`, so a resumed run sees exactly the
 *   same prompts in the same order.
 * - Bad rows: rows that fail to prepare (missing/undecodable image, over-long, invalid) are skipped with a warning
 *   naming the file and line, counted, and remembered, so later epochs pass over them without retrying. Skipping is
 *   deterministic, so it does not disturb the order after a restore.
 * - Broken data: sampling stops with a DataError once the bad rows found exceed `maxBadFraction` of all rows, or,
 *   after at least min(size, 32) rows were tried, once the estimated bad share (load-time skips plus the tried rows'
 *   failure rate applied to the rest) does.
 * - `next(n)` prepares its rows concurrently (Promise.all) and returns them in order; calls run one at a time.
 */
import type { Table } from 'apache-arrow';
import { DataError, SkipLog, emptyCounts, mostlyBrokenError, reasonKey, type SkipLogOptions } from './errors.js';
import { resolveDatasetOptions, type PromptDatasetOptions } from './options.js';
import { preparePrompt, type PrepareOptions, type PreparedPrompt, type PrepareResult, type PromptProcessor } from './prepare.js';
import { resolvePromptTemplate } from './prompt-template.js';
import { permutation, STREAM_SHUFFLE, STREAM_SPLIT } from './shuffle.js';
import { loadSource, type DataSource, type LoadedSource } from './sources.js';
import { concatTables, readRow } from './table.js';
import { SKIP_REASONS, type DatasetFormat, type PromptRow, type SkipReason } from './types.js';

/** Position of the next prompt: row `index` of epoch `epoch`'s order. */
export interface DatasetCursor {
  epoch: number;
  index: number;
}

/** What a checkpoint stores to resume the data order (JSON-serialisable). */
export interface DatasetState extends DatasetCursor {
  seed: number;
  shuffle: boolean;
  /** Rows in the split, to detect a changed dataset on resume. */
  numRows: number;
}

/** Load-time facts shared by the splits read from the same files. */
export interface LoadSummary {
  /** Records in the files, bad ones included. */
  total: number;
  /** Rows skipped while loading (malformed, invalid, missing image). */
  skips: SkipLog;
  /** Per file: the format it was read as, its records and usable rows. */
  files: Array<{ file: string; format: DatasetFormat | null; total: number; rows: number }>;
}

/** Settings of a PromptDataset (what loadPromptDatasets derives from the options). */
export interface PromptDatasetSettings {
  name: string;
  seed: number;
  shuffle: boolean;
  maxBadFraction: number;
  prepare: PrepareOptions;
  processor: PromptProcessor;
  /** The load summary of the files the rows came from. */
  load: LoadSummary;
  /** Report the load-time skips in this split's metrics (the training split does; a ratio-split validation does not repeat them). */
  reportLoadSkips: boolean;
  skipLog?: SkipLogOptions;
}

const UNTRIED = 0;
const GOOD = 1;
const BAD = 2;
/** Rows tried before the bad-share estimate is trusted (or all rows, when fewer). */
const MIN_TRIED = 32;

export class PromptDataset {
  readonly name: string;
  /** All loaded rows (possibly shared with the other split). */
  readonly table: Table;
  readonly #indices: Uint32Array;
  readonly #settings: PromptDatasetSettings;
  readonly #skips: SkipLog;
  readonly #status: Uint8Array;
  #tried = 0;
  #cursor: DatasetCursor = { epoch: 0, index: 0 };
  #order: { epoch: number; order: Uint32Array } | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  /** `indices`: the table rows of this split, in file order. */
  constructor(table: Table, indices: Uint32Array, settings: PromptDatasetSettings) {
    this.name = settings.name;
    this.table = table;
    this.#indices = indices;
    this.#settings = settings;
    this.#skips = new SkipLog({ label: `[data:${settings.name}]`, ...settings.skipLog });
    this.#status = new Uint8Array(indices.length);
  }

  /** Number of rows in this split (rows found bad while sampling included). */
  get size(): number {
    return this.#indices.length;
  }

  /** Row `i` of the split in file order (0 ≤ i < size). */
  row(i: number): PromptRow {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.size) throw new RangeError(`row: index ${i} is outside the ${this.size} rows of ${this.name}`);
    return readRow(this.table, this.#indices[i]!);
  }

  /** The visiting order of `epoch`: positions 0..size-1 (file order when shuffling is off). */
  order(epoch: number): Uint32Array {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`order: epoch must be a non-negative integer, got ${epoch}`);
    if (this.#order?.epoch === epoch) return this.#order.order;
    let order: Uint32Array;
    if (this.#settings.shuffle) order = permutation(this.size, this.#settings.seed, STREAM_SHUFFLE, epoch);
    else {
      order = new Uint32Array(this.size);
      for (let i = 0; i < order.length; i++) order[i] = i;
    }
    this.#order = { epoch, order };
    return order;
  }

  /** Where the next `next()` starts. */
  get cursor(): DatasetCursor {
    return { ...this.#cursor };
  }

  /** The resumable state: cursor plus what must match on restore. */
  state(): DatasetState {
    return { ...this.#cursor, seed: this.#settings.seed, shuffle: this.#settings.shuffle, numRows: this.size };
  }

  /** Continue from a saved state. Throws DataError `ERR_DATA_RESUME` when the seed, shuffle or row count differ. */
  restore(state: DatasetState): void {
    const s = this.#settings;
    const mismatch = (what: string, saved: unknown, now: unknown): DataError =>
      new DataError('ERR_DATA_RESUME', `Cannot restore the ${this.name} data order: the checkpoint has ${what} ${String(saved)}, this dataset ${String(now)}.`,
        'Resume with the same data files and the same seed/shuffle settings as the run that wrote the checkpoint, or start the data order afresh.');
    if (state === null || typeof state !== 'object') throw new TypeError('restore: state must be an object from state()');
    if (state.numRows !== this.size) throw mismatch('numRows', state.numRows, this.size);
    if (state.seed !== s.seed) throw mismatch('seed', state.seed, s.seed);
    if (state.shuffle !== s.shuffle) throw mismatch('shuffle', state.shuffle, s.shuffle);
    if (!Number.isSafeInteger(state.epoch) || state.epoch < 0 || !Number.isSafeInteger(state.index) || state.index < 0 || state.index > this.size) {
      throw new RangeError(`restore: cursor {epoch: ${state.epoch}, index: ${state.index}} is not valid for ${this.size} rows`);
    }
    this.#cursor = { epoch: state.epoch, index: state.index };
  }

  /** Prepare one row with this dataset's template, pixel limits and length limit (no counting, no cursor). */
  prepare(row: PromptRow): Promise<PrepareResult> {
    return preparePrompt(row, this.#settings.processor, this.#settings.prepare);
  }

  /**
   * The next `n` prepared prompts in the epoch order, skipping (and counting) rows that cannot be prepared.
   * Crosses into the next epoch when one ends. The cursor moves only when the call succeeds.
   */
  next(n: number): Promise<PreparedPrompt[]> {
    if (!Number.isSafeInteger(n) || n < 1) return Promise.reject(new RangeError(`next: n must be a positive integer, got ${n}`));
    const run = this.#busy.then(() => this.#next(n));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  /**
   * One pass over every row in file order, `batchSize` prepared prompts at a time (the last batch may be shorter):
   * for validation. Bad rows are skipped and counted as in next(); the cursor is not used.
   */
  async *batches(batchSize: number): AsyncGenerator<PreparedPrompt[]> {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batches: batchSize must be a positive integer, got ${batchSize}`);
    let i = 0;
    while (i < this.size) {
      const out: PreparedPrompt[] = [];
      while (out.length < batchSize && i < this.size) {
        const picks: number[] = [];
        while (picks.length < batchSize - out.length && i < this.size) {
          if (this.#status[i] !== BAD) picks.push(i);
          i++;
        }
        out.push(...(await this.#prepareMany(picks)));
      }
      if (out.length > 0) yield out;
    }
  }

  async #next(n: number): Promise<PreparedPrompt[]> {
    const size = this.size;
    if (size === 0) throw new DataError('ERR_DATA_EMPTY', `The ${this.name} split has no rows.`, 'Add data files or lower validationRatio.');
    let { epoch, index } = this.#cursor;
    const out: PreparedPrompt[] = [];
    while (out.length < n) {
      const picks: number[] = [];
      let knownBad = 0;
      while (picks.length < n - out.length) {
        if (index >= size) {
          epoch++;
          index = 0;
        }
        const pos = this.order(epoch)[index++]!;
        if (this.#status[pos] === BAD) {
          if (++knownBad > size) this.#throwAllBad();
          continue;
        }
        knownBad = 0;
        picks.push(pos);
      }
      out.push(...(await this.#prepareMany(picks)));
    }
    this.#cursor = { epoch, index };
    return out;
  }

  /** Prepare rows (positions) concurrently; record skips; return the good ones in order; check the bad share. */
  async #prepareMany(positions: readonly number[]): Promise<PreparedPrompt[]> {
    const results = await Promise.all(positions.map((p) => this.prepare(this.row(p))));
    const out: PreparedPrompt[] = [];
    results.forEach((r, k) => {
      const pos = positions[k]!;
      if (this.#status[pos] === UNTRIED) this.#tried++;
      if (r.ok) {
        this.#status[pos] = GOOD;
        out.push(r.prompt);
      } else if (this.#status[pos] !== BAD) {
        this.#status[pos] = BAD;
        this.#skips.record(r.skip);
      }
    });
    this.#checkBadShare();
    return out;
  }

  #throwAllBad(): never {
    throw new DataError('ERR_DATA_MOSTLY_BROKEN', `Every one of the ${this.size} rows of the ${this.name} split failed to prepare.`,
      'See the warnings above for the file, line and reason of each; fix the data or the image folder.');
  }

  #checkBadShare(): void {
    const { load, maxBadFraction } = this.#settings;
    const loadBad = load.skips.total;
    const badHere = this.#skips.total;
    if (load.total === 0 || badHere === 0) return;
    // Certain: the bad rows found so far already exceed the allowed share of all rows.
    let fraction = (loadBad + badHere) / load.total;
    if (fraction <= maxBadFraction) {
      // Estimated: the tried rows' failure rate applied to every row that passed loading.
      if (this.#tried < Math.min(this.size, MIN_TRIED)) return;
      fraction = (loadBad + ((load.total - loadBad) * badHere) / this.#tried) / load.total;
      if (fraction <= maxBadFraction) return;
    }
    const counts = emptyCounts();
    for (const r of SKIP_REASONS) counts[r] = load.skips.counts[r] + this.#skips.counts[r];
    throw mostlyBrokenError({
      what: `The ${this.name} data (estimated from ${this.#tried} rows tried so far)`,
      bad: loadBad + badHere,
      total: loadBad + this.#tried,
      fraction,
      maxBadFraction,
      counts,
      problems: [...load.skips.problems, ...this.#skips.problems].slice(0, 5),
    });
  }

  /** Skipped rows by reason: the load-time ones (for the split that reports them) plus those found while sampling. */
  skipped(): Record<SkipReason, number> {
    const counts = emptyCounts();
    for (const r of SKIP_REASONS) {
      counts[r] = this.#skips.counts[r] + (this.#settings.reportLoadSkips ? this.#settings.load.skips.counts[r] : 0);
    }
    return counts;
  }

  /** Metrics: `data/rows`, `data/epoch`, `data/skipped/<reason>` and `data/skipped_total`. */
  metrics(): Record<string, number> {
    const counts = this.skipped();
    const m: Record<string, number> = { 'data/rows': this.size, 'data/epoch': this.#cursor.epoch };
    let total = 0;
    for (const r of SKIP_REASONS) {
      m[`data/skipped/${reasonKey(r)}`] = counts[r];
      total += counts[r];
    }
    m['data/skipped_total'] = total;
    return m;
  }
}

/** What loadPromptDatasets returns. */
export interface PromptDatasets {
  train: PromptDataset;
  /** null when neither validationRatio nor validationSources is set. */
  validation: PromptDataset | null;
}

/** The non-data arguments of loadPromptDatasets. */
export interface LoadPromptDatasetsContext {
  /** Tokenizer, chat template, preprocessor and config (a loaded VlmModel fits). */
  processor: PromptProcessor;
  /** Where warnings and the load summary go. Default console.warn. */
  log?: (message: string) => void;
}

async function loadFiles(sources: readonly DataSource[], checkImages: boolean, skipOptions: SkipLogOptions): Promise<{ table: Table; summary: LoadSummary }> {
  const skips = new SkipLog(skipOptions);
  const loaded: LoadedSource[] = [];
  for (const s of sources) loaded.push(await loadSource(s, skips, { checkImages }));
  const table = concatTables(loaded.map((l) => l.table));
  const summary: LoadSummary = {
    total: loaded.reduce((n, l) => n + l.total, 0),
    skips,
    files: loaded.map((l) => ({ file: l.file, format: l.format, total: l.total, rows: l.table.numRows })),
  };
  return { table, summary };
}

function checkLoad(what: string, summary: LoadSummary, maxBadFraction: number): void {
  const bad = summary.skips.total;
  if (summary.total === 0) {
    throw new DataError('ERR_DATA_EMPTY', `The ${what} files have no rows: ${summary.files.map((f) => f.file).join(', ')}.`, 'Check the data file paths.');
  }
  const fraction = bad / summary.total;
  if (fraction > maxBadFraction || bad === summary.total) {
    throw mostlyBrokenError({ what: `The ${what} files`, bad, total: summary.total, fraction, maxBadFraction, counts: summary.skips.counts, problems: summary.skips.problems });
  }
}

function describeLoad(what: string, summary: LoadSummary): string {
  const files = summary.files.map((f) => `${f.file} (${f.format ?? 'unknown format'}, ${f.rows}/${f.total} rows)`).join(', ');
  const bad = summary.skips.total;
  return `[data] ${what}: ${summary.total - bad} of ${summary.total} rows usable from ${files}` + (bad > 0 ? `; ${bad} skipped` : '');
}

function range(from: number, to: number): Uint32Array {
  const out = new Uint32Array(Math.max(0, to - from));
  for (let i = 0; i < out.length; i++) out[i] = from + i;
  return out;
}

/**
 * Load the training split (and a validation split, from a ratio of the training rows or from separate files) as
 * PromptDatasets. Rows are normalised from VLM-R1 JSONL, verl/Ocean-R1 Parquet or R1-V files (auto-detected per
 * file), with image paths resolved against each source's image folder.
 *
 * ```ts
 * const { train, validation } = await loadPromptDatasets(
 *   { sources: [{ path: 'data/rec.jsonl', imageFolder: 'data/coco' }], promptTemplate: 'r1', maxPromptLength: 2048,
 *     maxPixels: 401408, validationRatio: 0.05, seed: 42 },
 *   { processor: model });
 * const batch = await train.next(8);   // 8 prepared prompts: { row, input: { inputIds, pixelValues, imageGridThw }, … }
 * ```
 * Throws DataError for bad options (`ERR_DATA_OPTIONS`), unreadable files (`ERR_DATA_READ`, `ERR_DATA_PARQUET`),
 * undetectable formats (`ERR_DATA_FORMAT`) and mostly broken data (`ERR_DATA_MOSTLY_BROKEN`).
 */
export async function loadPromptDatasets(options: PromptDatasetOptions, context: LoadPromptDatasetsContext): Promise<PromptDatasets> {
  const o = resolveDatasetOptions(options);
  if (!context || typeof context !== 'object' || !context.processor) {
    throw new TypeError('loadPromptDatasets: context.processor (a model, or {tokenizer, chatTemplate, preprocessor, config}) is required');
  }
  const log = context.log ?? ((m: string) => console.warn(m));
  const skipLog: SkipLogOptions = { log, maxWarnings: o.maxWarnings };
  const prepare: PrepareOptions = {
    template: resolvePromptTemplate(o.promptTemplate),
    systemPrompt: o.systemPrompt,
    maxPromptLength: o.maxPromptLength,
  };
  if (o.minPixels !== undefined) prepare.minPixels = o.minPixels;
  if (o.maxPixels !== undefined) prepare.maxPixels = o.maxPixels;
  if (o.video !== undefined) {
    const video: NonNullable<PrepareOptions['video']> = {};
    for (const [k, v] of Object.entries(o.video)) if (v !== undefined) (video as Record<string, number>)[k] = v;
    prepare.video = video;
  }
  const base = { seed: o.seed, maxBadFraction: o.maxBadFraction, prepare, processor: context.processor, skipLog };

  const train = await loadFiles(o.sources, o.checkImages, { ...skipLog, label: '[data:train]' });
  checkLoad('training', train.summary, o.maxBadFraction);
  log(describeLoad('training', train.summary));
  const n = train.table.numRows;

  if (o.validationSources) {
    const val = await loadFiles(o.validationSources, o.checkImages, { ...skipLog, label: '[data:validation]' });
    checkLoad('validation', val.summary, o.maxBadFraction);
    log(describeLoad('validation', val.summary));
    return {
      train: new PromptDataset(train.table, range(0, n), { ...base, name: 'train', shuffle: o.shuffle, load: train.summary, reportLoadSkips: true }),
      validation: new PromptDataset(val.table, range(0, val.table.numRows), {
        ...base, name: 'validation', shuffle: false, load: val.summary, reportLoadSkips: true,
      }),
    };
  }
  if (o.validationRatio > 0) {
    if (n < 2) {
      throw new DataError('ERR_DATA_OPTIONS', `validationRatio ${o.validationRatio} needs at least 2 usable rows; the training files have ${n}.`,
        'Add data, or set validationRatio to 0.');
    }
    const k = Math.min(n - 1, Math.max(1, Math.round(o.validationRatio * n)));
    const perm = permutation(n, o.seed, STREAM_SPLIT, 0);
    const valRows = perm.slice(0, k).sort();
    const trainRows = perm.slice(k).sort();
    log(`[data] validation split: ${k} of ${n} rows (validationRatio ${o.validationRatio}, seed ${o.seed})`);
    return {
      train: new PromptDataset(train.table, trainRows, { ...base, name: 'train', shuffle: o.shuffle, load: train.summary, reportLoadSkips: true }),
      validation: new PromptDataset(train.table, valRows, {
        ...base, name: 'validation', shuffle: false, load: train.summary, reportLoadSkips: false,
      }),
    };
  }
  return {
    train: new PromptDataset(train.table, range(0, n), { ...base, name: 'train', shuffle: o.shuffle, load: train.summary, reportLoadSkips: true }),
    validation: null,
  };
}
