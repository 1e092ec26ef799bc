/**
 * Group-relative advantages (one value per completion, broadcast over its tokens).
 *  grpo:  A_i = (R_i − mean_g) / (std_g + eps)   with std_g the unbiased (N−1) std of the group (verl, TRL)
 *         scale 'batch': divide by the std of the whole batch instead (TRL scale_rewards=batch, LitePPO);
 *         scale 'none':  A_i = R_i − mean_g (Dr.GRPO).
 *  rloo:  A_i = G/(G−1)·(R_i − mean_g) = R_i − mean of the other completions of the group.
 * Completions of group g are rewards[g*G .. g*G+G); groups never mix, whatever the batch size.
 */
export type AdvantageEstimator = 'grpo' | 'rloo';
export type RewardScaling = 'group' | 'batch' | 'none';

export interface AdvantageResult {
  advantages: Float32Array;
  /** Per group: mean and unbiased std of its rewards. */
  groupMean: Float64Array;
  groupStd: Float64Array;
  /** Groups whose rewards are all equal (std 0): they carry no learning signal. */
  zeroStdGroups: number;
}

function unbiasedStd(xs: ArrayLike<number>, begin: number, end: number, mean: number): number {
  const n = end - begin;
  if (n < 2) return 0;
  let s = 0;
  for (let i = begin; i < end; i++) s += (xs[i]! - mean) ** 2;
  return Math.sqrt(s / (n - 1));
}

export function computeAdvantages(
  rewards: ArrayLike<number>,
  groupSize: number,
  opts: { estimator: AdvantageEstimator; scale: RewardScaling; eps: number },
): AdvantageResult {
  const G = groupSize;
  if (!Number.isInteger(G) || G < 1) throw new RangeError(`groupSize must be a positive integer, got ${G}`);
  if (rewards.length % G !== 0) throw new RangeError(`${rewards.length} rewards are not a whole number of groups of ${G}`);
  for (let i = 0; i < rewards.length; i++) {
    if (!Number.isFinite(rewards[i]!)) throw new RangeError(`reward ${i} is ${rewards[i]}; rewards must be finite`);
  }
  const groups = rewards.length / G;
  const groupMean = new Float64Array(groups);
  const groupStd = new Float64Array(groups);
  let zeroStdGroups = 0;
  for (let g = 0; g < groups; g++) {
    let s = 0;
    for (let i = g * G; i < (g + 1) * G; i++) s += rewards[i]!;
    groupMean[g] = s / G;
    groupStd[g] = unbiasedStd(rewards, g * G, (g + 1) * G, groupMean[g]!);
    if (groupStd[g] === 0) zeroStdGroups++;
  }
  let batchStd = 0;
  if (opts.scale === 'batch') {
    let s = 0;
    for (let i = 0; i < rewards.length; i++) s += rewards[i]!;
    batchStd = unbiasedStd(rewards, 0, rewards.length, s / rewards.length);
  }
  const advantages = new Float32Array(rewards.length);
  for (let i = 0; i < rewards.length; i++) {
    const g = Math.floor(i / G);
    const centered = rewards[i]! - groupMean[g]!;
    if (opts.estimator === 'rloo') {
      advantages[i] = G > 1 ? (G / (G - 1)) * centered : 0;
    } else if (opts.scale === 'group') {
      advantages[i] = centered / (groupStd[g]! + opts.eps);
    } else if (opts.scale === 'batch') {
      advantages[i] = centered / (batchStd + opts.eps);
    } else {
      advantages[i] = centered;
    }
  }
  return { advantages, groupMean, groupStd, zeroStdGroups };
}

/**
 * DAPO's soft overlong punishment: 0 up to (maxLen − buffer) tokens, then linearly down to −factor at maxLen.
 */
export function overlongPenalty(length: number, maxLen: number, buffer: number, factor: number): number {
  if (buffer <= 0) return 0;
  const expected = maxLen - buffer;
  if (length <= expected) return 0;
  return (Math.max(expected - length, -buffer) / buffer) * factor;
}
