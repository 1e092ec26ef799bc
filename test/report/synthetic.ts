/** Synthetic StepMetrics and rollouts for the report tests (seeded, so failures reproduce). */
import type { RolloutInput, StepMetrics } from '../../src/report/index.js';

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A plausible StepMetrics for `step`, every number drawn from `r`. */
export function makeMetrics(step: number, r: () => number): StepMetrics {
  const summary = () => {
    const a = r();
    const b = r();
    return { mean: (a + b) / 2, std: Math.abs(a - b) / 2, min: Math.min(a, b), max: Math.max(a, b) };
  };
  const len = 100 + Math.floor(r() * 400);
  return {
    step,
    time: 1_700_000_000_000 + step * 1000 + Math.floor(r() * 100),
    epoch: step / 50,
    reward: summary(),
    rewards: { accuracy: summary(), format: summary() },
    accuracy: r(),
    fracZeroStdGroups: r(),
    completionLength: { mean: len, min: len - 50, max: len + 80 },
    truncatedFrac: r() * 0.1,
    kl: r() * 0.01,
    entropy: 0.5 + r(),
    clipFrac: { low: r() * 0.01, high: r() * 0.02, dual: r() * 0.001 },
    loss: r() - 0.5,
    gradNorm: r() * 3,
    lr: 1e-6 * (1 + r()),
    tokens: { prompt: 4096 + Math.floor(r() * 100), completion: 2048 + Math.floor(r() * 100) },
    tokensPerSecond: 1000 + r() * 500,
    seconds: { generation: 3 + r(), scoring: 0.1 * r(), update: 2 + r(), total: 6 + r() },
    reflection: { total: 7, perCompletion: 7 / 16, fracWithAny: 0.25 + r() * 0.5, counts: { wait: 4, recheck: 2, however: 1 } },
  };
}

/** `groups` groups of `groupSize` completions for one step, with unicode and HTML-looking text. */
export function makeRollouts(step: number, groups: number, groupSize: number, r: () => number, images: string[] = []): RolloutInput[] {
  const out: RolloutInput[] = [];
  for (let g = 0; g < groups; g++) {
    for (let s = 0; s < groupSize; s++) {
      const acc = r() < 0.5 ? 0 : 1;
      const fmt = r();
      out.push({
        promptId: `p-${step}-${g}`,
        groupIndex: g,
        sampleIndex: s,
        prompt: `How many 🍎 are in the image? (step ${step}, group ${g}) — réponse en français`,
        completion: `<think>Wait, let me recheck… 数一数 ${s}</think><answer>${Math.floor(r() * 10)}</answer>`,
        reward: acc + 0.1 * fmt,
        rewards: { accuracy: acc, format: fmt },
        advantage: r() * 2 - 1,
        length: 10 + Math.floor(r() * 300),
        truncated: r() < 0.2,
        finishReason: r() < 0.2 ? 'length' : 'stop',
        images,
      });
    }
  }
  return out;
}
