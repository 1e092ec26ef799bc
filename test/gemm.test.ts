import { describe, expect, it } from 'vitest';

import { kernels } from '../src/index.js';

function randn(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return a;
}

function refGemm(a: Float32Array, b: Float32Array, m: number, n: number, k: number, tA: boolean, tB: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[tA ? p * m + i : i * k + p]! * b[tB ? j * k + p : p * n + j]!;
      c[i * n + j] = s;
    }
  return c;
}

describe('kernels.gemm / linear', () => {
  for (const builtin of [false, true]) {
    it(`matches a plain triple loop for all transposes (${builtin ? 'built-in' : 'BLAS'} path)`, () => {
      const m = 17, n = 33, k = 29;
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const a = randn(m * k), b = randn(k * n);
        const c = kernels.gemm({ a, b, m, n, k, transA: tA, transB: tB, builtin });
        const ref = refGemm(a, b, m, n, k, tA, tB);
        for (let i = 0; i < m * n; i++) expect(Math.abs(c[i]! - ref[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(ref[i]!)));
      }
    });
  }

  it('linear adds the bias and its backward matches the definitions', () => {
    const rows = 6, inF = 5, outF = 4;
    const x = randn(rows * inF), weight = randn(outF * inF), bias = randn(outF), gradOutput = randn(rows * outF);
    const y = kernels.linear({ x, weight, bias, rows, inFeatures: inF, outFeatures: outF });
    const g = kernels.linearBackward({ x, weight, gradOutput, rows, inFeatures: inF, outFeatures: outF });
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < outF; o++) {
        let s = bias[o]!;
        for (let i = 0; i < inF; i++) s += x[r * inF + i]! * weight[o * inF + i]!;
        expect(y[r * outF + o]).toBeCloseTo(s, 4);
      }
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += gradOutput[r * outF + o]!;
      expect(g.gradBias![o]).toBeCloseTo(s, 4);
      for (let i = 0; i < inF; i++) {
        let w = 0;
        for (let r = 0; r < rows; r++) w += gradOutput[r * outF + o]! * x[r * inF + i]!;
        expect(g.gradWeight[o * inF + i]).toBeCloseTo(w, 4);
      }
    }
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let o = 0; o < outF; o++) s += gradOutput[r * outF + o]! * weight[o * inF + i]!;
        expect(g.gradInput[r * inF + i]).toBeCloseTo(s, 4);
      }
  });

  it('rejects wrong lengths and types with the field name and numbers', () => {
    expect(() => kernels.gemm({ a: new Float32Array(5), b: new Float32Array(4), m: 2, n: 2, k: 2 })).toThrow(/a has length 5, expected 4/);
    expect(() => kernels.gemm({ a: new Float64Array(4) as unknown as Float32Array, b: new Float32Array(4), m: 2, n: 2, k: 2 })).toThrow(TypeError);
    expect(() => kernels.gemm({ a: new Float32Array(4), b: new Float32Array(4), m: 2.5, n: 2, k: 2 })).toThrow(RangeError);
  });
});
