/**
 * Length and repetition rewards, expressed in [0, 1].
 *
 * Peers (peers.md §b.2, §b.3, §b.5, §b.7):
 * - repetition: OpenV-R1 / TRL — `-(1 - |unique n-grams| / |n-grams|)` over lower-cased words (OpenV, n=3) or token
 *   ids (TRL, n=3); VLM-R1 uses word 6-grams (and label duplicates for JSON boxes); 0 when there are fewer than n
 *   words.
 * - overlong: DAPO / EasyR1 dapo.py / TRL `get_soft_overlong_punishment` — 0 when L ≤ Lmax − buffer,
 *   (Lmax − buffer − L)/buffer up to Lmax, −1 beyond.
 * - cosine: OpenV-R1 / TRL `get_cosine_scaled_reward` — v_min + ½(v_max − v_min)(1 + cos(π·L/L_max)), with
 *   correct answers in [0.5, 1] (short is better) and wrong ones in [−1, −0.5] (long is better). VLM-R1's
 *   version overwrites the accuracy with 1.0 (always the "correct" branch) and does not clamp L, so it is
 *   periodic in L (1.0 again at L = 2048); OpenV-R1's defaults reward SHORT wrong answers most.
 *
 * Our rules (deliberate):
 * - Everything maps into [0, 1] by an affine map of the peers' value. A shift leaves group-normalised advantages
 *   unchanged; the cosine's factor ½ can be absorbed by doubling its weight.
 *   repetition = |unique n-grams| / |n-grams| (1 + peer penalty; 1 with fewer than n tokens);
 *   length = 1 + DAPO penalty; cosine = (TRL value + 1) / 2 with TRL's defaults (wrong 0 → 0.25, correct
 *   1 → 0.75 as L goes 0 → L_max).
 * - Tokens for repetition: lower-cased whitespace-separated words, each CJK character its own token (so Chinese
 *   text is not one giant "word"). Computed over the whole completion.
 * - Lengths are in characters, words, or tokens (`unit`; default: tokens when the sample carries
 *   `completionTokens`, else characters). L is clamped to L_max in the cosine (fixing the periodicity), and the
 *   cosine's correctness really comes from `accuracy` (correct when accuracy ≥ 0.5), fixing VLM-R1's overwrite.
 */
import { z } from 'zod';

import { accuracyOptionsSchema, accuracyScore } from './accuracy.js';
import { RewardError } from './errors.js';
import { readOptions } from './options.js';
import type { RewardSample } from './types.js';

const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]/u;

/** Lower-cased words, with each CJK character as its own token. */
export function repetitionTokens(text: string): string[] {
  if (typeof text !== 'string') return [];
  const spaced = text.toLowerCase().replace(new RegExp(CJK.source, 'gu'), (c) => ` ${c} `);
  return spaced.split(/\s+/).filter((t) => t.length > 0);
}

/** |unique n-grams| / |n-grams| of the tokens (1 when there are fewer than n tokens). */
export function distinctNgramRatio(tokens: readonly string[], n: number): number {
  const total = tokens.length - n + 1;
  if (total <= 0) return 1;
  const seen = new Set<string>();
  for (let i = 0; i < total; i++) seen.add(tokens.slice(i, i + n).join('\u0000'));
  return seen.size / total;
}

export const repetitionOptionsSchema = z.strictObject({
  /** n-gram size (default 3, as OpenV-R1 and TRL; VLM-R1 uses 6). */
  ngram: z.number().int().min(1).max(64).optional(),
});

/** `repetition`: the fraction of distinct word n-grams (1 = no repetition, → 0 for a looping completion). */
export function repetition(sample: RewardSample): number {
  const o = readOptions('repetition', repetitionOptionsSchema, sample.options);
  return distinctNgramRatio(repetitionTokens(sample.completion), o.ngram ?? 3);
}

const unitSchema = z.enum(['chars', 'words', 'tokens']);

/** The completion length in the chosen unit (see the top of this file). */
export function completionLength(sample: RewardSample, unit: 'chars' | 'words' | 'tokens' | undefined): number {
  const u = unit ?? (typeof sample.completionTokens === 'number' ? 'tokens' : 'chars');
  const text = typeof sample.completion === 'string' ? sample.completion : '';
  if (u === 'chars') return [...text].length;
  if (u === 'words') return repetitionTokens(text).length;
  const n = sample.completionTokens;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
    throw new RewardError(
      'ERR_REWARD_BAD_SAMPLE',
      `unit 'tokens' needs sample.completionTokens (a non-negative number), got ${JSON.stringify(n)}.`,
      "Pass completionTokens with each sample, or use unit 'chars' or 'words'.",
    );
  }
  return n;
}

export const lengthOptionsSchema = z
  .strictObject({
    /** Hard limit L_max (default 4096). */
    maxLength: z.number().int().positive().optional(),
    /** Soft zone before L_max where the reward falls linearly (default L_max / 4). */
    buffer: z.number().int().positive().optional(),
    unit: unitSchema.optional(),
  })
  .refine((o) => o.buffer === undefined || o.buffer <= (o.maxLength ?? 4096), {
    message: 'buffer must be at most maxLength',
    path: ['buffer'],
  });

/** `length`: DAPO soft overlong as a reward: 1 up to L_max − buffer, linear to 0 at L_max, 0 beyond. */
export function length(sample: RewardSample): number {
  const o = readOptions('length', lengthOptionsSchema, sample.options);
  const maxLength = o.maxLength ?? 4096;
  const buffer = o.buffer ?? Math.max(1, Math.floor(maxLength / 4));
  const L = completionLength(sample, o.unit);
  const soft = maxLength - buffer;
  if (L <= soft) return 1;
  if (L >= maxLength) return 0;
  return Math.min(1, Math.max(0, 1 - (L - soft) / buffer));
}

const unit01 = z.number().min(0).max(1);
export const cosineOptionsSchema = z
  .strictObject({
    /** L_max (default 1000, as OpenV-R1). */
    maxLength: z.number().int().positive().optional(),
    unit: unitSchema.optional(),
    /** Reward of a correct answer at L = L_max (default 0.75) and at L = 0 (default 1). */
    minCorrect: unit01.optional(),
    maxCorrect: unit01.optional(),
    /** Reward of a wrong answer at L = 0 (default 0) and at L = L_max (default 0.25). */
    minWrong: unit01.optional(),
    maxWrong: unit01.optional(),
    /** Options for the accuracy check that decides correctness (method, tolerance, …). */
    accuracy: accuracyOptionsSchema.optional(),
  })
  .refine((o) => (o.minCorrect ?? 0.75) <= (o.maxCorrect ?? 1) && (o.minWrong ?? 0) <= (o.maxWrong ?? 0.25), {
    message: 'need minCorrect ≤ maxCorrect and minWrong ≤ maxWrong',
  });

/**
 * `cosine`: length-scaled correctness. Correct answers get maxCorrect at L = 0 falling to minCorrect at L_max;
 * wrong answers get minWrong at L = 0 rising to maxWrong at L_max; L is clamped to L_max.
 */
export function cosine(sample: RewardSample): number {
  const o = readOptions('cosine', cosineOptionsSchema, sample.options);
  const maxLength = o.maxLength ?? 1000;
  const L = Math.min(completionLength(sample, o.unit), maxLength);
  const correct = accuracyScore(sample, o.accuracy ?? {}) >= 0.5;
  const c = Math.cos((Math.PI * L) / maxLength);
  const [lo, hi] = correct ? [o.minCorrect ?? 0.75, o.maxCorrect ?? 1] : [o.maxWrong ?? 0.25, o.minWrong ?? 0];
  // TRL: v_min + ½(v_max − v_min)(1 + cos): equals hi at L = 0 and lo at L = L_max.
  const r = lo + 0.5 * (hi - lo) * (1 + c);
  return Math.min(1, Math.max(0, r));
}
