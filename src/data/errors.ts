/**
 * Data errors and skip diagnostics.
 *
 * A bad row never stops training by itself: it is skipped with a warning that names the file and line, and counted
 * by reason (malformed line, invalid row, missing image, undecodable image, over-long prompt). When more than
 * `maxBadFraction` of the rows are bad the dataset is broken as a whole (wrong image folder, wrong format, truncated
 * download) and loading or sampling stops with a {@link DataError} naming the counts and the first problems.
 */
import path from 'node:path';
import { VlmGrpoError } from '../errors.js';
import { SKIP_REASONS, type RowSource, type SkipReason, type SkippedRow } from './types.js';

/** An error about the dataset as a whole (unreadable file, unknown format, mostly broken, bad options, resume mismatch). */
export class DataError extends VlmGrpoError {
  constructor(code: string, message: string, remedy: string, options?: { cause?: unknown }) {
    super(code, message, remedy, options);
    this.name = 'DataError';
  }
}

/** "train.jsonl:7", "train.parquet row 7", "train.json item 7": how warnings name a row. */
export function formatSource(source: RowSource): string {
  const ext = path.extname(source.file).toLowerCase();
  if (ext === '.parquet') return `${source.file} row ${source.line}`;
  if (ext === '.json') return `${source.file} item ${source.line}`;
  return `${source.file}:${source.line}`;
}

const REASON_TEXT: Record<SkipReason, string> = {
  malformed: 'malformed line',
  invalid: 'invalid row',
  'missing-image': 'missing image',
  'undecodable-image': 'undecodable image',
  'over-long': 'over-long prompt',
};

/** Human wording of a skip reason ("missing image"). */
export function describeReason(reason: SkipReason): string {
  return REASON_TEXT[reason];
}

/** Metric key of a skip reason ("missing_image"). */
export function reasonKey(reason: SkipReason): string {
  return reason.replace('-', '_');
}

/** A zeroed counter per skip reason. */
export function emptyCounts(): Record<SkipReason, number> {
  return Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
}

/** Options of {@link SkipLog}. */
export interface SkipLogOptions {
  /** Where warnings go. Default console.warn. */
  log?: (message: string) => void;
  /** Warnings printed one by one before they are only counted. Default 20. */
  maxWarnings?: number;
  /** Prefix of each warning, e.g. "[data]" or "[data:validation]". */
  label?: string;
}

/** How many problems are kept to quote in errors. */
const KEPT_PROBLEMS = 5;

/** Counts skipped rows by reason, warns for each (up to a limit), and keeps the first few for error messages. */
export class SkipLog {
  readonly counts: Record<SkipReason, number> = emptyCounts();
  readonly #problems: SkippedRow[] = [];
  readonly #log: (message: string) => void;
  readonly #maxWarnings: number;
  readonly #label: string;
  #warned = 0;

  constructor(options: SkipLogOptions = {}) {
    this.#log = options.log ?? ((m) => console.warn(m));
    this.#maxWarnings = options.maxWarnings ?? 20;
    this.#label = options.label ?? '[data]';
  }

  /** Count one skipped row and warn about it. */
  record(skip: SkippedRow): void {
    this.counts[skip.reason]++;
    if (this.#problems.length < KEPT_PROBLEMS) this.#problems.push(skip);
    if (this.#warned < this.#maxWarnings) {
      this.#warned++;
      this.#log(`${this.#label} skipped ${formatSource(skip.source)} (${describeReason(skip.reason)}): ${skip.message}`);
      if (this.#warned === this.#maxWarnings) {
        this.#log(`${this.#label} further skipped rows are counted but not logged one by one (maxWarnings = ${this.#maxWarnings}).`);
      }
    }
  }

  /** Number of skipped rows, all reasons together. */
  get total(): number {
    let n = 0;
    for (const r of SKIP_REASONS) n += this.counts[r];
    return n;
  }

  /** The first few skipped rows, in the order they were found. */
  get problems(): readonly SkippedRow[] {
    return this.#problems;
  }
}

/** "3 malformed line, 2 missing image" for the non-zero counts. */
export function describeCounts(counts: Record<SkipReason, number>): string {
  const parts = SKIP_REASONS.filter((r) => counts[r] > 0).map((r) => `${counts[r]} ${describeReason(r)}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/**
 * The error for a dataset whose bad share exceeds `maxBadFraction`. `bad` / `total` are the counts the fraction was
 * computed from (an estimate while sampling: see PromptDataset), `counts` the skips by reason, `problems` the first
 * skipped rows.
 */
export function mostlyBrokenError(args: {
  what: string;
  bad: number;
  total: number;
  fraction: number;
  maxBadFraction: number;
  counts: Record<SkipReason, number>;
  problems: readonly SkippedRow[];
}): DataError {
  const pct = (args.fraction * 100).toFixed(1);
  const first = args.problems.map((p) => `\n  - ${formatSource(p.source)} (${describeReason(p.reason)}): ${p.message}`).join('');
  return new DataError(
    'ERR_DATA_MOSTLY_BROKEN',
    `${args.what}: ${args.bad} of ${args.total} rows are unusable (${pct}%, above maxBadFraction ${args.maxBadFraction}). ` +
      `Skipped: ${describeCounts(args.counts)}. First problems:${first}`,
    'Fix the rows named above (a wrong imageFolder or format is the usual cause), or raise maxBadFraction (0..1) if ' +
      'skipping this many rows is intended.',
  );
}
