/**
 * Counting reward ("How many …?" with an integer ground truth, e.g. SuperCLEVR, CLEVR-count).
 *
 * Peers: R1-V trains SuperCLEVR counting with its generic accuracy (math_verify over the whole completion, then
 * exact string equality of the `<answer>` span) — peers.md §b.1; no peer reads number words.
 *
 * Our rule (beyond the peers, deliberately):
 * - The count is read from the compared text (answer.ts) with values.ts's candidates: `\boxed{3}`, `3`, `3.`,
 *   `3 objects`, `The answer is 3`, `x = 3`; else the single distinct integer in running text ("There are 3
 *   cubes"). Only when the text has no digits at all, English number words count: "three", "twenty-one",
 *   "none"/"zero" → 0 — again only when exactly one distinct count is mentioned ("three cubes, one of them red"
 *   is ambiguous and scores 0).
 * - Reward 1 when the count equals the ground truth exactly, else 0. A non-integer or negative reading, or a
 *   ground truth that is not a non-negative integer, scores 0.
 */
import { z } from 'zod';

import { extractAnswer, groundTruthText } from './answer.js';
import { extractBoxed, findNumberWords, normalizeLatex } from './numbers.js';
import { readOptions } from './options.js';
import type { RewardSample } from './types.js';
import { anchoredRemainder, numericValues, readAnswerNumber } from './values.js';

function asCount(v: number | undefined): number | undefined {
  return v !== undefined && Number.isInteger(v) && v >= 0 ? v : undefined;
}

function uniqueWordCount(text: string): number | undefined {
  const values = [...new Set(findNumberWords(text))];
  return values.length === 1 ? values[0] : undefined;
}

/** The count an answer states, or undefined (see the rule at the top of this file). Never throws. */
export function readCount(answer: string): number | undefined {
  if (!answer) return undefined;
  const nums = readAnswerNumber(answer);
  if (nums !== undefined) return asCount(nums[0]);
  const scope = extractBoxed(answer) ?? answer;
  if (/\d/.test(normalizeLatex(scope))) return undefined;
  const anchored = anchoredRemainder(scope);
  return asCount(uniqueWordCount(anchored ?? scope) ?? (anchored !== undefined ? uniqueWordCount(scope) : undefined));
}

/** The ground-truth count, or undefined when it is not a non-negative integer. */
export function groundTruthCount(groundTruth: unknown): number | undefined {
  if (typeof groundTruth === 'number') return asCount(groundTruth);
  const text = groundTruthText(groundTruth);
  const v = numericValues(text)[0];
  if (v !== undefined) return asCount(v);
  return /\d/.test(text) ? undefined : asCount(uniqueWordCount(text));
}

/** 1 when the answer's count equals the ground truth's. */
export function countingScore(answer: string, groundTruth: unknown): number {
  const want = groundTruthCount(groundTruth);
  if (want === undefined) return 0;
  return readCount(answer) === want ? 1 : 0;
}

export const countingOptionsSchema = z.strictObject({});

/** `counting`: exact integer count (digits or English number words). */
export function counting(sample: RewardSample): number {
  readOptions('counting', countingOptionsSchema, sample.options);
  return countingScore(extractAnswer(sample.completion), sample.groundTruth);
}
