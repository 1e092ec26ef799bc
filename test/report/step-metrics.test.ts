import { describe, expect, it } from 'vitest';

import {
  flattenStepMetrics,
  fracZeroStdGroups,
  lengthStats,
  summarize,
  summarizeRewards,
  validateStepMetrics,
} from '../../src/report/index.js';
import { makeMetrics, rng } from './synthetic.js';

/** Plain reference: mean, population std via the definition, min and max by sorting. */
function reference(xs: number[]) {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = xs.map((x) => (x - mean) ** 2).reduce((a, b) => a + b, 0) / n;
  const sorted = [...xs].sort((a, b) => a - b);
  return { mean, std: Math.sqrt(variance), min: sorted[0], max: sorted[n - 1] };
}

describe('summarize', () => {
  it('matches a plain reference on random inputs (arrays and typed arrays)', () => {
    const r = rng(11);
    for (let trial = 0; trial < 20; trial++) {
      const n = 1 + Math.floor(r() * 50);
      const xs = Array.from({ length: n }, () => (r() - 0.3) * 10 ** Math.floor(r() * 4));
      const ref = reference(xs);
      for (const input of [xs, Float64Array.from(xs)]) {
        const s = summarize(input);
        expect(s.mean).toBeCloseTo(ref.mean, 10);
        expect(s.std).toBeCloseTo(ref.std, 10);
        expect(s.min).toBe(ref.min);
        expect(s.max).toBe(ref.max);
      }
    }
  });

  it('is stable for a large offset (two-pass std)', () => {
    const s = summarize([1e9 + 1, 1e9 + 2, 1e9 + 3]);
    expect(s.std).toBeCloseTo(Math.sqrt(2 / 3), 6);
  });

  it('propagates NaN and rejects empty or non-numeric input', () => {
    expect(summarize([1, NaN]).mean).toBeNaN();
    expect(() => summarize([])).toThrow(RangeError);
    expect(() => summarize(['a' as unknown as number])).toThrow(/must be a number/);
  });
});

describe('fracZeroStdGroups', () => {
  it('counts groups whose rewards are all equal (nested and flat layouts)', () => {
    expect(fracZeroStdGroups([[1, 1, 1], [0, 1, 0], [0.5, 0.5, 0.5], [0, 0, 1]])).toBe(0.5);
    expect(fracZeroStdGroups([1, 1, 0, 1, 0, 0], { groupSize: 2 })).toBeCloseTo(2 / 3, 12);
    expect(fracZeroStdGroups(new Float32Array([0.1, 0.1, 0.3, 0.3]), { groupSize: 2 })).toBe(1);
  });

  it('agrees with a per-group reference on random groups, with the tolerance applied', () => {
    const r = rng(5);
    for (let trial = 0; trial < 10; trial++) {
      const g = 2 + Math.floor(r() * 6);
      const groups = Array.from({ length: 8 }, () => {
        const constant = r() < 0.4;
        const base = Math.round(r() * 4) / 4;
        return Array.from({ length: g }, () => (constant ? base : Math.round(r() * 4) / 4));
      });
      const expected = groups.filter((grp) => reference(grp).std <= 1e-8).length / groups.length;
      expect(fracZeroStdGroups(groups)).toBe(expected);
      expect(fracZeroStdGroups(groups.flat(), { groupSize: g })).toBe(expected);
    }
    // 0.1 + 0.2 vs 0.3 differ by 5.6e-17: zero std within the default tolerance, not with tolerance 0.
    expect(fracZeroStdGroups([[0.1 + 0.2, 0.3]])).toBe(1);
    expect(fracZeroStdGroups([[0.1 + 0.2, 0.3]], { tolerance: 0 })).toBe(0);
  });

  it('rejects bad layouts', () => {
    expect(() => fracZeroStdGroups([1, 2, 3], { groupSize: 2 })).toThrow(/do not split into groups of 2/);
    expect(() => fracZeroStdGroups([1, 2])).toThrow(/groupSize is required/);
    expect(() => fracZeroStdGroups([1, 2], { groupSize: 0 })).toThrow(RangeError);
  });
});

describe('lengthStats and summarizeRewards', () => {
  it('computes length stats with the truncated share from flags or a count', () => {
    const s = lengthStats([10, 20, 60], [false, true, true]);
    expect(s).toEqual({ mean: 30, min: 10, max: 60, truncatedFrac: 2 / 3 });
    expect(lengthStats(Int32Array.from([5, 7]), 1).truncatedFrac).toBe(0.5);
    expect(() => lengthStats([1, 2], [true])).toThrow(/truncated has 1 entries but lengths has 2/);
    expect(() => lengthStats([1, 2], 3)).toThrow(RangeError);
  });

  it('summarises a step of rewards', () => {
    const out = summarizeRewards({ total: [1.1, 1.1, 0, 1], perReward: { accuracy: [1, 1, 0, 1], format: [0.1, 0.1, 0, 0] }, groupSize: 2 });
    expect(out.reward.mean).toBeCloseTo(0.8, 12);
    expect(out.rewards.accuracy).toEqual({ mean: 0.75, std: Math.sqrt(0.1875), min: 0, max: 1 });
    expect(out.fracZeroStdGroups).toBe(0.5);
    expect(() => summarizeRewards({ total: [1, 2], perReward: { a: [1] }, groupSize: 2 })).toThrow(/perReward.a has 1 values/);
  });
});

describe('validateStepMetrics / flattenStepMetrics', () => {
  it('accepts a full StepMetrics, with NaN/Infinity and nulls, and names the bad field otherwise', () => {
    const m = makeMetrics(3, rng(1));
    expect(validateStepMetrics(m)).toEqual(m);
    expect(() => validateStepMetrics({ ...m, kl: null, gradNorm: Infinity, loss: NaN })).not.toThrow();
    expect(() => validateStepMetrics({ ...m, seconds: { ...m.seconds, update: '2' } })).toThrow(/seconds\.update/);
    expect(() => validateStepMetrics({ ...m, step: 1.5 })).toThrow(/step/);
    expect(() => validateStepMetrics({ ...m, rewrd: 1 })).toThrow(/rewrd/);
    const { lr: _lr, ...noLr } = m;
    expect(() => validateStepMetrics(noLr)).toThrow(/lr/);
  });

  it('flattens to slash keys', () => {
    const m = makeMetrics(7, rng(2));
    const f = flattenStepMetrics(m);
    expect(f.step).toBe(7);
    expect(f['reward/mean']).toBe(m.reward.mean);
    expect(f['rewards/accuracy/std']).toBe(m.rewards.accuracy?.std);
    expect(f['seconds/generation']).toBe(m.seconds.generation);
    expect(f['reflection/counts/wait']).toBe(4);
    expect(Object.values(f).every((v) => v === null || typeof v === 'number')).toBe(true);
  });
});
