/**
 * The normalised dataset row every input format (VLM-R1 JSONL, verl/Ocean-R1 Parquet, R1-V) is turned into.
 *
 * Messages carry `{ type: 'image' }` parts where the row's `<image>` placeholders were (or before the text of the
 * first user turn when the row had images but no placeholder, as R1-V does), so `images[k]` is the image of the
 * k-th image part in reading order; `<video>` placeholders and `videos[k]` likewise. Everything except image bytes is JSON-serialisable, so a row can be held in an
 * Arrow table (table.ts) with its JSON columns as utf8.
 */

/** Where a row came from. `line` is 1-based: the line of a JSONL file, the item of a JSON array, the row of a Parquet file. */
export interface RowSource {
  file: string;
  line: number;
}

/** A text part of a prompt message. */
export interface RowTextPart {
  type: 'text';
  text: string;
}

/** An image part: the image is the row's `images[k]` for the k-th image part in reading order. */
export interface RowImagePart {
  type: 'image';
}

/** A video part: the video is the row's `videos[k]` for the k-th video part in reading order. */
export interface RowVideoPart {
  type: 'video';
}

export type RowContentPart = RowTextPart | RowImagePart | RowVideoPart;

/** One chat message of the prompt (system, user or an earlier assistant turn). */
export interface RowMessage {
  role: string;
  content: RowContentPart[];
}

/** An image of a row: an absolute file path (relative paths are resolved against the source's image folder) or encoded bytes. */
export type RowImage = { path: string } | { bytes: Uint8Array };

/**
 * A video of a row: a video file or a directory of frames (`path`, absolute), or a list of frame images (`frames`,
 * as VLM-R1 / qwen-vl-utils `"video": [frame paths]`).
 */
export type RowVideo = { path: string } | { frames: RowImage[] };

/** The input formats the loader understands. */
export type DatasetFormat = 'vlm-r1' | 'verl' | 'r1v';

/** The names of {@link DatasetFormat}, for validation and messages. */
export const DATASET_FORMATS: readonly DatasetFormat[] = ['vlm-r1', 'verl', 'r1v'];

/** A normalised dataset row. */
export interface PromptRow {
  /** The row's own id when it has one (VLM-R1 `id`, verl `extra_info.index`), else "<file name>:<line>". */
  id: string;
  source: RowSource;
  /** Format the row was read as. */
  format: DatasetFormat;
  /** The prompt: chat messages with image parts in placeholder order (no prompt template applied yet). */
  messages: RowMessage[];
  /** One entry per image part, in order. Empty for text-only rows. */
  images: RowImage[];
  /** One entry per video part, in order (absent or empty: no videos). */
  videos?: RowVideo[];
  /**
   * The reference answer, as given (JSON-serialisable): VLM-R1 the last gpt turn's value, verl
   * `reward_model.ground_truth`, R1-V `solution` (rewards extract the `<answer>` span themselves).
   */
  groundTruth: unknown;
  /** Per-row reward method: VLM-R1 `accu_reward_method`, verl `extra_info.reward_func`, R1-V `reward_func`; else the source's default. */
  rewardMethod: string | null;
  /** verl `data_source` (or a `data_source` column of the other formats). */
  dataSource: string | null;
  /** The row's other columns (JSON-serialisable), forwarded to reward functions. */
  extra: Record<string, unknown>;
}

/** Why a row was skipped. */
export type SkipReason = 'malformed' | 'invalid' | 'missing-image' | 'undecodable-image' | 'over-long';

/** All skip reasons, in reporting order. */
export const SKIP_REASONS: readonly SkipReason[] = ['malformed', 'invalid', 'missing-image', 'undecodable-image', 'over-long'];

/** One skipped row: where, why, and a sentence saying what was wrong. */
export interface SkippedRow {
  source: RowSource;
  reason: SkipReason;
  message: string;
}
