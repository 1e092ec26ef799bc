import { describe, expect, it } from 'vitest';

import { kernels } from '../src/index.js';
import type { GrpoLossInput, KlEstimator, LossAgg } from '../src/kernels/grpo.js';
import { native } from '../src/native/binding.js';
import { grpoLossReference, type GrpoReferenceResult } from './reference/grpo-reference.js';

// Fresh random inputs each run unless VG_TEST_SEED is set; the seed is in every failure message.
const SEED = Number(process.env.VG_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

function rngFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

interface Batch {
  logprobs: Float32Array;
  oldLogprobs: Float32Array;
  refLogprobs: Float32Array;
  advantages: Float32Array;
  mask: Uint8Array | Float32Array;
  entropy: Float32Array;
  numSequences: number;
  seqLen: number;
}

/**
 * Ragged masks (sequence 1 fully masked, holes), ratios mostly near 1 with many outside [0.8, 1.28], a few
 * log-ratios beyond ±20, reference log-probs that push k3 past its clamp, some lp == lr and some A = 0.
 */
function makeBatch(seed: number, numSequences: number, seqLen: number, floatMask: boolean): Batch {
  const r = rngFrom(seed);
  const n = numSequences * seqLen;
  const b: Batch = {
    logprobs: new Float32Array(n), oldLogprobs: new Float32Array(n), refLogprobs: new Float32Array(n),
    advantages: new Float32Array(numSequences), mask: floatMask ? new Float32Array(n) : new Uint8Array(n),
    entropy: new Float32Array(n), numSequences, seqLen,
  };
  for (let i = 0; i < numSequences; i++) {
    b.advantages[i] = r() < 0.1 ? 0 : normal(r);
    const len = i === 1 ? 0 : Math.min(seqLen, Math.floor(r() * (seqLen + 1)));
    for (let t = 0; t < seqLen; t++) {
      const k = i * seqLen + t;
      let m = t < len && r() > 0.1 ? 1 : 0;
      if (floatMask && m > 0) m = 0.25 + 0.75 * r();
      b.mask[k] = m;
      const lp = -Math.abs(normal(r)) * 2 - 0.01;
      b.logprobs[k] = lp;
      const u = r();
      const d = u < 0.6 ? 0.3 * normal(r) : u < 0.94 ? normal(r) : u < 0.97 ? 20.5 + 5 * r() : -(20.5 + 5 * r());
      b.oldLogprobs[k] = lp - d;
      const v = r();
      b.refLogprobs[k] = v < 0.05 ? b.logprobs[k]! : v < 0.15 ? lp + (r() < 0.5 ? 4 : -14) + 0.1 * normal(r) : lp + 0.5 * normal(r);
      b.entropy[k] = 3 * r();
    }
  }
  // Guarantee every region at least once: sequence 0 (A > 0) gets a ratio above 1 + 0.28 and a log-ratio
  // beyond +20; sequence 2 (A < 0) gets a ratio below 0.8 and one above the dual-clip constant 3.
  if (numSequences >= 3 && seqLen >= 2) {
    b.advantages[0] = 0.5 + Math.abs(b.advantages[0]!);
    b.advantages[2] = -0.5 - Math.abs(b.advantages[2]!);
    const force = (k: number, delta: number) => {
      b.oldLogprobs[k] = b.logprobs[k]! - delta;
      b.mask[k] = 1;
    };
    force(0, 0.6);
    force(1, 25);
    force(2 * seqLen, -0.5);
    force(2 * seqLen + 1, 1.5);
  }
  return b;
}

function compare(got: ReturnType<typeof kernels.grpoLoss>, want: GrpoReferenceResult, label: string): void {
  const where = `${label} (VG_TEST_SEED=${SEED})`;
  // The loss differs from the reference only by summation order: bound it by the sum of |terms|.
  expect(Math.abs(got.loss - want.loss), `${where} loss ${got.loss} vs ${want.loss}`).toBeLessThanOrEqual(
    1e-12 * (1 + want.absSum),
  );
  for (const key of Object.keys(want.stats) as (keyof typeof want.stats)[]) {
    const a: number = got.stats[key], b: number = want.stats[key];
    expect(Math.abs(a - b), `${where} stats.${key} ${a} vs ${b}`).toBeLessThanOrEqual(1e-10 * (1 + Math.abs(b)));
  }
  // Gradients are float32: compare relative to each entry plus a floor relative to the largest one.
  let gmax = 0;
  for (const g of want.grad) gmax = Math.max(gmax, Math.abs(g));
  expect(got.grad.length).toBe(want.grad.length);
  for (let k = 0; k < want.grad.length; k++) {
    const a = got.grad[k]!, b = want.grad[k]!;
    if (Math.abs(a - b) > 2e-7 * Math.abs(b) + 1e-12 * gmax) expect.fail(`${where} grad[${k}] ${a} vs ${b}`);
  }
  const wantGe: Float64Array | undefined = want.gradEntropy;
  if (wantGe) {
    expect(got.gradEntropy, `${where} gradEntropy present`).toBeInstanceOf(Float32Array);
    const gotGe = got.gradEntropy ?? new Float32Array(0);
    for (let k = 0; k < wantGe.length; k++) {
      const a: number = gotGe[k]!, b: number = wantGe[k]!;
      if (Math.abs(a - b) > 2e-7 * Math.abs(b)) expect.fail(`${where} gradEntropy[${k}] ${a} vs ${b}`);
    }
  } else {
    expect(got.gradEntropy, `${where} no gradEntropy without entropy`).toBeUndefined();
  }
}

const ESTIMATORS: KlEstimator[] = ['k1', 'k2', 'k3', 'abs'];
const AGGS: LossAgg[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'];

describe('kernels.grpoLoss vs the plain reference', () => {
  for (const floatMask of [false, true]) {
    it(`matches for every estimator × aggregation × dual-clip × entropy × ratio level (${floatMask ? 'Float32Array' : 'Uint8Array'} mask)`, () => {
      const batch = makeBatch(SEED + (floatMask ? 1 : 0), 7, 29, floatMask);
      let cases = 0;
      for (const klEstimator of ESTIMATORS)
        for (const lossAgg of AGGS)
          for (const dualClip of [undefined, 3])
            for (const withEntropy of [false, true])
              for (const ratioLevel of ['token', 'sequence'] as const)
               for (const policyLoss of ['ppo', 'cispo'] as const) {
                const input: GrpoLossInput = {
                  logprobs: batch.logprobs, oldLogprobs: batch.oldLogprobs, refLogprobs: batch.refLogprobs,
                  advantages: batch.advantages, mask: batch.mask, numSequences: batch.numSequences, seqLen: batch.seqLen,
                  clipLow: 0.2, clipHigh: 0.28, dualClip, klCoef: 0.05, klEstimator, lossAgg, ratioLevel, policyLoss,
                  ...(lossAgg === 'seq-mean-token-sum-norm' && klEstimator === 'k2' ? { lossScale: 57 } : {}),
                  ...(withEntropy ? { entropy: batch.entropy, entropyCoef: 0.01 } : {}),
                };
                compare(kernels.grpoLoss(input), grpoLossReference(input), JSON.stringify({ klEstimator, lossAgg, dualClip, withEntropy, ratioLevel, policyLoss }));
                cases++;
              }
      expect(cases).toBe(256);
    });
  }

  it('the random batches cover the lower clip, upper clip, dual clip and the ±20 clamp', () => {
    const batch = makeBatch(SEED + 2, 7, 29, false);
    const out = kernels.grpoLoss({ ...batch, clipLow: 0.2, clipHigh: 0.28, dualClip: 3 });
    expect(out.stats.clipFracLow).toBeGreaterThan(0);
    expect(out.stats.clipFracHigh).toBeGreaterThan(0);
    expect(out.stats.clipFracDual).toBeGreaterThan(0);
    expect(out.stats.numValidSequences).toBeLessThan(7); // sequence 1 is fully masked
    // Without KL, the clipped, capped and clamped tokens carry no gradient; the others do.
    for (const k of [0, 1, 2 * 29, 2 * 29 + 1]) expect(out.grad[k], `grad[${k}]`).toBe(0);
    expect(out.grad.some((g) => g !== 0)).toBe(true);
  });

  it('reports the KL statistic with a reference but no KL coefficient, and 0 without a reference', () => {
    const batch = makeBatch(SEED + 3, 5, 17, true);
    const input: GrpoLossInput = { ...batch, clipLow: 0.2, klEstimator: 'k2' };
    const withRef = kernels.grpoLoss(input);
    compare(withRef, grpoLossReference(input), 'ref, klCoef 0');
    expect(withRef.stats.kl).toBeGreaterThan(0);
    const { refLogprobs: _unused, entropy: _e, ...noRef } = batch;
    const without = kernels.grpoLoss({ ...noRef, clipLow: 0.2 });
    expect(without.stats.kl).toBe(0);
    expect(without.loss).toBeCloseTo(withRef.loss, 12); // klCoef 0: the reference does not change the loss
  });

  it('uses tokenCountNormalizer / sequenceCountNormalizer so that split batches add up to the whole batch', () => {
    const batch = makeBatch(SEED + 4, 8, 21, false);
    const half = 4 * 21;
    const part = (lo: number, hi: number) => ({
      logprobs: batch.logprobs.subarray(lo, hi), oldLogprobs: batch.oldLogprobs.subarray(lo, hi),
      refLogprobs: batch.refLogprobs.subarray(lo, hi), mask: batch.mask.subarray(lo, hi),
      entropy: batch.entropy.subarray(lo, hi), advantages: batch.advantages.subarray(lo / 21, hi / 21),
      numSequences: 4, seqLen: 21,
    });
    for (const lossAgg of ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum'] as const) {
      const common = { clipLow: 0.2, clipHigh: 0.28, dualClip: 3, klCoef: 0.1, entropyCoef: 0.01, lossAgg };
      const whole = kernels.grpoLoss({ ...batch, ...common });
      const norm = { tokenCountNormalizer: whole.stats.numTokens, sequenceCountNormalizer: whole.stats.numValidSequences };
      const a = kernels.grpoLoss({ ...part(0, half), ...common, ...norm });
      const b = kernels.grpoLoss({ ...part(half, 2 * half), ...common, ...norm });
      compare(a, grpoLossReference({ ...part(0, half), ...common, ...norm }), `first half ${lossAgg}`);
      expect(a.loss + b.loss).toBeCloseTo(whole.loss, 10);
      for (let k = 0; k < 2 * half; k++) {
        const g = k < half ? a.grad[k]! : b.grad[k - half]!;
        expect(Math.abs(g - whole.grad[k]!)).toBeLessThanOrEqual(1e-7 * Math.abs(whole.grad[k]!) + 1e-12);
      }
    }
  });

  it('a Uint8Array mask and the same 0/1 mask as Float32Array give identical results', () => {
    const batch = makeBatch(SEED + 5, 6, 13, false);
    const opts = { clipLow: 0.2, dualClip: 3, klCoef: 0.02, lossAgg: 'seq-mean-token-mean' as const };
    const u8 = kernels.grpoLoss({ ...batch, ...opts });
    const f32 = kernels.grpoLoss({ ...batch, ...opts, mask: Float32Array.from(batch.mask) });
    expect(f32.loss).toBe(u8.loss);
    expect(f32.grad).toEqual(u8.grad);
    expect(f32.stats).toEqual(u8.stats);
  });

  it('an empty batch and a fully masked batch give a zero loss and zero gradients', () => {
    const empty = kernels.grpoLoss({
      logprobs: new Float32Array(0), oldLogprobs: new Float32Array(0), refLogprobs: new Float32Array(0),
      advantages: new Float32Array(0), mask: new Uint8Array(0), entropy: new Float32Array(0), numSequences: 0, seqLen: 5,
      clipLow: 0.2, klCoef: 0.1, entropyCoef: 0.01,
    });
    expect(empty.loss).toBe(0);
    expect(empty.grad.length).toBe(0);
    expect(empty.gradEntropy?.length).toBe(0);
    const batch = makeBatch(SEED + 6, 3, 4, true);
    for (const lossAgg of AGGS) {
      const masked = kernels.grpoLoss({ ...batch, mask: new Float32Array(12), clipLow: 0.2, klCoef: 0.1, entropyCoef: 0.01, lossAgg });
      expect(masked.loss).toBe(0);
      expect(masked.grad.every((g) => g === 0)).toBe(true);
      expect(masked.stats.numTokens).toBe(0);
      expect(masked.stats.ratioMean).toBe(0);
    }
  });

  it('matches a hand-worked example exactly', () => {
    // One sequence, A = −1, ratios e^−0.5, 1, e^1.5 (+ one masked token); ε = 0.2, dual-clip 3, token-mean.
    const out = kernels.grpoLoss({
      logprobs: Float32Array.of(-1, -2, -0.5, -3), oldLogprobs: Float32Array.of(-0.5, -2, -2, -3.25),
      advantages: Float32Array.of(-1), mask: Uint8Array.of(1, 1, 1, 0), numSequences: 1, seqLen: 4, clipLow: 0.2, dualClip: 3,
    });
    // Token 0 clipped up to 0.8 (no gradient), token 1 = 1 (gradient 1/3), token 2 capped at 3 (no gradient).
    expect(out.loss).toBeCloseTo((0.8 + 1 + 3) / 3, 12);
    expect(Array.from(out.grad)).toEqual([0, Math.fround(1 / 3), 0, 0]);
    expect(out.stats.clipFracLow).toBeCloseTo(1 / 3, 12);
    expect(out.stats.clipFracHigh).toBe(0);
    expect(out.stats.clipFracDual).toBeCloseTo(1 / 3, 12);
    expect(out.stats.ratioMean).toBeCloseTo((Math.exp(-0.5) + 1 + Math.exp(1.5)) / 3, 12);
    expect(out.stats.numTokens).toBe(3);
    expect(out.stats.numValidSequences).toBe(1);
  });
});

describe('kernels.grpoLoss argument errors', () => {
  const base = (): GrpoLossInput => ({
    logprobs: Float32Array.of(-1, -2, -1.5, -0.5, -3, -2), oldLogprobs: Float32Array.of(-1.1, -2, -1.4, -0.6, -3, -2.2),
    refLogprobs: Float32Array.of(-1, -2.1, -1.5, -0.4, -3, -2), advantages: Float32Array.of(0.5, -1),
    mask: Uint8Array.of(1, 1, 0, 1, 1, 1), numSequences: 2, seqLen: 3, clipLow: 0.2,
  });
  const cases: [string, (o: GrpoLossInput) => unknown, ErrorConstructor, RegExp][] = [
    ['missing logprobs', (o) => ({ ...o, logprobs: undefined }), TypeError, /logprobs must be a Float32Array, got undefined/],
    ['Float64Array logprobs', (o) => ({ ...o, logprobs: new Float64Array(6) }), TypeError, /logprobs must be a Float32Array, got a Float64Array/],
    ['short oldLogprobs', (o) => ({ ...o, oldLogprobs: new Float32Array(5) }), RangeError, /oldLogprobs has length 5, expected 6 \(numSequences \* seqLen = 2 \* 3\)/],
    ['long refLogprobs', (o) => ({ ...o, refLogprobs: new Float32Array(7) }), RangeError, /refLogprobs has length 7, expected 6/],
    ['advantages length', (o) => ({ ...o, advantages: new Float32Array(3) }), RangeError, /advantages has length 3, expected 2/],
    ['entropy length', (o) => ({ ...o, entropy: new Float32Array(2), entropyCoef: 0.1 }), RangeError, /entropy has length 2, expected 6/],
    ['mask type', (o) => ({ ...o, mask: new Int8Array(6) }), TypeError, /mask must be a Uint8Array or a Float32Array, got a Int8Array/],
    ['mask length', (o) => ({ ...o, mask: new Uint8Array(4) }), RangeError, /mask has length 4, expected 6/],
    ['mask value 2', (o) => ({ ...o, mask: Uint8Array.of(1, 1, 2, 0, 0, 0) }), RangeError, /mask\[2\] = 2; a Uint8Array mask must hold 0 or 1/],
    ['negative float mask', (o) => ({ ...o, mask: Float32Array.of(1, 1, 1, -0.5, 1, 1) }), RangeError, /mask\[3\] = -0.5/],
    ['NaN float mask', (o) => ({ ...o, mask: Float32Array.of(1, NaN, 1, 1, 1, 1) }), RangeError, /mask\[1\] = NaN/],
    ['NaN logprobs', (o) => ({ ...o, logprobs: Float32Array.of(-1, -2, -1, NaN, -1, -1) }), RangeError, /logprobs\[3\] is NaN/],
    ['Infinity in oldLogprobs', (o) => ({ ...o, oldLogprobs: Float32Array.of(-1, -Infinity, -1, -1, -1, -1) }), RangeError, /oldLogprobs\[1\] is -Infinity/],
    ['NaN refLogprobs', (o) => ({ ...o, refLogprobs: Float32Array.of(-1, -1, -1, -1, -1, NaN) }), RangeError, /refLogprobs\[5\] is NaN/],
    ['NaN advantage', (o) => ({ ...o, advantages: Float32Array.of(NaN, 1) }), RangeError, /advantages\[0\] is NaN/],
    ['Infinity entropy', (o) => ({ ...o, entropy: Float32Array.of(0, 0, 0, 0, Infinity, 0) }), RangeError, /entropy\[4\] is Infinity/],
    ['unknown estimator', (o) => ({ ...o, klEstimator: 'k4' }), RangeError, /klEstimator must be one of 'k1', 'k2', 'k3', 'abs', got 'k4'/],
    ['unknown aggregation', (o) => ({ ...o, lossAgg: 'seq-mean' }), RangeError, /lossAgg must be one of 'token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm', got 'seq-mean'/],
    ['unknown ratio level', (o) => ({ ...o, ratioLevel: 'seq' }), RangeError, /ratioLevel must be one of 'token', 'sequence', got 'seq'/],
    ['estimator not a string', (o) => ({ ...o, klEstimator: 3 }), TypeError, /klEstimator must be a string/],
    ['dualClip = 1', (o) => ({ ...o, dualClip: 1 }), RangeError, /dualClip must be > 1, got 1/],
    ['dualClip = 0.5', (o) => ({ ...o, dualClip: 0.5 }), RangeError, /dualClip must be > 1, got 0.5/],
    ['negative clipLow', (o) => ({ ...o, clipLow: -0.1 }), RangeError, /clipLow must be >= 0, got -0.1/],
    ['negative clipHigh', (o) => ({ ...o, clipHigh: -0.2 }), RangeError, /clipHigh must be >= 0, got -0.2/],
    ['missing clipLow', (o) => ({ ...o, clipLow: undefined }), TypeError, /clipLow must be a number, got undefined/],
    ['NaN clipHigh', (o) => ({ ...o, clipHigh: NaN }), RangeError, /clipHigh must be finite, got NaN/],
    ['klCoef without ref', (o) => ({ ...o, refLogprobs: undefined, klCoef: 0.1 }), TypeError, /refLogprobs is required when klCoef > 0/],
    ['negative klCoef', (o) => ({ ...o, klCoef: -0.1 }), RangeError, /klCoef must be >= 0, got -0.1/],
    ['entropyCoef without entropy', (o) => ({ ...o, entropyCoef: 0.01 }), TypeError, /entropy is required when entropyCoef != 0/],
    ['zero lossScale', (o) => ({ ...o, lossScale: 0 }), RangeError, /lossScale must be > 0, got 0/],
    ['zero tokenCountNormalizer', (o) => ({ ...o, tokenCountNormalizer: 0 }), RangeError, /tokenCountNormalizer must be > 0, got 0/],
    ['negative sequenceCountNormalizer', (o) => ({ ...o, sequenceCountNormalizer: -2 }), RangeError, /sequenceCountNormalizer must be > 0, got -2/],
    ['fractional numSequences', (o) => ({ ...o, numSequences: 1.5 }), RangeError, /numSequences must be an integer >= 0, got 1.5/],
    ['string seqLen', (o) => ({ ...o, seqLen: '3' }), TypeError, /seqLen must be a number, got string 3/],
    ['misspelled option', (o) => ({ ...o, klcoef: 0.1 }), TypeError, /unknown option 'klcoef' \(did you mean 'klCoef'\?\)/],
  ];
  for (const [name, mutate, type, message] of cases) {
    it(`rejects ${name}`, () => {
      const call = () => kernels.grpoLoss(mutate(base()) as GrpoLossInput);
      expect(call).toThrow(type);
      expect(call).toThrow(message);
    });
  }

  it('rejects a non-object', () => {
    expect(() => kernels.grpoLoss(undefined as unknown as GrpoLossInput)).toThrow(TypeError);
    expect(() => kernels.grpoLoss([] as unknown as GrpoLossInput)).toThrow(/expects one options object, got an Array/);
  });

  it('the native layer re-checks lengths, enums and invariants itself', () => {
    const o = base();
    const full = {
      logprobs: o.logprobs, oldLogprobs: o.oldLogprobs, advantages: o.advantages, mask: o.mask, numSequences: 2, seqLen: 3,
      clipLow: 0.2, clipHigh: 0.2, dualClip: 0, klCoef: 0, klEstimator: 'k3', lossAgg: 'token-mean', lossScale: 3,
      entropyCoef: 0, ratioLevel: 'token', policyLoss: 'ppo', tokenCountNormalizer: 0, sequenceCountNormalizer: 0,
    };
    expect(() => native().grpoLoss({ ...full, policyLoss: 'gpg' })).toThrow(/policyLoss must be one of 'ppo', 'cispo'/);
    expect(() => native().grpoLoss({ ...full, logprobs: new Float32Array(5) })).toThrow(RangeError);
    expect(() => native().grpoLoss({ ...full, logprobs: new Float32Array(5) })).toThrow(/logprobs has length 5, expected 6/);
    expect(() => native().grpoLoss({ ...full, lossAgg: 'mean' })).toThrow(/lossAgg must be one of/);
    expect(() => native().grpoLoss({ ...full, klEstimator: 'kl' })).toThrow(RangeError);
    expect(() => native().grpoLoss({ ...full, dualClip: 0.5 })).toThrow(/dualClip must be > 1/);
    expect(() => native().grpoLoss({ ...full, klCoef: 0.5 })).toThrow(/needs refLogprobs/);
    expect(() => native().grpoLoss({ ...full, mask: new Int32Array(6) as unknown as Uint8Array })).toThrow(TypeError);
    expect(native().grpoLoss(full).loss).toBeTypeOf('number');
  });
});
