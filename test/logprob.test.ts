import { describe, expect, it } from 'vitest';

import { kernels } from '../src/index.js';

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++)
    a[i] = scale * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return a;
}

function randomTargets(n: number, v: number): Int32Array {
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) t[i] = Math.floor(Math.random() * v);
  return t;
}

interface Problem {
  hidden: Float32Array | Float64Array;
  lmHead: Float32Array | Float64Array;
  targets: Int32Array;
  numTokens: number;
  hiddenSize: number;
  vocabSize: number;
  temperature: number;
}

/** Plain full-softmax reference in double. */
function reference(p: Problem): { logprobs: Float64Array; entropy: Float64Array; logsumexp: Float64Array } {
  const { numTokens: n, hiddenSize: h, vocabSize: v } = p;
  const logprobs = new Float64Array(n), entropy = new Float64Array(n), logsumexp = new Float64Array(n);
  const z = new Float64Array(v);
  for (let r = 0; r < n; r++) {
    let m = -Infinity;
    for (let j = 0; j < v; j++) {
      let s = 0;
      for (let k = 0; k < h; k++) s += p.hidden[r * h + k]! * p.lmHead[j * h + k]!;
      z[j] = s / p.temperature;
      m = Math.max(m, z[j]!);
    }
    let s = 0;
    for (let j = 0; j < v; j++) s += Math.exp(z[j]! - m);
    const lse = m + Math.log(s);
    let ent = 0;
    for (let j = 0; j < v; j++) ent -= Math.exp(z[j]! - lse) * (z[j]! - lse);
    const t = p.targets[r]!;
    logsumexp[r] = lse;
    logprobs[r] = t >= 0 ? z[t]! - lse : 0;
    entropy[r] = t >= 0 ? ent : 0;
  }
  return { logprobs, entropy, logsumexp };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (!(err <= tol)) throw new Error(`${what}[${i}]: ${got[i]} vs ${want[i]} (tolerance ${tol})`);
  }
}

function problem(n: number, h: number, v: number, temperature: number): Problem {
  const targets = randomTargets(n, v);
  if (n > 2) targets[1] = -1; // a position without a target
  return { hidden: randn(n * h), lmHead: randn(v * h, 0.7), targets, numTokens: n, hiddenSize: h, vocabSize: v, temperature };
}

describe('kernels.logprobs', () => {
  it('matches a full-softmax reference (V not a multiple of the chunk, V < chunk, N = 1)', () => {
    for (const [n, h, v, chunk] of [[6, 8, 37, 8], [4, 5, 9, 64], [1, 7, 50, 16]] as const) {
      const p = problem(n, h, v, 0.8);
      const got = kernels.logprobs({ ...p, hidden: p.hidden as Float32Array, lmHead: p.lmHead as Float32Array, withEntropy: true, chunkSize: chunk });
      const ref = reference(p);
      expectClose(got.logprobs, ref.logprobs, 1e-5, 'logprobs');
      expectClose(got.entropy!, ref.entropy, 1e-5, 'entropy');
      expectClose(got.logsumexp, ref.logsumexp, 1e-5, 'logsumexp');
      if (n > 2) expect(got.logprobs[1]).toBe(0);
      const plain = kernels.logprobs({ ...p, hidden: p.hidden as Float32Array, lmHead: p.lmHead as Float32Array, chunkSize: chunk });
      expect(plain.entropy).toBeUndefined();
      expectClose(plain.logprobs, got.logprobs, 0, 'logprobs without entropy');
    }
  });

  it('the default chunk (4096) and the full-logits path agree over a vocabulary larger than one chunk', () => {
    const p = problem(3, 4, 5000, 1);
    const input = { ...p, hidden: p.hidden as Float32Array, lmHead: p.lmHead as Float32Array, withEntropy: true };
    const chunked = kernels.logprobs(input);
    const full = kernels.logprobs({ ...input, fullLogits: true });
    const ref = reference(p);
    expectClose(chunked.logprobs, ref.logprobs, 1e-5, 'chunked');
    expectClose(full.logprobs, ref.logprobs, 1e-5, 'full');
    expectClose(full.entropy!, chunked.entropy!, 1e-5, 'entropy');
  });

  it('backward matches central finite differences of a double reference', () => {
    const n = 4, h = 5, v = 23, temperature = 0.9;
    const p = problem(n, h, v, temperature);
    const a = randn(n), b = randn(n);
    const input = { ...p, hidden: p.hidden as Float32Array, lmHead: p.lmHead as Float32Array, chunkSize: 7 };
    const fwd = kernels.logprobs({ ...input, withEntropy: true });
    // L = sum a*logprob + b*entropy, differentiated numerically on float64 copies of the inputs.
    const hid = Float64Array.from(p.hidden), w = Float64Array.from(p.lmHead);
    const loss = (withEnt: boolean): number => {
      const r = reference({ ...p, hidden: hid, lmHead: w });
      let s = 0;
      for (let i = 0; i < n; i++) s += a[i]! * r.logprobs[i]! + (withEnt ? b[i]! * r.entropy[i]! : 0);
      return s;
    };
    const fd = (arr: Float64Array, i: number, withEnt: boolean): number => {
      const keep = arr[i]!, eps = 1e-5;
      arr[i] = keep + eps;
      const lp = loss(withEnt);
      arr[i] = keep - eps;
      const lm = loss(withEnt);
      arr[i] = keep;
      return (lp - lm) / (2 * eps);
    };
    for (const withEnt of [false, true]) {
      const g = kernels.logprobsBackward({
        ...input, logsumexp: fwd.logsumexp, gradLogprobs: a,
        ...(withEnt ? { gradEntropy: b, entropy: fwd.entropy! } : {}),
      });
      // float32 kernel vs double finite differences (eps 1e-5): agreement to 2e-4 relative.
      for (let i = 0; i < hid.length; i++) expectClose([g.gradHidden[i]!], [fd(hid, i, withEnt)], 2e-4, `gradHidden (entropy ${withEnt})`);
      for (let i = 0; i < w.length; i++) expectClose([g.gradLmHead[i]!], [fd(w, i, withEnt)], 2e-4, `gradLmHead (entropy ${withEnt})`);
    }
    // Without `entropy` the backward recomputes it: same gradients.
    const g1 = kernels.logprobsBackward({ ...input, logsumexp: fwd.logsumexp, gradLogprobs: a, gradEntropy: b, entropy: fwd.entropy! });
    const g2 = kernels.logprobsBackward({ ...input, logsumexp: fwd.logsumexp, gradLogprobs: a, gradEntropy: b });
    expectClose(g2.gradHidden, g1.gradHidden, 1e-6, 'recomputed entropy gradHidden');
    const gFull = kernels.logprobsBackward({ ...input, logsumexp: fwd.logsumexp, gradLogprobs: a, gradEntropy: b, entropy: fwd.entropy!, fullLogits: true });
    expectClose(gFull.gradLmHead, g1.gradLmHead, 1e-5, 'full-logits gradLmHead');
    // The ignored row gets no gradient.
    for (let k = 0; k < h; k++) expect(g1.gradHidden[1 * h + k]).toBe(0);
  });

  it('throws clear errors for bad lengths, ids and options', () => {
    const p = problem(3, 4, 10, 1);
    const base = { ...p, hidden: p.hidden as Float32Array, lmHead: p.lmHead as Float32Array };
    expect(() => kernels.logprobs({ ...base, hidden: new Float32Array(11) })).toThrow(RangeError);
    expect(() => kernels.logprobs({ ...base, hidden: new Float32Array(11) })).toThrow(/hidden has length 11, expected numTokens\*hiddenSize = 3\*4 = 12/);
    expect(() => kernels.logprobs({ ...base, targets: new Float32Array(3) as unknown as Int32Array })).toThrow(TypeError);
    expect(() => kernels.logprobs({ ...base, targets: Int32Array.from([1, 10, 2]) })).toThrow(RangeError);
    expect(() => kernels.logprobs({ ...base, targets: Int32Array.from([1, 10, 2]) })).toThrow(/targets\[1\] = 10 is not a token id \(vocabSize is 10/);
    expect(() => kernels.logprobs({ ...base, temperature: 0 })).toThrow(/temperature must be a finite number > 0, got 0/);
    expect(() => kernels.logprobs({ ...base, temperature: NaN })).toThrow(RangeError);
    expect(() => kernels.logprobs({ ...base, chunkSize: 0 })).toThrow(/chunkSize must be an integer in \[1, 2147483647\], got 0/);
    expect(() => kernels.logprobs({ ...base, vocabSize: 2.5 })).toThrow(RangeError);
    expect(() => kernels.logprobs({ ...base, withEntropy: 'yes' as unknown as boolean })).toThrow(TypeError);
    const fwd = kernels.logprobs(base);
    const bwd = { ...base, logsumexp: fwd.logsumexp, gradLogprobs: new Float32Array(3).fill(1) };
    expect(() => kernels.logprobsBackward({ ...bwd, gradEntropy: new Float32Array(2) })).toThrow(/gradEntropy has length 2, expected numTokens = 3/);
    expect(() => kernels.logprobsBackward({ ...bwd, logsumexp: undefined as unknown as Float32Array })).toThrow(TypeError);
    expect(() => kernels.logprobsBackward({ ...bwd, targets: Int32Array.from([0, 0, 12]) })).toThrow(/targets\[2\] = 12/);
  });
});
