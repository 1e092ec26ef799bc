import { describe, expect, it } from 'vitest';

import { kernels } from '../src/index.js';
import { native } from '../src/native/binding.js';

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++)
    a[i] = scale * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return a;
}

function cumsum(lens: number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, b) => (cu[b + 1] = cu[b]! + l));
  return cu;
}

interface Problem {
  q: Float32Array; k: Float32Array; v: Float32Array; gradOut: Float32Array;
  cuSeqlensQ: Int32Array; cuSeqlensK: Int32Array;
  numHeads: number; numKvHeads: number; headDim: number; causal: boolean; scale: number;
}

function add(a: Float64Array, i: number, x: number): void {
  a[i] = a[i]! + x;
}

/** Naive attention in double: full score row per (sequence, head, query), then its backward. */
function reference(p: Problem) {
  const { numHeads: hq, numKvHeads: hkv, headDim: d, cuSeqlensQ: cq, cuSeqlensK: ck } = p;
  const totalQ = cq[cq.length - 1]!, totalK = ck[ck.length - 1]!, group = hq / hkv;
  const out = new Float64Array(totalQ * hq * d), lse = new Float64Array(hq * totalQ).fill(-Infinity);
  const gradQ = new Float64Array(totalQ * hq * d), gradK = new Float64Array(totalK * hkv * d);
  const gradV = new Float64Array(totalK * hkv * d);
  for (let b = 0; b + 1 < cq.length; b++) {
    const q0 = cq[b]!, k0 = ck[b]!, lq = cq[b + 1]! - q0, lk = ck[b + 1]! - k0;
    for (let h = 0; h < hq; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < lq; i++) {
        const qi = ((q0 + i) * hq + h) * d;
        const s = new Float64Array(lk).fill(-Infinity);
        let mx = -Infinity;
        for (let j = 0; j < lk; j++) {
          if (p.causal && j > i + lk - lq) continue;
          const kj = ((k0 + j) * hkv + g) * d;
          let dot = 0;
          for (let e = 0; e < d; e++) dot += p.q[qi + e]! * p.k[kj + e]!;
          s[j] = p.scale * dot;
          mx = Math.max(mx, s[j]!);
        }
        if (mx === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < lk; j++) sum += Math.exp(s[j]! - mx);
        lse[h * totalQ + q0 + i] = mx + Math.log(sum);
        const pr = s.map((x) => Math.exp(x - mx) / sum);
        for (let j = 0; j < lk; j++)
          for (let e = 0; e < d; e++) add(out, qi + e, pr[j]! * p.v[((k0 + j) * hkv + g) * d + e]!);
        let di = 0;
        for (let e = 0; e < d; e++) di += p.gradOut[qi + e]! * out[qi + e]!;
        for (let j = 0; j < lk; j++) {
          const kj = ((k0 + j) * hkv + g) * d;
          let dp = 0;
          for (let e = 0; e < d; e++) dp += p.gradOut[qi + e]! * p.v[kj + e]!;
          const ds = pr[j]! * (dp - di);
          for (let e = 0; e < d; e++) {
            add(gradQ, qi + e, p.scale * ds * p.k[kj + e]!);
            add(gradK, kj + e, p.scale * ds * p.q[qi + e]!);
            add(gradV, kj + e, pr[j]! * p.gradOut[qi + e]!);
          }
        }
      }
    }
  }
  return { out, lse, gradQ, gradK, gradV };
}

function expectClose(got: Float32Array, want: Float64Array, atol: number, rtol: number, what: string): void {
  expect(got.length).toBe(want.length);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!, g = got[i]!;
    const err = w === -Infinity ? (g === -Infinity ? 0 : Infinity) : Math.abs(g - w) / (atol + rtol * Math.abs(w));
    if (!(err <= worst)) { worst = Number.isNaN(err) ? Infinity : err; at = i; }
  }
  expect(worst, `${what}[${at}] = ${got[at]} vs ${want[at]}`).toBeLessThanOrEqual(1);
}

/** Causal GQA over varlen sequences: lengths around the 64-row tile, a single token, and Lq < Lk. */
function problem(causal: boolean): Problem {
  const lensQ = [1, 70, 5, 33], lensK = causal ? [9, 70, 12, 33] : [1, 70, 5, 33];
  const numHeads = 6, numKvHeads = 2, headDim = 24;
  const cuSeqlensQ = cumsum(lensQ), cuSeqlensK = cumsum(lensK);
  const totalQ = cuSeqlensQ[lensQ.length]!, totalK = cuSeqlensK[lensK.length]!;
  return {
    q: randn(totalQ * numHeads * headDim, 1.5), k: randn(totalK * numKvHeads * headDim, 1.5),
    v: randn(totalK * numKvHeads * headDim), gradOut: randn(totalQ * numHeads * headDim),
    cuSeqlensQ, cuSeqlensK, numHeads, numKvHeads, headDim, causal, scale: 1 / Math.sqrt(headDim),
  };
}

describe('kernels.attention / attentionBackward', () => {
  for (const causal of [true, false]) {
    it(`matches a naive implementation (${causal ? 'causal, Lq < Lk' : 'bidirectional'}, GQA, varlen)`, () => {
      const p = problem(causal);
      const ref = reference(p);
      const { gradOut, ...fwd } = p;
      const { out, lse } = kernels.attention(fwd);
      expectClose(out, ref.out, 2e-5, 2e-4, 'out');
      expectClose(lse, ref.lse, 2e-5, 2e-5, 'lse');
      const g = kernels.attentionBackward({ ...fwd, out, lse, gradOut });
      expectClose(g.gradQ, ref.gradQ, 1e-4, 1e-3, 'gradQ');
      expectClose(g.gradK, ref.gradK, 1e-4, 1e-3, 'gradK');
      expectClose(g.gradV, ref.gradV, 1e-4, 1e-3, 'gradV');
      // The materialising baseline gives the same results.
      const n = kernels.attentionNaive(fwd);
      expectClose(n.out, ref.out, 2e-5, 2e-4, 'naive out');
      const ng = kernels.attentionNaiveBackward({ ...fwd, out, lse, gradOut });
      expectClose(ng.gradK, ref.gradK, 1e-4, 1e-3, 'naive gradK');
    });
  }

  it('defaults cuSeqlensK to cuSeqlensQ and scale to 1/sqrt(headDim)', () => {
    const p = problem(false);
    const ref = reference(p);
    const { out } = kernels.attention({
      q: p.q, k: p.k, v: p.v, cuSeqlensQ: p.cuSeqlensQ, numHeads: 6, numKvHeads: 2, headDim: 24,
    });
    expectClose(out, ref.out, 2e-5, 2e-4, 'out');
  });

  it('rejects bad lengths and options with errors naming the numbers', () => {
    const p = problem(true);
    const { gradOut, ...fwd } = p;
    expect(() => kernels.attention({ ...fwd, q: p.q.subarray(1) })).toThrow(RangeError);
    expect(() => kernels.attention({ ...fwd, q: p.q.subarray(1) })).toThrow(/q has length 15695, not a multiple of numHeads\*headDim = 6\*24 = 144/);
    expect(() => kernels.attention({ ...fwd, cuSeqlensQ: Int32Array.from([0, 1, 71, 76, 100]) })).toThrow(
      /cuSeqlensQ ends at 100 but q holds 109 tokens/,
    );
    expect(() => kernels.attention({ ...fwd, numHeads: 6, numKvHeads: 4 })).toThrow(
      /numHeads \(6\) must be a multiple of numKvHeads \(4\)/,
    );
    expect(() => kernels.attention({ ...fwd, cuSeqlensK: Int32Array.from([0, 9, 79, 91]) })).toThrow(
      /cuSeqlensK ends at 91 but k holds 124 tokens/,
    );
    expect(() => kernels.attention({ ...fwd, scale: Number.NaN })).toThrow(RangeError);
    expect(() => kernels.attention({ ...fwd, q: Array.from(p.q) as unknown as Float32Array })).toThrow(TypeError);
    const { out, lse } = kernels.attention(fwd);
    expect(() => kernels.attentionBackward({ ...fwd, out, lse: lse.subarray(6), gradOut })).toThrow(
      /lse has length 648, expected numHeads\*totalQ = 6\*109 = 654/,
    );
    // Native re-checks cu_seqlens itself (ArgumentError -> RangeError), bypassing the TypeScript checks.
    expect(() => native().attention({ ...fwd, cuSeqlensQ: Int32Array.from([0, 1, 71, 76, 100]) })).toThrow(
      /cu_seqlens_q ends at 100 but total_q=109/,
    );
  });
});
