import { describe, expect, it } from 'vitest';

import { kernels } from '../src/index.js';
import type { AdamWStepInput } from '../src/kernels/optim.js';

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return a;
}

/** torch.optim.AdamW's single-tensor update, op by op, in float64. */
function refAdamw(
  p: Float64Array, g: Float32Array, m: Float64Array, v: Float64Array,
  o: { step: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
): void {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - o.lr * o.weightDecay);
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
    p[i] = p[i]! - (o.lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + o.eps);
  }
}

/** Max of |a − b| / (atol + rtol·|b|): <= 1 means within tolerance. */
function scaledErr(a: Float32Array, b: Float64Array, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!)));
  return worst;
}

describe('kernels.adamwStep', () => {
  it('matches a plain AdamW loop over several steps (with decoupled weight decay)', () => {
    const n = 50_001;
    const params = randn(n);
    const expAvg = new Float32Array(n), expAvgSq = new Float32Array(n);
    const p = Float64Array.from(params), m = new Float64Array(n), v = new Float64Array(n);
    const hyper = { lr: 2e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    for (let step = 1; step <= 5; step++) {
      const grads = randn(n, step === 2 ? 1e-3 : 1);
      kernels.adamwStep({ params, grads, expAvg, expAvgSq, step, ...hyper });
      refAdamw(p, grads, m, v, { step, ...hyper });
      // The kernel keeps fp32 state (rounded each step); the reference keeps float64: a few ulps apart.
      expect(scaledErr(params, p, 1e-8, 2e-6), `params at step ${step}`).toBeLessThanOrEqual(1);
      expect(scaledErr(expAvg, m, 1e-7, 2e-6), `expAvg at step ${step}`).toBeLessThanOrEqual(1);
      expect(scaledErr(expAvgSq, v, 1e-12, 2e-6), `expAvgSq at step ${step}`).toBeLessThanOrEqual(1);
    }
  });

  it('uses PyTorch defaults (β 0.9/0.999, eps 1e-8, weight decay 0.01)', () => {
    const n = 257;
    const params = randn(n), grads = randn(n);
    const p = Float64Array.from(params), m = new Float64Array(n), v = new Float64Array(n);
    kernels.adamwStep({ params, grads, expAvg: new Float32Array(n), expAvgSq: new Float32Array(n), step: 1, lr: 0.01 });
    refAdamw(p, grads, m, v, { step: 1, lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    expect(scaledErr(params, p, 1e-8, 2e-6)).toBeLessThanOrEqual(1);
  });

  it('bias correction at step 1 makes every update −lr·sign(g) (eps 0, no decay)', () => {
    const n = 1000;
    const params = randn(n), grads = randn(n, 3);
    const before = Float32Array.from(params);
    kernels.adamwStep({ params, grads, expAvg: new Float32Array(n), expAvgSq: new Float32Array(n), step: 1, lr: 0.01, eps: 0, weightDecay: 0 });
    for (let i = 0; i < n; i++) expect(Math.abs(params[i]! - (before[i]! - 0.01 * Math.sign(grads[i]!)))).toBeLessThan(1e-6);
  });

  it('with zero gradients and zero moments only the weight decay acts', () => {
    const n = 300;
    const params = randn(n);
    const before = Float32Array.from(params);
    kernels.adamwStep({ params, grads: new Float32Array(n), expAvg: new Float32Array(n), expAvgSq: new Float32Array(n), step: 4, lr: 0.5, weightDecay: 0.2 });
    for (let i = 0; i < n; i++) expect(params[i]).toBe(Math.fround(before[i]! * 0.9));
  });

  const good = (): AdamWStepInput => ({
    params: new Float32Array(4), grads: new Float32Array(4), expAvg: new Float32Array(4), expAvgSq: new Float32Array(4), step: 1, lr: 1e-3,
  });
  const errors: [string, (o: AdamWStepInput) => unknown, ErrorConstructor, RegExp][] = [
    ['grads length', (o) => ({ ...o, grads: new Float32Array(3) }), RangeError, /grads has length 3, expected 4/],
    ['expAvgSq length', (o) => ({ ...o, expAvgSq: new Float32Array(5) }), RangeError, /expAvgSq has length 5, expected 4/],
    ['Float64Array params', (o) => ({ ...o, params: new Float64Array(4) }), TypeError, /params must be a Float32Array, got a Float64Array/],
    ['missing expAvg', (o) => ({ ...o, expAvg: undefined }), TypeError, /expAvg must be a Float32Array, got undefined/],
    ['step 0', (o) => ({ ...o, step: 0 }), RangeError, /step must be an integer >= 1 \(1-based\), got 0/],
    ['fractional step', (o) => ({ ...o, step: 1.5 }), RangeError, /step must be an integer >= 1/],
    ['negative lr', (o) => ({ ...o, lr: -1 }), RangeError, /lr must be >= 0, got -1/],
    ['NaN lr', (o) => ({ ...o, lr: NaN }), RangeError, /lr must be finite, got NaN/],
    ['beta1 = 1', (o) => ({ ...o, beta1: 1 }), RangeError, /beta1 must be in \[0, 1\), got 1/],
    ['negative beta2', (o) => ({ ...o, beta2: -0.5 }), RangeError, /beta2 must be in \[0, 1\), got -0.5/],
    ['negative eps', (o) => ({ ...o, eps: -1 }), RangeError, /eps must be >= 0/],
    ['negative weightDecay', (o) => ({ ...o, weightDecay: -0.1 }), RangeError, /weightDecay must be >= 0/],
    ['shared params and grads', (o) => ({ ...o, grads: o.params }), RangeError, /params and grads share memory/],
    ['overlapping views', (o) => {
      const mem = new Float32Array(10);
      return { ...o, expAvg: mem.subarray(0, 4), expAvgSq: mem.subarray(3, 7) };
    }, RangeError, /expAvg and expAvgSq share memory/],
    ['misspelled option', (o) => ({ ...o, weight_decay: 0.1 }), TypeError, /unknown option 'weight_decay'/],
  ];
  for (const [name, mutate, type, message] of errors) {
    it(`rejects ${name}`, () => {
      const call = () => kernels.adamwStep(mutate(good()) as AdamWStepInput);
      expect(call).toThrow(type);
      expect(call).toThrow(message);
    });
  }

  it('accepts disjoint views of one buffer (one contiguous parameter/optimizer layout)', () => {
    const mem = new Float32Array(16);
    mem.set(randn(4), 0);
    mem.set(randn(4), 4);
    kernels.adamwStep({ params: mem.subarray(0, 4), grads: mem.subarray(4, 8), expAvg: mem.subarray(8, 12), expAvgSq: mem.subarray(12, 16), step: 1, lr: 0.1 });
    expect(Array.from(mem.subarray(8, 12)).some((x) => x !== 0)).toBe(true);
  });
});

describe('kernels.clipGradNorm', () => {
  const refNorm = (gs: Float32Array[]) => Math.sqrt(gs.reduce((s, g) => s + g.reduce((t, x) => t + x * x, 0), 0));

  it('measures the global L2 norm and scales every buffer by maxNorm / (norm + 1e-6)', () => {
    const grads = [randn(1), randn(40_000, 0.01), new Float32Array(0), randn(70_001, 0.01)];
    const before = grads.map((g) => Float32Array.from(g));
    const norm = refNorm(grads);
    const { totalNorm, scale } = kernels.clipGradNorm({ grads, maxNorm: 0.5 });
    expect(Math.abs(totalNorm - norm)).toBeLessThan(1e-12 * norm);
    const coef = 0.5 / (norm + 1e-6);
    expect(coef).toBeLessThan(1);
    expect(scale).toBeCloseTo(coef, 14);
    // Each entry is scaled by the kernel's factor (checked against the reference factor just above; a 1-ulp
    // difference in that double could flip a float rounding).
    grads.forEach((g, k) => g.forEach((x, i) => {
      if (x !== Math.fround(before[k]![i]! * scale)) expect.fail(`grads[${k}][${i}] = ${x}`);
    }));
    expect(refNorm(grads)).toBeCloseTo(0.5, 5);
  });

  for (const maxNorm of [1e9, 0, -1, Infinity]) {
    it(`leaves the buffers alone when nothing needs clipping or it only measures (maxNorm ${maxNorm})`, () => {
      const grads = [randn(1000), randn(17)];
      const before = grads.map((g) => Float32Array.from(g));
      const { totalNorm, scale } = kernels.clipGradNorm({ grads, maxNorm });
      expect(totalNorm).toBeCloseTo(refNorm(before), 9);
      expect(scale).toBe(1);
      expect(grads).toEqual(before);
    });
  }

  it('reports a non-finite norm and does not scale', () => {
    const grads = [Float32Array.of(1, NaN, 2), Float32Array.of(3)];
    const r = kernels.clipGradNorm({ grads, maxNorm: 0.1 });
    expect(r.totalNorm).toBeNaN();
    expect(r.scale).toBe(1);
    expect(grads[1]![0]).toBe(3);
    const inf = kernels.clipGradNorm({ grads: [Float32Array.of(Infinity, 1)], maxNorm: 0.1 });
    expect(inf.totalNorm).toBe(Infinity);
  });

  it('works on disjoint views of one buffer and rejects overlapping ones', () => {
    const mem = randn(100);
    const norm = refNorm([mem]);
    expect(kernels.clipGradNorm({ grads: [mem.subarray(0, 60), mem.subarray(60)], maxNorm: 0 }).totalNorm).toBeCloseTo(norm, 9);
    expect(() => kernels.clipGradNorm({ grads: [mem.subarray(0, 60), mem.subarray(70, 80), mem.subarray(50, 55)], maxNorm: 1 }))
      .toThrow(/grads\[0\] and grads\[2\] share memory/);
    expect(() => kernels.clipGradNorm({ grads: [mem, mem], maxNorm: 1 })).toThrow(RangeError);
  });

  it('rejects wrong types and a NaN maxNorm', () => {
    expect(() => kernels.clipGradNorm({ grads: new Float32Array(3) as unknown as Float32Array[], maxNorm: 1 })).toThrow(TypeError);
    expect(() => kernels.clipGradNorm({ grads: [new Float32Array(2), new Float64Array(2) as unknown as Float32Array], maxNorm: 1 }))
      .toThrow(/grads\[1\] must be a Float32Array, got a Float64Array/);
    expect(() => kernels.clipGradNorm({ grads: [], maxNorm: '1' as unknown as number })).toThrow(TypeError);
    expect(() => kernels.clipGradNorm({ grads: [], maxNorm: NaN })).toThrow(RangeError);
    expect(kernels.clipGradNorm({ grads: [], maxNorm: 1 })).toEqual({ totalNorm: 0, scale: 1 });
  });
});
