/**
 * Norms, rotary embeddings and activations through the addon: each against a plain TypeScript reference on fresh
 * random inputs, the rotary tables against the HF-derived fixtures (test/fixtures/tiny-*), and argument errors.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { erf } from 'mathjs';
import { describe, expect, it } from 'vitest';

import * as kernels from '../src/kernels/index.js';

const SEED = Number(process.env.VG_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** Seeded normal samples (mulberry32 + Box-Muller). */
function makeRng(salt: number): { uniform: () => number; normal: () => number } {
  let s = (SEED ^ Math.imul(salt, 0x9e3779b9)) >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

function randn(n: number, salt: number, scale = 1): Float32Array {
  const r = makeRng(salt);
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

/** max |a − b| / (atol + rtol·|b|) must be <= 1; reports the worst index. */
function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(a.length, `${what}: length`).toBe(b.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  expect(worst, `${what}: [${at}] ${a[at]} vs ${b[at]} (seed ${SEED})`).toBeLessThanOrEqual(1);
}

// ---- TypeScript references (double precision)

function refRmsNorm(x: Float32Array, w: Float32Array, rows: number, hidden: number, eps: number) {
  const out = new Float64Array(rows * hidden), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < hidden; j++) ss += x[r * hidden + j]! ** 2;
    rstd[r] = 1 / Math.sqrt(ss / hidden + eps);
    for (let j = 0; j < hidden; j++) out[r * hidden + j] = w[j]! * x[r * hidden + j]! * rstd[r]!;
  }
  return { out, rstd };
}

// dx = rstd·(g − x̂·mean(g⊙x̂)), g = dy⊙w; dw = Σ dy⊙x̂.
function refRmsNormBackward(x: Float32Array, w: Float32Array, dy: Float32Array, rows: number, hidden: number, eps: number) {
  const { rstd } = refRmsNorm(x, w, rows, hidden, eps);
  const dx = new Float64Array(rows * hidden), dw = new Float64Array(hidden);
  for (let r = 0; r < rows; r++) {
    const rs = rstd[r]!;
    let c = 0;
    for (let j = 0; j < hidden; j++) c += dy[r * hidden + j]! * w[j]! * x[r * hidden + j]! * rs;
    c /= hidden;
    for (let j = 0; j < hidden; j++) {
      const xh = x[r * hidden + j]! * rs;
      dx[r * hidden + j] = rs * (dy[r * hidden + j]! * w[j]! - xh * c);
      dw[j] = dw[j]! + dy[r * hidden + j]! * xh;
    }
  }
  return { dx, dw };
}

function refLayerNorm(x: Float32Array, w: Float32Array, b: Float32Array | undefined, rows: number, hidden: number, eps: number) {
  const out = new Float64Array(rows * hidden), mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let j = 0; j < hidden; j++) mu += x[r * hidden + j]!;
    mu /= hidden;
    let v = 0;
    for (let j = 0; j < hidden; j++) v += (x[r * hidden + j]! - mu) ** 2;
    const rs = 1 / Math.sqrt(v / hidden + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < hidden; j++) out[r * hidden + j] = (x[r * hidden + j]! - mu) * rs * w[j]! + (b ? b[j]! : 0);
  }
  return { out, mean, rstd };
}

// dx = rstd·(g − mean(g) − x̂·mean(g⊙x̂)); dw = Σ dy⊙x̂; db = Σ dy.
function refLayerNormBackward(x: Float32Array, w: Float32Array, dy: Float32Array, rows: number, hidden: number, eps: number) {
  const { mean, rstd } = refLayerNorm(x, w, undefined, rows, hidden, eps);
  const dx = new Float64Array(rows * hidden), dw = new Float64Array(hidden), db = new Float64Array(hidden);
  for (let r = 0; r < rows; r++) {
    const rs = rstd[r]!, mu = mean[r]!;
    let mg = 0, mgx = 0;
    for (let j = 0; j < hidden; j++) {
      const g = dy[r * hidden + j]! * w[j]!;
      mg += g;
      mgx += g * (x[r * hidden + j]! - mu) * rs;
    }
    mg /= hidden;
    mgx /= hidden;
    for (let j = 0; j < hidden; j++) {
      const xh = (x[r * hidden + j]! - mu) * rs, g = dy[r * hidden + j]!;
      dx[r * hidden + j] = rs * (g * w[j]! - mg - xh * mgx);
      dw[j] = dw[j]! + g * xh;
      db[j] = db[j]! + g;
    }
  }
  return { dx, dw, db };
}

const f = Math.fround;

/** inv_freq exactly as HF (fp32): 1 / theta^(float(2k)/dim). */
function invFreq(theta: number, dim: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < dim; k += 2) out.push(f(1 / f(Math.pow(f(theta), f(k / dim)))));
  return out;
}

/** HF's emb = concat(freqs, freqs) for one token from its per-pair fp32 angles. */
function concatEmb(angles: number[]): number[] {
  return [...angles, ...angles];
}

/** Per-token emb [N][d] for each kind, transcribed from the spec (3.2, 4.3). */
function refEmb(kind: kernels.RopeKind, pos: Int32Array, n: number, d: number, theta: number, sec?: [number, number, number]): number[][] {
  const emb: number[][] = [];
  if (kind === 'vision2d') {
    const inv = invFreq(theta, d / 2);
    for (let t = 0; t < n; t++) {
      const h = inv.map((v) => f(f(pos[2 * t]!) * v)), w = inv.map((v) => f(f(pos[2 * t + 1]!) * v));
      emb.push(concatEmb([...h, ...w]));
    }
    return emb;
  }
  const inv = invFreq(theta, d);
  const compEmb = (c: number, t: number) => concatEmb(inv.map((v) => f(f(pos[c * n + t]!) * v)));
  for (let t = 0; t < n; t++) {
    if (kind === '1d') {
      emb.push(compEmb(0, t));
      continue;
    }
    // HF apply_multimodal_rotary_pos_emb: split d into mrope_section*2 chunks; chunk i reads component i % 3.
    const [s0, s1, s2] = sec!;
    const chunks = [s0, s1, s2, s0, s1, s2];
    const e: number[] = [];
    let off = 0;
    chunks.forEach((len, i) => {
      const src = compEmb(i % 3, t);
      for (let j = 0; j < len; j++) e.push(src[off + j]!);
      off += len;
    });
    emb.push(e);
  }
  return emb;
}

/** q' = q·cos(emb) + rotate_half(q)·sin(emb), rotate_half([a, b]) = [−b, a]; by −emb when inverse. */
function refRope(x: Float32Array, emb: number[][], n: number, heads: number, d: number, inverse = false): Float64Array {
  const out = new Float64Array(x.length), half = d / 2, sign = inverse ? -1 : 1;
  for (let t = 0; t < n; t++)
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * d;
      for (let i = 0; i < d; i++) {
        const rh = i < half ? -x[base + i + half]! : x[base + i - half]!;
        out[base + i] = x[base + i]! * Math.cos(emb[t]![i]!) + rh * sign * Math.sin(emb[t]![i]!);
      }
    }
  return out;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
const refGelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));
const refGeluGrad = (v: number): number => 0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI);
const C = Math.sqrt(2 / Math.PI);
const refGeluTanh = (v: number): number => 0.5 * v * (1 + Math.tanh(C * (v + 0.044715 * v ** 3)));
const refGeluTanhGrad = (v: number): number => {
  const t = Math.tanh(C * (v + 0.044715 * v ** 3));
  return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * C * (1 + 3 * 0.044715 * v * v);
};
const refQuickGelu = (v: number): number => v * sigmoid(1.702 * v);
const refQuickGeluGrad = (v: number): number => {
  const s = sigmoid(1.702 * v);
  return s + 1.702 * v * s * (1 - s);
};
const refSilu = (v: number): number => v * sigmoid(v);
const refSiluGrad = (v: number): number => sigmoid(v) * (1 + v * (1 - sigmoid(v)));

function randomPositions(n: number, salt: number, max: number): Int32Array {
  const r = makeRng(salt);
  const p = Int32Array.from({ length: n }, () => Math.floor(r.uniform() * max));
  if (n > 2) {
    p[0] = 0;
    p[1] = 2147483647;
  }
  return p;
}

// ---- fixtures: safetensors (F32 / I64) written by the independent PyTorch reference (test/fixtures/README.md)

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

function readFixture(name: string): Map<string, { shape: number[]; data: Float32Array | BigInt64Array }> {
  const bytes = readFileSync(join(FIXTURES, name, 'expected.safetensors'));
  const len = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { shape: number[]; data: Float32Array | BigInt64Array }>();
  for (const [key, e] of Object.entries(header)) {
    if (key === '__metadata__' || (e.dtype !== 'F32' && e.dtype !== 'I64')) continue;
    const raw = bytes.subarray(8 + len + e.data_offsets[0], 8 + len + e.data_offsets[1]);
    const buf = new Uint8Array(raw).buffer; // copy: aligned
    out.set(key, { shape: e.shape, data: e.dtype === 'F32' ? new Float32Array(buf) : new BigInt64Array(buf) });
  }
  return out;
}

function fixtureTensor(m: ReturnType<typeof readFixture>, key: string) {
  const t = m.get(key);
  if (!t) throw new Error(`fixture tensor ${key} is missing`);
  return t;
}

describe(`layers kernels (seed ${SEED})`, () => {
  describe('rmsNorm', () => {
    it.each([
      [1, 1],
      [3, 7],
      [33, 200],
      [4, 2048],
    ])('forward and backward match the reference (rows %i, hidden %i)', (rows, hidden) => {
      const x = randn(rows * hidden, 1, 2), weight = randn(hidden, 2), gradOut = randn(rows * hidden, 3);
      const eps = 1e-6;
      const { out, rstd } = kernels.rmsNorm({ x, weight, rows, hidden, eps });
      const ref = refRmsNorm(x, weight, rows, hidden, eps);
      expectClose(out, ref.out, 1e-5, 1e-5, 'out');
      expectClose(rstd, ref.rstd, 0, 1e-5, 'rstd');

      const prior = randn(hidden, 4);
      const acc = prior.slice();
      const g = kernels.rmsNormBackward({ x, weight, rstd, gradOut, rows, hidden, gradWeight: acc });
      const rg = refRmsNormBackward(x, weight, gradOut, rows, hidden, eps);
      expectClose(g.gradInput, rg.dx, 1e-5, 1e-4, 'gradInput');
      expect(g.gradWeight).toBe(acc); // accumulated in place into the caller's buffer
      expectClose(
        g.gradWeight,
        rg.dw.map((v, j) => v + prior[j]!),
        1e-4,
        1e-4,
        'gradWeight (accumulated)',
      );
      const fresh = kernels.rmsNormBackward({ x, weight, rstd, gradOut, rows, hidden });
      expectClose(fresh.gradWeight, rg.dw, 1e-4, 1e-4, 'gradWeight (new)');
    });
  });

  describe('layerNorm', () => {
    it.each([
      [1, 5, true],
      [17, 64, true],
      [9, 1280, false],
    ])('forward and backward match the reference (rows %i, hidden %i, bias %s)', (rows, hidden, withBias) => {
      const x = randn(rows * hidden, 5, 3), weight = randn(hidden, 6), bias = withBias ? randn(hidden, 7) : undefined;
      const gradOut = randn(rows * hidden, 8);
      const eps = 1e-6;
      const r = kernels.layerNorm({ x, weight, rows, hidden, eps, ...(bias ? { bias } : {}) });
      const ref = refLayerNorm(x, weight, bias, rows, hidden, eps);
      expectClose(r.out, ref.out, 1e-5, 1e-4, 'out');
      expectClose(r.mean, ref.mean, 1e-6, 1e-5, 'mean');
      expectClose(r.rstd, ref.rstd, 0, 1e-4, 'rstd');

      const pw = randn(hidden, 9), pb = randn(hidden, 10);
      const g = kernels.layerNormBackward({
        x, weight, mean: r.mean, rstd: r.rstd, gradOut, rows, hidden, gradWeight: pw.slice(), gradBias: pb.slice(),
      });
      const rg = refLayerNormBackward(x, weight, gradOut, rows, hidden, eps);
      expectClose(g.gradInput, rg.dx, 1e-5, 1e-4, 'gradInput');
      expectClose(g.gradWeight, rg.dw.map((v, j) => v + pw[j]!), 1e-4, 1e-4, 'gradWeight');
      expectClose(g.gradBias, rg.db.map((v, j) => v + pb[j]!), 1e-4, 1e-4, 'gradBias');
    });
  });

  describe('rope', () => {
    const cases: Array<{ kind: kernels.RopeKind; d: number; theta: number; sec?: [number, number, number] }> = [
      { kind: '1d', d: 64, theta: 1e6 },
      { kind: '1d', d: 16, theta: 1e4 },
      { kind: 'mrope', d: 128, theta: 1e6, sec: [16, 24, 24] },
      { kind: 'mrope', d: 16, theta: 1e4, sec: [2, 3, 3] },
      { kind: 'mrope', d: 24, theta: 100, sec: [3, 4, 5] },
      { kind: 'vision2d', d: 80, theta: 1e4 },
      { kind: 'vision2d', d: 16, theta: 1e4 },
    ];
    it.each(cases)('$kind (d $d, theta $theta) matches the literal formula', ({ kind, d, theta, sec }) => {
      const n = 37, heads = 3;
      const per = kind === 'mrope' ? 3 : kind === 'vision2d' ? 2 : 1;
      const positions = randomPositions(per * n, 11, kind === 'vision2d' ? 64 : 1_000_000);
      const x = randn(n * heads * d, 12);
      const spec = { kind, numTokens: n, headDim: d, positions, theta, ...(sec ? { mropeSection: sec } : {}) };
      const y = kernels.rope({ ...spec, x, numHeads: heads });
      const emb = refEmb(kind, positions, n, d, theta, sec);
      // Same fp32 angles on both sides; fp32 cos/sin and rotation rounding stay within a few ulp of |x|.
      expectClose(y, refRope(x, emb, n, heads, d), 5e-6, 0, 'rope');
      // Tables + apply give the same result; the inverse rotation undoes it.
      const tables = kernels.ropeTables(spec);
      expect(tables.cos.length).toBe((n * d) / 2);
      const y2 = kernels.ropeApply({ x, ...tables, numTokens: n, numHeads: heads, headDim: d });
      expect(Array.from(y2)).toEqual(Array.from(y));
      const back = kernels.rope({ ...spec, x: y, numHeads: heads, inverse: true });
      expectClose(back, x, 3e-6, 0, 'inverse(rope(x))');
      // Backward = inverse rotation: <rope(x), g> = <x, rope⁻¹(g)> for any g.
      const gy = randn(x.length, 13);
      const gx = kernels.ropeApply({ x: gy, ...tables, numTokens: n, numHeads: heads, headDim: d, inverse: true });
      let lhs = 0, rhs = 0;
      for (let i = 0; i < x.length; i++) {
        lhs += y[i]! * gy[i]!;
        rhs += x[i]! * gx[i]!;
      }
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * (1 + Math.abs(lhs)));
    });

    it('mrope with t = h = w equals 1-D rope', () => {
      const n = 20, d = 128, heads = 2;
      const p = randomPositions(n, 14, 100000);
      const p3 = new Int32Array(3 * n);
      for (let c = 0; c < 3; c++) p3.set(p, c * n);
      const x = randn(n * heads * d, 15);
      const a = kernels.rope({ kind: '1d', x, numTokens: n, numHeads: heads, headDim: d, positions: p });
      const b = kernels.rope({ kind: 'mrope', x, numTokens: n, numHeads: heads, headDim: d, positions: p3, mropeSection: [16, 24, 24] });
      expect(Array.from(b)).toEqual(Array.from(a));
    });

    // The cos/sin that multiply q and k in the PyTorch reference run (text after section selection; vision in the
    // tower's order: window order for Qwen2.5-VL, raster merge order for Qwen2-VL).
    it.each(['tiny-a', 'tiny-q2vl'])('tables match the %s fixture (text M-RoPE and vision 2-D)', (name) => {
      const cfg = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as {
        hidden_size: number; num_attention_heads: number; rope_theta: number; rope_scaling: { mrope_section: [number, number, number] };
        vision_config: { hidden_size?: number; embed_dim?: number; num_heads: number };
      };
      const m = readFixture(name);
      // Text: position_ids [3, 1, L] → cos/sin [1, L, d] = concat of the table halves.
      const d = cfg.hidden_size / cfg.num_attention_heads;
      const pid = fixtureTensor(m, 'single.position_ids');
      const L = pid.shape[2]!;
      const positions = Int32Array.from(pid.data as BigInt64Array, Number);
      const text = kernels.ropeTables({
        kind: 'mrope', numTokens: L, headDim: d, positions, theta: cfg.rope_theta, mropeSection: cfg.rope_scaling.mrope_section,
      });
      const wantCos = fixtureTensor(m, 'single.debug.text.cos').data as Float32Array;
      const wantSin = fixtureTensor(m, 'single.debug.text.sin').data as Float32Array;
      const gotCos = new Float32Array(L * d), gotSin = new Float32Array(L * d);
      for (let t = 0; t < L; t++)
        for (let k = 0; k < d / 2; k++)
          for (const o of [0, d / 2]) {
            gotCos[t * d + k + o] = text.cos[t * (d / 2) + k]!;
            gotSin[t * d + k + o] = text.sin[t * (d / 2) + k]!;
          }
      expectClose(gotCos, wantCos, 1e-6, 0, `${name} text cos`);
      expectClose(gotSin, wantSin, 1e-6, 0, `${name} text sin`);

      // Vision: pos_ids [N, 2] (hpos, wpos) in the processor's order → cos/sin [N, dv].
      const dv = (cfg.vision_config.embed_dim ?? cfg.vision_config.hidden_size)! / cfg.vision_config.num_heads;
      const vp = fixtureTensor(m, 'single.debug.vision.pos_ids');
      const N = vp.shape[0]!;
      const vis = kernels.ropeTables({ kind: 'vision2d', numTokens: N, headDim: dv, positions: Int32Array.from(vp.data as BigInt64Array, Number) });
      // Qwen2.5-VL permutes the rows by merge unit (4 patches) into window order before the blocks.
      const win = m.get('single.debug.vision.window_index');
      const rowOf = (i: number): number => (win ? Number((win.data as BigInt64Array)[Math.floor(i / 4)]!) * 4 + (i % 4) : i);
      const vCos = fixtureTensor(m, 'single.debug.vision.cos').data as Float32Array;
      const vSin = fixtureTensor(m, 'single.debug.vision.sin').data as Float32Array;
      const gc = new Float32Array(N * dv), gs = new Float32Array(N * dv);
      for (let i = 0; i < N; i++)
        for (let k = 0; k < dv / 2; k++)
          for (const o of [0, dv / 2]) {
            gc[i * dv + k + o] = vis.cos[rowOf(i) * (dv / 2) + k]!;
            gs[i * dv + k + o] = vis.sin[rowOf(i) * (dv / 2) + k]!;
          }
      expectClose(gc, vCos, 1e-6, 0, `${name} vision cos`);
      expectClose(gs, vSin, 1e-6, 0, `${name} vision sin`);
    });
  });

  describe('activations', () => {
    const x = randn(20011, 20, 3);
    x.set([0, 1e-8, -1e-8, 9, -9, 15, -15, 30, -30]);
    const gradOut = randn(x.length, 21);
    const unary = [
      { name: 'gelu (erf)', fwd: () => kernels.gelu({ x }), bwd: () => kernels.geluBackward({ x, gradOut }), ref: refGelu, grad: refGeluGrad },
      {
        name: 'gelu (tanh)', fwd: () => kernels.gelu({ x, approximate: 'tanh' }),
        bwd: () => kernels.geluBackward({ x, gradOut, approximate: 'tanh' }), ref: refGeluTanh, grad: refGeluTanhGrad,
      },
      { name: 'quickGelu', fwd: () => kernels.quickGelu({ x }), bwd: () => kernels.quickGeluBackward({ x, gradOut }), ref: refQuickGelu, grad: refQuickGeluGrad },
    ];
    it.each(unary)('$name forward and backward match the formulas', ({ fwd, bwd, ref, grad }) => {
      expectClose(fwd(), Array.from(x, ref), 1e-6, 1e-6, 'forward');
      expectClose(bwd(), Array.from(x, (v, i) => gradOut[i]! * grad(v)), 1e-6, 1e-5, 'backward');
    });

    it('swiglu split and fused layouts match the formula and each other', () => {
      const rows = 13, inter = 77, n = rows * inter;
      const gate = randn(n, 22, 3), up = randn(n, 23), dOut = randn(n, 24);
      const out = kernels.swiglu({ gate, up });
      expectClose(out, Array.from(gate, (a, i) => refSilu(a) * up[i]!), 1e-6, 1e-6, 'swiglu');
      const g = kernels.swigluBackward({ gate, up, gradOut: dOut });
      expectClose(g.gradGate, Array.from(gate, (a, i) => dOut[i]! * up[i]! * refSiluGrad(a)), 1e-6, 1e-5, 'gradGate');
      expectClose(g.gradUp, Array.from(gate, (a, i) => dOut[i]! * refSilu(a)), 1e-6, 1e-5, 'gradUp');

      // Fused [rows, 2·inter]: each row holds its gate values, then its up values.
      const gateUp = new Float32Array(2 * n);
      for (let r = 0; r < rows; r++) {
        gateUp.set(gate.subarray(r * inter, (r + 1) * inter), r * 2 * inter);
        gateUp.set(up.subarray(r * inter, (r + 1) * inter), r * 2 * inter + inter);
      }
      expect(Array.from(kernels.swiglu({ gateUp, intermediate: inter }))).toEqual(Array.from(out));
      const fg = kernels.swigluBackward({ gateUp, intermediate: inter, gradOut: dOut });
      for (let r = 0; r < rows; r++) {
        expect(Array.from(fg.gradGateUp.subarray(r * 2 * inter, r * 2 * inter + inter))).toEqual(
          Array.from(g.gradGate.subarray(r * inter, (r + 1) * inter)),
        );
        expect(Array.from(fg.gradGateUp.subarray(r * 2 * inter + inter, (r + 1) * 2 * inter))).toEqual(
          Array.from(g.gradUp.subarray(r * inter, (r + 1) * inter)),
        );
      }
    });

    it('stays finite for huge |x|', () => {
      const big = Float32Array.from([1e4, -1e4, 1e20, -1e20, 3e38, -3e38]);
      const ones = new Float32Array(big.length).fill(1);
      const outs = [
        kernels.gelu({ x: big }), kernels.geluBackward({ x: big, gradOut: ones }),
        kernels.gelu({ x: big, approximate: 'tanh' }), kernels.geluBackward({ x: big, gradOut: ones, approximate: 'tanh' }),
        kernels.quickGelu({ x: big }), kernels.quickGeluBackward({ x: big, gradOut: ones }),
        kernels.swiglu({ gate: big, up: ones }), kernels.swigluBackward({ gate: big, up: ones, gradOut: ones }).gradGate,
      ];
      for (const o of outs) for (const v of o) expect(Number.isFinite(v)).toBe(true);
    });
  });

  describe('argument errors', () => {
    const x = new Float32Array(12), w = new Float32Array(4);
    it('norms name the field and the numbers', () => {
      expect(() => kernels.rmsNorm({ x, weight: w, rows: 2, hidden: 4, eps: 1e-6 })).toThrow(
        new RangeError('rmsNorm: x has length 12, expected 8 (rows·hidden = 2·4)'),
      );
      expect(() => kernels.rmsNorm({ x, weight: new Float32Array(3), rows: 3, hidden: 4, eps: 1e-6 })).toThrow(/weight has length 3, expected 4/);
      expect(() => kernels.rmsNorm({ x: Array.from(x) as unknown as Float32Array, weight: w, rows: 3, hidden: 4, eps: 1e-6 })).toThrow(TypeError);
      expect(() => kernels.rmsNorm({ x, weight: w, rows: 3, hidden: 4, eps: Number.NaN })).toThrow(/eps must be finite and >= 0, got NaN/);
      expect(() => kernels.rmsNorm({ x, weight: w, rows: 3, hidden: 4 } as kernels.RmsNormInput)).toThrow(TypeError);
      expect(() => kernels.rmsNorm({ x, weight: w, rows: 1.5, hidden: 4, eps: 1e-6 })).toThrow(/rows must be an integer/);
      expect(() =>
        kernels.rmsNormBackward({ x, weight: w, rstd: new Float32Array(2), gradOut: x, rows: 3, hidden: 4 }),
      ).toThrow(/rstd has length 2, expected 3/);
      expect(() =>
        kernels.layerNorm({ x, weight: w, bias: new Float32Array(5), rows: 3, hidden: 4, eps: 1e-6 }),
      ).toThrow(/bias has length 5, expected 4/);
      expect(() =>
        kernels.layerNormBackward({
          x, weight: w, mean: new Float32Array(3), rstd: new Float32Array(3), gradOut: x, rows: 3, hidden: 4,
          gradBias: new Float32Array(2),
        }),
      ).toThrow(/gradBias has length 2, expected 4/);
    });

    it('rope checks kinds, dims, positions and sections', () => {
      const base = { x: new Float32Array(2 * 16), numTokens: 2, numHeads: 1, headDim: 16 };
      expect(() => kernels.rope({ ...base, kind: 'mrope', positions: new Int32Array(6), mropeSection: [2, 3, 2] })).toThrow(
        new RangeError('rope: mropeSection [2, 3, 2] sums to 7, expected headDim/2 = 8'),
      );
      expect(() => kernels.rope({ ...base, kind: 'mrope', positions: new Int32Array(6) })).toThrow(TypeError);
      expect(() => kernels.rope({ ...base, kind: 'mrope', positions: new Int32Array(6), mropeSection: [-1, 5, 4] })).toThrow(
        /mropeSection\[0\] must be a non-negative integer, got -1/,
      );
      expect(() => kernels.rope({ ...base, kind: 'mrope', positions: new Int32Array(4), mropeSection: [2, 3, 3] })).toThrow(
        /positions has length 4, expected 6/,
      );
      expect(() => kernels.rope({ ...base, kind: '1d', positions: new Float32Array(2) as unknown as Int32Array })).toThrow(TypeError);
      expect(() => kernels.rope({ ...base, kind: '2d' as kernels.RopeKind, positions: new Int32Array(2) })).toThrow(RangeError);
      expect(() => kernels.rope({ ...base, x: new Float32Array(2 * 14), headDim: 14, kind: 'vision2d', positions: new Int32Array(4) })).toThrow(
        /divisible by 4/,
      );
      expect(() => kernels.rope({ ...base, x: new Float32Array(2 * 15), headDim: 15, kind: '1d', positions: new Int32Array(2) })).toThrow(
        /headDim must be even, got 15/,
      );
      expect(() => kernels.rope({ ...base, kind: '1d', positions: new Int32Array(2), theta: 0 })).toThrow(/theta must be finite and > 0/);
      expect(() => kernels.rope({ ...base, numHeads: 2, kind: '1d', positions: new Int32Array(2) })).toThrow(
        /x has length 32, expected 64/,
      );
      expect(() =>
        kernels.ropeApply({ x: base.x, cos: new Float32Array(16), sin: new Float32Array(15), numTokens: 2, numHeads: 1, headDim: 16 }),
      ).toThrow(/sin has length 15, expected 16/);
    });

    it('activations check layouts and options', () => {
      const g = new Float32Array(6);
      expect(() => kernels.swiglu({ gate: g, up: new Float32Array(5) })).toThrow(/up has length 5, expected 6/);
      expect(() => kernels.swiglu({ gateUp: g, intermediate: 4 })).toThrow(/gateUp has length 6, not a multiple of 2·intermediate = 8/);
      expect(() => kernels.swiglu({ gate: g, up: g, gateUp: g, intermediate: 3 } as kernels.SwigluInput)).toThrow(TypeError);
      expect(() => kernels.swigluBackward({ gateUp: g, intermediate: 3, gradOut: new Float32Array(6) })).toThrow(/gradOut has length 6, expected 3/);
      expect(() => kernels.gelu({ x: g, approximate: 'erf' as kernels.GeluApproximate })).toThrow(RangeError);
      expect(() => kernels.geluBackward({ x: g, gradOut: new Float32Array(7) })).toThrow(/gradOut has length 7, expected 6/);
      expect(() => kernels.quickGeluBackward({ x: g } as { x: Float32Array; gradOut: Float32Array })).toThrow(TypeError);
    });
  });
});
