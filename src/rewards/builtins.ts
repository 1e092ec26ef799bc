/**
 * The registry of built-in rewards: name → function, options schema and a one-line description.
 * Each function takes one RewardSample and returns a number in [0, 1]; see the file named in each entry for the
 * exact rule and how it relates to the peers (accuracy.ts, format.ts, iou.ts, counting.ts, length-penalty.ts).
 * Names follow the peers where they exist (accuracy, format, iou, repetition, cosine; VLM-R1's accuracy methods
 * mcq / yes_no / math / all_match→exact as fixed-method built-ins).
 */
import { z } from 'zod';

import {
  accuracy,
  accuracyOptionsSchema,
  exactAccuracy,
  mathAccuracy,
  mcqAccuracy,
  numericAccuracy,
  yesNoAccuracy,
} from './accuracy.js';
import { counting, countingOptionsSchema } from './counting.js';
import {
  format,
  formatBoxed,
  formatLenient,
  formatOptionsSchema,
  formatRec,
  formatRecOptionsSchema,
  formatStrict,
  noOptionsSchema,
} from './format.js';
import { iou, iou50, iou50OptionsSchema, iouOptionsSchema } from './iou.js';
import {
  cosine,
  cosineOptionsSchema,
  length,
  lengthOptionsSchema,
  repetition,
  repetitionOptionsSchema,
} from './length-penalty.js';
import type { RewardFunction, RewardSample } from './types.js';

export interface BuiltinReward {
  fn: (sample: RewardSample) => number;
  schema: z.ZodType;
  description: string;
}

const entry = (fn: BuiltinReward['fn'], schema: z.ZodType, description: string): BuiltinReward => ({ fn, schema, description });

export const builtinRewards = {
  accuracy: entry(
    accuracy,
    accuracyOptionsSchema,
    'answer matches the ground truth (auto: numbers, LaTeX, choices, yes/no, tuples, expressions, text; per-row method)',
  ),
  numeric: entry(numericAccuracy.fn, numericAccuracy.schema, 'the ground-truth number (tolerance, units, degrees, separators, fractions)'),
  math: entry(mathAccuracy.fn, mathAccuracy.schema, 'mathematically equivalent to the ground truth (numbers or expressions)'),
  mcq: entry(mcqAccuracy.fn, mcqAccuracy.schema, 'picks the ground-truth choice letter'),
  yes_no: entry(yesNoAccuracy.fn, yesNoAccuracy.schema, 'says the ground-truth yes/no'),
  exact: entry(exactAccuracy.fn, exactAccuracy.schema, 'equals the ground truth after whitespace/case/LaTeX normalisation'),
  counting: entry(counting, countingOptionsSchema, 'states the ground-truth count (digits or number words)'),
  format: entry(format, formatOptionsSchema, '<think>…</think><answer>…</answer> (options.mode strict|lenient, requireBox)'),
  format_strict: entry(formatStrict, noOptionsSchema, 'strict <think>…</think><answer>…</answer>'),
  format_lenient: entry(formatLenient, noOptionsSchema, 'lenient <think>…</think><answer>…</answer>'),
  format_rec: entry(formatRec, formatRecOptionsSchema, 'think/answer with a box in the answer (options.mode)'),
  format_boxed: entry(formatBoxed, noOptionsSchema, '<think>…</think> then a \\boxed{} answer'),
  iou: entry(iou, iouOptionsSchema, 'IoU of the first predicted box with the ground truth (options.threshold for binary)'),
  iou50: entry(iou50, iou50OptionsSchema, '1 when IoU ≥ 0.5'),
  repetition: entry(repetition, repetitionOptionsSchema, 'fraction of distinct word n-grams (options.ngram, default 3)'),
  length: entry(length, lengthOptionsSchema, 'DAPO soft overlong: 1 up to maxLength − buffer, linear to 0 at maxLength'),
  cosine: entry(cosine, cosineOptionsSchema, 'length-scaled correctness (short correct best, long wrong least bad)'),
} satisfies Record<string, BuiltinReward>;

export type BuiltinRewardName = keyof typeof builtinRewards;

/** Built-in reward names. */
export const builtinRewardNames = Object.keys(builtinRewards) as BuiltinRewardName[];

/** A built-in reward: synchronous, (sample) => number in [0, 1]. */
export type SyncRewardFunction = (sample: RewardSample) => number;

/**
 * Built-in rewards by name: (sample) => number in [0, 1]. Known names are typed exactly; indexing with any other
 * string gives `RewardFunction | undefined`.
 */
export const rewardFunctions: Readonly<Record<BuiltinRewardName, SyncRewardFunction>> &
  Readonly<Partial<Record<string, RewardFunction>>> = Object.freeze(
  Object.fromEntries(builtinRewardNames.map((n) => [n, builtinRewards[n].fn])) as Record<BuiltinRewardName, SyncRewardFunction>,
);
