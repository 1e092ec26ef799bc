/**
 * The reward-function contract.
 *
 * A reward scores ONE sample and returns a number in [0, 1] (or a Promise of one). Built-ins never throw on any
 * completion text; they throw a RewardError only for misuse (bad options, malformed image sizes). Peers return
 * penalties in [-1, 0] (repetition, overlong) or sums above 1 (R1-V's accuracy + format); we keep every built-in
 * in [0, 1] and express the peers' penalties as 1 + penalty. A constant shift per reward does not change
 * group-normalised GRPO advantages, so training signals are the same (documented per file).
 */

/** Width and height of an image in pixels. */
export interface ImageSize {
  width: number;
  height: number;
}

/** One completion to score, with everything a reward may need. */
export interface RewardSample {
  /** The generated text (decoded without special tokens). */
  completion: string;
  /** The reference answer: a string (may hold `<answer>…</answer>`), a number, a box, a list of accepted answers… */
  groundTruth: unknown;
  /** The dataset row's other columns (e.g. `reward_method`, `accu_reward_method`, `reward_func`). */
  row?: Record<string, unknown>;
  /** Original image sizes, in the order the images appear in the prompt. */
  images?: ImageSize[];
  /** Sizes the model actually saw after resizing (Qwen2.5-VL: grid·14). Predicted boxes live in this frame. */
  inputImages?: ImageSize[];
  /** Per-reward options (set by the reward spec; e.g. `threshold` for `iou`). */
  options?: Record<string, unknown>;
  /** Number of completion tokens, when the trainer knows it (length rewards with `unit: 'tokens'`). */
  completionTokens?: number;
  /**
   * Set by RewardScorer for per-sample rewards: a reward that recovers from a failure and still returns a value
   * (e.g. `llm` falling back to exact match when its endpoint fails) reports the failure here, so it is counted
   * and logged like a thrown error while the returned value is kept.
   */
  reportError?: (error: unknown) => void;
}

/** A per-sample reward: a number in [0, 1] for built-ins (custom rewards may return any finite number). */
export type RewardFunction = (sample: RewardSample) => number | Promise<number>;

/** A batched reward: one number per sample, in order. */
export type BatchedRewardFunction = (samples: RewardSample[]) => number[] | Promise<number[]>;
