/** The shapes that flow through one GRPO step: prompts in, rollouts, scores and advantages, then the update. */
import type { ModelInput } from '../model/vlm-model.js';
import type { ImageSize } from '../rewards/types.js';

/** A dataset row made ready for the model. */
export interface PreparedPrompt {
  /** Stable id of the row (for logs and the report). */
  id: string;
  input: ModelInput;
  /** Rendered prompt text (for logs). */
  text: string;
  groundTruth: unknown;
  /** The row's other columns, forwarded to reward functions. */
  row: Record<string, unknown>;
  /** Original and model-input sizes of each image, in order. */
  images: { original: ImageSize; input: ImageSize }[];
  /** Image file paths (for the report), when known. */
  imagePaths: string[];
}

/** Where prompts come from; the trainer saves and restores the cursor with checkpoints. */
export interface PromptSource {
  /** The next `n` prepared prompts (wrapping around epochs). */
  next(n: number): Promise<PreparedPrompt[]>;
  cursor(): unknown;
  restore(cursor: unknown): void;
  /** Optional counters for the step metrics (e.g. skipped rows by reason). */
  metrics?(): Record<string, number>;
}

/** One completion of one prompt. */
export interface Rollout {
  prompt: PreparedPrompt;
  /** Index of the prompt within the step's batch (its group). */
  group: number;
  /** Index within the group (0..G-1). */
  sample: number;
  tokens: Int32Array;
  /** Behaviour-policy log-probs returned by generation. */
  sampleLogprobs: Float32Array;
  text: string;
  truncated: boolean;
  rewards: Record<string, number>;
  reward: number;
  advantage: number;
}
