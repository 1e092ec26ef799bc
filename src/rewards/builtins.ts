/**
 * The registry of built-in rewards: name → function, options schema and a one-line description.
 * Each function takes one RewardSample and returns a number in [0, 1]; see the file named in each entry for the
 * exact rule and how it relates to the peers (accuracy.ts, format.ts, iou.ts, counting.ts, length-penalty.ts).
 * Names follow the peers where they exist (accuracy, format, iou, repetition, cosine; VLM-R1's accuracy methods
 * mcq / yes_no / math as fixed-method built-ins; its detection methods map / od_ap / od_ap50 / od_length
 * (alias odLength) / weighted_sum and all_match in detection.ts; its `llm` judge in llm-judge.ts).
 * Every built-in is synchronous except `llm` (marked `async: true`), which returns a Promise.
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
  allMatchOptionsSchema,
  allMatchReward,
  mapOptionsSchema,
  mapReward,
  odAp50Reward,
  odApReward,
  odLengthReward,
  weightedSumOptionsSchema,
  weightedSumReward,
} from './detection.js';
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
import { llm, llmOptionsSchema } from './llm-judge.js';
import type { RewardFunction, RewardSample } from './types.js';

export interface BuiltinReward {
  fn: RewardFunction;
  schema: z.ZodType;
  description: string;
  /** The function returns a Promise (it calls a service); every other built-in returns a number. */
  async: boolean;
}

const entry = <F extends (sample: RewardSample) => number>(fn: F, schema: z.ZodType, description: string) => ({ fn, schema, description, async: false as const });
const asyncEntry = <F extends (sample: RewardSample) => Promise<number>>(fn: F, schema: z.ZodType, description: string) => ({ fn, schema, description, async: true as const });

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
  map: entry(mapReward, mapOptionsSchema, 'COCO mAP@[.5:.95] of the answer\'s {bbox_2d, label} list against the ground truth\'s'),
  od_ap: entry(odApReward, mapOptionsSchema, 'COCO mAP@[.5:.95] over the last <answer> span ("None" vs "None" scores 1)'),
  od_ap50: entry(odAp50Reward, mapOptionsSchema, 'COCO AP@0.5 over the last <answer> span ("None" vs "None" scores 1)'),
  od_length: entry(odLengthReward, mapOptionsSchema, 'od_ap × min(1, |gt| / |pred|): mAP with a penalty for extra boxes'),
  odLength: entry(odLengthReward, mapOptionsSchema, 'alias of od_length (VLM-R1 spelling)'),
  weighted_sum: entry(weightedSumReward, weightedSumOptionsSchema, 'detection score: 0.7·matched IoU + 0.3·completeness (greedy IoU ≥ 0.5 matching)'),
  all_match: entry(allMatchReward, allMatchOptionsSchema, 'answer equals the ground truth after VLM-R1 clean_text (trim, lower-case, no trailing dots)'),
  llm: asyncEntry(llm, llmOptionsSchema, 'an OpenAI-compatible judge model says the answer matches (exact match when it fails); async'),
} satisfies Record<string, BuiltinReward>;

export type BuiltinRewardName = keyof typeof builtinRewards;

/** Built-in reward names. */
export const builtinRewardNames = Object.keys(builtinRewards) as BuiltinRewardName[];

/** A built-in reward: synchronous, (sample) => number in [0, 1]. */
export type SyncRewardFunction = (sample: RewardSample) => number;

/** Names of the synchronous built-ins (every one but `llm`). */
export type SyncBuiltinRewardName = {
  [K in BuiltinRewardName]: (typeof builtinRewards)[K]['async'] extends false ? K : never;
}[BuiltinRewardName];

/** The synchronous built-in names, in registry order. */
export const syncBuiltinRewardNames = builtinRewardNames.filter((n) => !builtinRewards[n].async) as SyncBuiltinRewardName[];

/**
 * Built-in rewards by name: (sample) => number in [0, 1], or a Promise of one for `llm`. Known names are typed
 * exactly; indexing with any other string gives `RewardFunction | undefined`.
 */
export const rewardFunctions: Readonly<Record<SyncBuiltinRewardName, SyncRewardFunction>> &
  Readonly<Record<Exclude<BuiltinRewardName, SyncBuiltinRewardName>, (sample: RewardSample) => Promise<number>>> &
  Readonly<Partial<Record<string, RewardFunction>>> = Object.freeze(
  Object.fromEntries(builtinRewardNames.map((n) => [n, builtinRewards[n].fn])) as Record<BuiltinRewardName, SyncRewardFunction> &
    Record<'llm', (sample: RewardSample) => Promise<number>>,
);
