/** Shared settings of the ZeroAdamW equivalence check (parent and rank scripts). */
import type { LoraOptions } from '../../src/model/lora.js';
import type { OptimizerSettings } from '../../src/rl/optimizer.js';
import { rankData } from './comm-data.js';

export const STEPS = 3;

/** maxGradNorm 1: steps 0 and 1 are clipped (norm >> 1), step 2 is not (norm << 1). */
export const SETTINGS: OptimizerSettings = {
  lr: 1e-2, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: 1, schedule: 'linear', warmupSteps: 1, totalSteps: 5,
};

export const LORA: LoraOptions = { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 3 };

/** An odd window of the parameter buffer (offsets on both sides). */
export function paramRange(total: number): { target: 'params'; begin: number; end: number } {
  return { target: 'params', begin: 37, end: total - 11 };
}

const SCALES = [0.1, 0.01, 1e-5];

/** Rank r's share of step s's gradient written into buf[begin, begin + n). */
export function fillShare(buf: Float32Array, begin: number, n: number, seed: number, rank: number, world: number, s: number): void {
  const d = rankData(seed, rank, 1000 + s * 10 + world, n, SCALES[s] ?? 1);
  for (let i = 0; i < n; i++) buf[begin + i] = d[i] ?? NaN;
}
