import { describe, expect, it } from 'vitest';

import { computeAdvantages, overlongPenalty } from '../../src/rl/advantages.js';
import { learningRate } from '../../src/rl/lr-schedule.js';

function rand(n: number): number[] {
  return Array.from({ length: n }, () => Math.random());
}

describe('advantages', () => {
  it('grpo: (r − group mean) / (unbiased group std + eps), groups never mix', () => {
    const r = rand(12);
    const { advantages, zeroStdGroups } = computeAdvantages(r, 4, { estimator: 'grpo', scale: 'group', eps: 1e-6 });
    expect(zeroStdGroups).toBe(0);
    for (let g = 0; g < 3; g++) {
      const xs = r.slice(g * 4, g * 4 + 4);
      const m = xs.reduce((a, b) => a + b) / 4;
      const s = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / 3);
      xs.forEach((x, i) => expect(advantages[g * 4 + i]).toBeCloseTo((x - m) / (s + 1e-6), 5));
    }
  });

  it('Dr.GRPO (scale none), batch scaling, and RLOO', () => {
    const r = [1, 0, 0, 0, 5, 5, 6, 4];
    const none = computeAdvantages(r, 4, { estimator: 'grpo', scale: 'none', eps: 1e-6 }).advantages;
    expect(Array.from(none)).toEqual([0.75, -0.25, -0.25, -0.25, 0, 0, 1, -1]);
    const batch = computeAdvantages(r, 4, { estimator: 'grpo', scale: 'batch', eps: 0 }).advantages;
    const m = r.reduce((a, b) => a + b) / 8;
    const s = Math.sqrt(r.reduce((a, b) => a + (b - m) ** 2, 0) / 7);
    expect(batch[0]).toBeCloseTo(0.75 / s, 6);
    const rloo = computeAdvantages(r, 4, { estimator: 'rloo', scale: 'none', eps: 0 }).advantages;
    // R_i − mean of the other three
    expect(rloo[0]).toBeCloseTo(1 - 0, 6);
    expect(rloo[6]).toBeCloseTo(6 - (5 + 5 + 4) / 3, 6);
  });

  it('counts zero-std groups and gives them zero advantage', () => {
    const res = computeAdvantages([1, 1, 1, 0, 1, 0], 3, { estimator: 'grpo', scale: 'group', eps: 1e-6 });
    expect(res.zeroStdGroups).toBe(1);
    expect(Array.from(res.advantages.slice(0, 3))).toEqual([0, 0, 0]);
  });

  it('rejects ragged groups and non-finite rewards', () => {
    expect(() => computeAdvantages([1, 2, 3], 2, { estimator: 'grpo', scale: 'group', eps: 1e-6 })).toThrow(/whole number of groups/);
    expect(() => computeAdvantages([1, NaN], 2, { estimator: 'grpo', scale: 'group', eps: 1e-6 })).toThrow(/finite/);
  });

  it('DAPO soft overlong penalty', () => {
    expect(overlongPenalty(10, 100, 20, 1)).toBe(0);
    expect(overlongPenalty(80, 100, 20, 1)).toBeCloseTo(0);
    expect(overlongPenalty(90, 100, 20, 1)).toBeCloseTo(-0.5);
    expect(overlongPenalty(100, 100, 20, 2)).toBeCloseTo(-2);
    expect(overlongPenalty(100, 100, 0, 1)).toBe(0);
  });
});

describe('learning-rate schedules (HF semantics)', () => {
  it('warm-up then constant, linear and cosine decay', () => {
    expect(learningRate('constant', 1, 0, 100, 10)).toBe(0);
    expect(learningRate('constant', 1, 5, 100, 10)).toBeCloseTo(0.5);
    expect(learningRate('constant', 1, 50, 100, 10)).toBe(1);
    expect(learningRate('linear', 1, 10, 100, 10)).toBeCloseTo(1);
    expect(learningRate('linear', 1, 55, 100, 10)).toBeCloseTo(0.5);
    expect(learningRate('linear', 1, 100, 100, 10)).toBeCloseTo(0);
    expect(learningRate('cosine', 1, 55, 100, 10)).toBeCloseTo(0.5);
    expect(learningRate('cosine', 2, 10, 100, 10)).toBeCloseTo(2);
  });
});
