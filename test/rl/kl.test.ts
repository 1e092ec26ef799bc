import { describe, expect, it } from 'vitest';

import { adaptKlCoef, klPerToken, rolloutWeights, sequenceKl } from '../../src/rl/kl.js';

describe('KL estimators, adaptive β and rollout weights', () => {
  it('estimators follow verl', () => {
    const lp = -1.3, lr = -0.7;
    expect(klPerToken(lp, lr, 'k1')).toBeCloseTo(-0.6);
    expect(klPerToken(lp, lr, 'k2')).toBeCloseTo(0.18);
    expect(klPerToken(lp, lr, 'abs')).toBeCloseTo(0.6);
    expect(klPerToken(lp, lr, 'k3')).toBeCloseTo(Math.exp(0.6) - 0.6 - 1);
    expect(klPerToken(-50, 0, 'k3')).toBe(10);  // clamped
    expect(sequenceKl([-1, -2], [-1.5, -2], 'k1')).toBeCloseTo(0.5);
  });

  it('adaptive controller moves β towards the target, at most ±20% per horizon', () => {
    expect(adaptKlCoef(0.1, 0.2, 0.1, 100, 100)).toBeCloseTo(0.12);   // KL too high: β up (clipped at +20%)
    expect(adaptKlCoef(0.1, 0.05, 0.1, 100, 100)).toBeCloseTo(0.08);  // KL too low: β down
    expect(adaptKlCoef(0.1, 0.1, 0.1, 100, 100)).toBeCloseTo(0.1);
  });

  it('rollout importance weights: token/sequence, truncate/mask', () => {
    const train = [-1, -1, -1], rollout = [-1, -2, -0.5];
    const tt = rolloutWeights(train, rollout, 'token-truncate', 2);
    expect(Array.from(tt)).toEqual([1, 2, Math.fround(Math.exp(-0.5))]);
    const tm = rolloutWeights(train, rollout, 'token-mask', 2);
    expect(tm[1]).toBe(0);
    const st = rolloutWeights(train, rollout, 'sequence-truncate', 2);
    expect(st[0]).toBeCloseTo(Math.min(2, Math.exp(0.5)));
    const sm = rolloutWeights([0, 0], [-1, -1], 'sequence-mask', 2);
    expect(Array.from(sm)).toEqual([0, 0]);
  });
});
