/**
 * Norms, rotary position embeddings and activations of Qwen2-VL / Qwen2.5-VL on Float32Arrays (row-major), forward
 * and backward. The math and conventions are those of native/cpu/norms.h, rope.h and activations.h:
 *
 * - RMSNorm: y = w ⊙ x / sqrt(mean(x²) + eps) per row of `hidden` values; LayerNorm: y = (x − mean)·rstd ⊙ w + b
 *   with the biased variance. The forward returns the per-row statistics the backward needs.
 * - Rotary (HF rotate_half convention): dims (k, k + headDim/2) of every head rotate by the angle θ_k of the token.
 *   Angles come from integer position ids: '1d' (θ_k = pos·inv_freq[k]), 'mrope' (Qwen2-VL / 2.5-VL multimodal
 *   RoPE: contiguous sections [s0, s1, s2] of the headDim/2 pairs read the t, h, w positions) or 'vision2d' (the
 *   vision tower: the first headDim/4 pairs rotate with hpos, the next headDim/4 with wpos). inv_freq and angles
 *   are fp32 as in HF. The backward of a rotation is the inverse rotation (`inverse: true`).
 * - SwiGLU: silu(gate) ⊙ up; GELU exact (erf) or tanh approximation; quick-GELU x·σ(1.702x).
 *
 * Parameter gradients (gradWeight, gradBias) are returned in new arrays, or accumulated (+=) into arrays the
 * caller passes, so micro-batches can sum into one buffer. Argument errors: TypeError for a missing or wrongly
 * typed field, RangeError for a bad length or value; both name the field and the numbers.
 */
import { native } from '../native/binding.js';

// ---- validation

function f32(fn: string, field: string, value: unknown, expected?: number, why?: string): Float32Array {
  if (value === undefined || value === null) throw new TypeError(`${fn}: ${field} is required (a Float32Array)`);
  if (!(value instanceof Float32Array)) throw new TypeError(`${fn}: ${field} must be a Float32Array`);
  if (expected !== undefined && value.length !== expected)
    throw new RangeError(`${fn}: ${field} has length ${value.length}, expected ${expected}${why ? ` (${why})` : ''}`);
  return value;
}

function optionalF32(fn: string, field: string, value: unknown, expected: number, why: string): Float32Array | undefined {
  return value === undefined || value === null ? undefined : f32(fn, field, value, expected, why);
}

function int(fn: string, field: string, value: unknown, min: number): number {
  if (value === undefined || value === null) throw new TypeError(`${fn}: ${field} is required (an integer)`);
  if (typeof value !== 'number') throw new TypeError(`${fn}: ${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > 0x7fffffff)
    throw new RangeError(`${fn}: ${field} must be an integer in [${min}, 2147483647], got ${value}`);
  return value;
}

function eps(fn: string, value: unknown): number {
  if (value === undefined || value === null) throw new TypeError(`${fn}: eps is required (a number, e.g. 1e-6)`);
  if (typeof value !== 'number') throw new TypeError(`${fn}: eps must be a number, got ${typeof value}`);
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${fn}: eps must be finite and >= 0, got ${value}`);
  return value;
}

function bool(fn: string, field: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`${fn}: ${field} must be a boolean, got ${typeof value}`);
  return value;
}

// ---- norms

export interface RmsNormInput {
  /** [rows, hidden] */
  x: Float32Array;
  /** [hidden] */
  weight: Float32Array;
  rows: number;
  hidden: number;
  /** Added to mean(x²); Qwen configs use rms_norm_eps = 1e-6 (read it from the config). */
  eps: number;
}

export interface RmsNormBackwardInput {
  /** The forward's input [rows, hidden]. */
  x: Float32Array;
  weight: Float32Array;
  /** The forward's rstd [rows]. */
  rstd: Float32Array;
  /** dLoss/dOut [rows, hidden]. */
  gradOut: Float32Array;
  rows: number;
  hidden: number;
  /** Optional [hidden] buffer the weight gradient is added to (and returned); a new zeroed one otherwise. */
  gradWeight?: Float32Array;
}

/** RMSNorm (Qwen2RMSNorm): out = weight ⊙ x · rstd, rstd = 1/sqrt(mean(x²) + eps) per row (fp32 statistics). */
export function rmsNorm(input: RmsNormInput): { out: Float32Array; rstd: Float32Array } {
  const fn = 'rmsNorm';
  const rows = int(fn, 'rows', input.rows, 0), hidden = int(fn, 'hidden', input.hidden, 1);
  const x = f32(fn, 'x', input.x, rows * hidden, `rows·hidden = ${rows}·${hidden}`);
  const weight = f32(fn, 'weight', input.weight, hidden, 'hidden');
  return native().rmsNorm({ x, weight, rows, hidden, eps: eps(fn, input.eps) });
}

/** Gradients of rmsNorm: gradInput (new) and gradWeight (accumulated, see RmsNormBackwardInput.gradWeight). */
export function rmsNormBackward(input: RmsNormBackwardInput): { gradInput: Float32Array; gradWeight: Float32Array } {
  const fn = 'rmsNormBackward';
  const rows = int(fn, 'rows', input.rows, 0), hidden = int(fn, 'hidden', input.hidden, 1);
  const shape = `rows·hidden = ${rows}·${hidden}`;
  const x = f32(fn, 'x', input.x, rows * hidden, shape);
  const weight = f32(fn, 'weight', input.weight, hidden, 'hidden');
  const rstd = f32(fn, 'rstd', input.rstd, rows, 'rows');
  const gradOut = f32(fn, 'gradOut', input.gradOut, rows * hidden, shape);
  const gradWeight = optionalF32(fn, 'gradWeight', input.gradWeight, hidden, 'hidden');
  return native().rmsNormBackward({ x, weight, rstd, gradOut, rows, hidden, ...(gradWeight ? { gradWeight } : {}) });
}

export interface LayerNormInput {
  /** [rows, hidden] */
  x: Float32Array;
  /** [hidden] */
  weight: Float32Array;
  /** [hidden]; omit for a LayerNorm without bias. */
  bias?: Float32Array;
  rows: number;
  hidden: number;
  /** Added to the variance; Qwen2-VL vision uses 1e-6. */
  eps: number;
}

export interface LayerNormBackwardInput {
  /** The forward's input [rows, hidden]. */
  x: Float32Array;
  weight: Float32Array;
  /** The forward's mean and rstd [rows]. */
  mean: Float32Array;
  rstd: Float32Array;
  /** dLoss/dOut [rows, hidden]. */
  gradOut: Float32Array;
  rows: number;
  hidden: number;
  /** Optional [hidden] buffers the gradients are added to (and returned); new zeroed ones otherwise. */
  gradWeight?: Float32Array;
  gradBias?: Float32Array;
}

/** LayerNorm: out = (x − mean)·rstd ⊙ weight + bias per row, rstd = 1/sqrt(biased variance + eps). */
export function layerNorm(input: LayerNormInput): { out: Float32Array; mean: Float32Array; rstd: Float32Array } {
  const fn = 'layerNorm';
  const rows = int(fn, 'rows', input.rows, 0), hidden = int(fn, 'hidden', input.hidden, 1);
  const x = f32(fn, 'x', input.x, rows * hidden, `rows·hidden = ${rows}·${hidden}`);
  const weight = f32(fn, 'weight', input.weight, hidden, 'hidden');
  const bias = optionalF32(fn, 'bias', input.bias, hidden, 'hidden');
  return native().layerNorm({ x, weight, rows, hidden, eps: eps(fn, input.eps), ...(bias ? { bias } : {}) });
}

/** Gradients of layerNorm: gradInput (new), gradWeight and gradBias (accumulated when passed in). */
export function layerNormBackward(input: LayerNormBackwardInput): {
  gradInput: Float32Array;
  gradWeight: Float32Array;
  gradBias: Float32Array;
} {
  const fn = 'layerNormBackward';
  const rows = int(fn, 'rows', input.rows, 0), hidden = int(fn, 'hidden', input.hidden, 1);
  const shape = `rows·hidden = ${rows}·${hidden}`;
  const x = f32(fn, 'x', input.x, rows * hidden, shape);
  const weight = f32(fn, 'weight', input.weight, hidden, 'hidden');
  const mean = f32(fn, 'mean', input.mean, rows, 'rows');
  const rstd = f32(fn, 'rstd', input.rstd, rows, 'rows');
  const gradOut = f32(fn, 'gradOut', input.gradOut, rows * hidden, shape);
  const gradWeight = optionalF32(fn, 'gradWeight', input.gradWeight, hidden, 'hidden');
  const gradBias = optionalF32(fn, 'gradBias', input.gradBias, hidden, 'hidden');
  return native().layerNormBackward({
    x, weight, mean, rstd, gradOut, rows, hidden, ...(gradWeight ? { gradWeight } : {}), ...(gradBias ? { gradBias } : {}),
  });
}

// ---- rotary embeddings

/** Where the rotary angles come from; see the module comment. */
export type RopeKind = '1d' | 'mrope' | 'vision2d';
export const ROPE_KINDS: readonly RopeKind[] = ['1d', 'mrope', 'vision2d'];

export interface RopeSpec {
  kind: RopeKind;
  numTokens: number;
  /** Head dimension d: even; divisible by 4 for 'vision2d'. */
  headDim: number;
  /** Position ids: [numTokens] ('1d'), [3, numTokens] t/h/w rows ('mrope'), [numTokens, 2] (hpos, wpos) ('vision2d'). */
  positions: Int32Array;
  /** RoPE base. Default 1e6 for '1d' and 'mrope' (Qwen2-VL / 2.5-VL rope_theta), 1e4 for 'vision2d' (fixed in HF). */
  theta?: number;
  /** 'mrope' only (required there): pairs per t, h, w section, summing to headDim/2; [16, 24, 24] in Qwen2-VL / 2.5-VL. */
  mropeSection?: readonly [number, number, number];
}

export interface RopeInput extends RopeSpec {
  /** [numTokens, numHeads, headDim] */
  x: Float32Array;
  numHeads: number;
  /** Rotate by −θ instead of θ: the backward of rope() applied to a gradient. */
  inverse?: boolean;
}

export interface RopeApplyInput {
  /** [numTokens, numHeads, headDim] */
  x: Float32Array;
  /** Tables from ropeTables(), [numTokens, headDim/2] each. */
  cos: Float32Array;
  sin: Float32Array;
  numTokens: number;
  numHeads: number;
  headDim: number;
  /** Rotate by −θ (the backward). */
  inverse?: boolean;
}

function ropeSpec(fn: string, s: RopeSpec): RopeSpec {
  if (typeof s.kind !== 'string') throw new TypeError(`${fn}: kind is required ('1d', 'mrope' or 'vision2d')`);
  if (!ROPE_KINDS.includes(s.kind)) throw new RangeError(`${fn}: kind must be '1d', 'mrope' or 'vision2d', got '${s.kind}'`);
  const numTokens = int(fn, 'numTokens', s.numTokens, 0), headDim = int(fn, 'headDim', s.headDim, 2);
  if (headDim % 2 !== 0) throw new RangeError(`${fn}: headDim must be even, got ${headDim}`);
  if (s.kind === 'vision2d' && headDim % 4 !== 0)
    throw new RangeError(`${fn}: vision2d needs headDim divisible by 4 (h and w halves), got ${headDim}`);
  if (!(s.positions instanceof Int32Array)) throw new TypeError(`${fn}: positions must be an Int32Array`);
  const perToken = s.kind === 'mrope' ? 3 : s.kind === 'vision2d' ? 2 : 1;
  if (s.positions.length !== perToken * numTokens)
    throw new RangeError(
      `${fn}: positions has length ${s.positions.length}, expected ${perToken * numTokens} (${perToken}·numTokens for '${s.kind}')`,
    );
  const out: RopeSpec = { kind: s.kind, numTokens, headDim, positions: s.positions };
  if (s.theta !== undefined) {
    if (typeof s.theta !== 'number') throw new TypeError(`${fn}: theta must be a number`);
    if (!Number.isFinite(s.theta) || s.theta <= 0) throw new RangeError(`${fn}: theta must be finite and > 0, got ${s.theta}`);
    out.theta = s.theta;
  }
  if (s.kind === 'mrope') {
    const sec: unknown = s.mropeSection;
    if (!Array.isArray(sec)) throw new TypeError(`${fn}: mropeSection is required for kind 'mrope' (3 integers)`);
    if (sec.length !== 3) throw new RangeError(`${fn}: mropeSection must have 3 entries, got ${sec.length}`);
    for (const [i, v] of sec.entries()) {
      if (typeof v !== 'number') throw new TypeError(`${fn}: mropeSection[${i}] must be a number`);
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`${fn}: mropeSection[${i}] must be a non-negative integer, got ${v}`);
    }
    const [a, b, c] = sec as [number, number, number];
    if (a + b + c !== headDim / 2)
      throw new RangeError(`${fn}: mropeSection [${a}, ${b}, ${c}] sums to ${a + b + c}, expected headDim/2 = ${headDim / 2}`);
    out.mropeSection = [a, b, c];
  }
  return out;
}

/**
 * cos/sin tables [numTokens, headDim/2] of the rotary angles (fp32, as HF computes them). Build them once per
 * sequence and share them across layers and between q and k with ropeApply().
 */
export function ropeTables(spec: RopeSpec): { cos: Float32Array; sin: Float32Array } {
  return native().ropeTables(ropeSpec('ropeTables', spec));
}

/** Rotates x [numTokens, numHeads, headDim] by precomputed tables (by −θ when `inverse`). Returns a new array. */
export function ropeApply(input: RopeApplyInput): Float32Array {
  const fn = 'ropeApply';
  const numTokens = int(fn, 'numTokens', input.numTokens, 0), numHeads = int(fn, 'numHeads', input.numHeads, 1);
  const headDim = int(fn, 'headDim', input.headDim, 2);
  if (headDim % 2 !== 0) throw new RangeError(`${fn}: headDim must be even, got ${headDim}`);
  const x = f32(fn, 'x', input.x, numTokens * numHeads * headDim, `numTokens·numHeads·headDim = ${numTokens}·${numHeads}·${headDim}`);
  const tableShape = `numTokens·headDim/2 = ${numTokens}·${headDim / 2}`;
  const cos = f32(fn, 'cos', input.cos, (numTokens * headDim) / 2, tableShape);
  const sin = f32(fn, 'sin', input.sin, (numTokens * headDim) / 2, tableShape);
  return native().ropeApply({ x, cos, sin, numTokens, numHeads, headDim, inverse: bool(fn, 'inverse', input.inverse) });
}

/**
 * Rotary embedding of x [numTokens, numHeads, headDim] with angles from position ids (tables built internally).
 * Returns a new array. `inverse: true` rotates by −θ, which is the backward: gradX = rope({ ...spec, x: gradY, inverse: true }).
 */
export function rope(input: RopeInput): Float32Array {
  const fn = 'rope';
  const spec = ropeSpec(fn, input);
  const numHeads = int(fn, 'numHeads', input.numHeads, 1);
  const x = f32(fn, 'x', input.x, spec.numTokens * numHeads * spec.headDim,
    `numTokens·numHeads·headDim = ${spec.numTokens}·${numHeads}·${spec.headDim}`);
  return native().rope({ ...spec, x, numHeads, inverse: bool(fn, 'inverse', input.inverse) });
}

// ---- activations

/**
 * SwiGLU operands: separate `gate` and `up` arrays of equal length, or one fused `gateUp` [rows, 2·intermediate]
 * whose rows hold the gate values first, then the up values (the output of one linear layer whose weight is
 * cat([W_gate, W_up])).
 */
export type SwigluInput = { gate: Float32Array; up: Float32Array } | { gateUp: Float32Array; intermediate: number };

function swigluOperands(
  fn: string,
  input: SwigluInput,
): { fused: false; gate: Float32Array; up: Float32Array } | { fused: true; gateUp: Float32Array; intermediate: number; rows: number } {
  const o = input as Partial<{ gate: unknown; up: unknown; gateUp: unknown; intermediate: unknown }>;
  const fused = o.gateUp !== undefined, split = o.gate !== undefined || o.up !== undefined;
  if (fused === split) throw new TypeError(`${fn}: pass either { gate, up } or { gateUp, intermediate }${fused ? ', not both' : ''}`);
  if (fused) {
    const gateUp = f32(fn, 'gateUp', o.gateUp);
    const intermediate = int(fn, 'intermediate', o.intermediate, 1);
    if (gateUp.length % (2 * intermediate) !== 0)
      throw new RangeError(`${fn}: gateUp has length ${gateUp.length}, not a multiple of 2·intermediate = ${2 * intermediate}`);
    return { fused: true, gateUp, intermediate, rows: gateUp.length / (2 * intermediate) };
  }
  const gate = f32(fn, 'gate', o.gate);
  const up = f32(fn, 'up', o.up, gate.length, 'the length of gate');
  return { fused: false, gate, up };
}

/** silu(gate) ⊙ up (Qwen2 MLP activation). Fused input gives [rows, intermediate]. Returns a new array. */
export function swiglu(input: SwigluInput): Float32Array {
  const op = swigluOperands('swiglu', input);
  return op.fused
    ? native().swiglu({ gateUp: op.gateUp, intermediate: op.intermediate })
    : native().swiglu({ gate: op.gate, up: op.up });
}

/** Gradients of swiglu() given dLoss/dOut: { gradGate, gradUp } for split input. */
export function swigluBackward(input: { gate: Float32Array; up: Float32Array; gradOut: Float32Array }): {
  gradGate: Float32Array;
  gradUp: Float32Array;
};
/** Fused input: { gradGateUp } [rows, 2·intermediate] in the same gate-then-up layout. */
export function swigluBackward(input: { gateUp: Float32Array; intermediate: number; gradOut: Float32Array }): {
  gradGateUp: Float32Array;
};
export function swigluBackward(
  input: SwigluInput & { gradOut: Float32Array },
): { gradGate: Float32Array; gradUp: Float32Array } | { gradGateUp: Float32Array } {
  const fn = 'swigluBackward';
  const op = swigluOperands(fn, input);
  if (op.fused) {
    const gradOut = f32(fn, 'gradOut', input.gradOut, op.rows * op.intermediate,
      `rows·intermediate = ${op.rows}·${op.intermediate}`);
    return native().swigluBackward({ gateUp: op.gateUp, intermediate: op.intermediate, gradOut });
  }
  const gradOut = f32(fn, 'gradOut', input.gradOut, op.gate.length, 'the length of gate');
  return native().swigluBackward({ gate: op.gate, up: op.up, gradOut });
}

/** 'none': exact GELU 0.5x(1 + erf(x/√2)) (nn.GELU(), the Qwen-VL merger); 'tanh': the tanh approximation. */
export type GeluApproximate = 'none' | 'tanh';

function approximate(fn: string, value: unknown): GeluApproximate {
  if (value === undefined) return 'none';
  if (value !== 'none' && value !== 'tanh') throw new RangeError(`${fn}: approximate must be 'none' or 'tanh', got '${String(value)}'`);
  return value;
}

/** GELU of every element (exact erf form by default). Returns a new array. */
export function gelu(input: { x: Float32Array; approximate?: GeluApproximate }): Float32Array {
  const fn = 'gelu';
  return native().gelu({ x: f32(fn, 'x', input.x), approximate: approximate(fn, input.approximate) });
}

/** dLoss/dx of gelu() given dLoss/dOut (same `approximate`). Returns a new array. */
export function geluBackward(input: { x: Float32Array; gradOut: Float32Array; approximate?: GeluApproximate }): Float32Array {
  const fn = 'geluBackward';
  const x = f32(fn, 'x', input.x);
  const gradOut = f32(fn, 'gradOut', input.gradOut, x.length, 'the length of x');
  return native().geluBackward({ x, gradOut, approximate: approximate(fn, input.approximate) });
}

/** quick-GELU x·σ(1.702x) (Qwen2-VL vision MLP). Returns a new array. */
export function quickGelu(input: { x: Float32Array }): Float32Array {
  return native().quickGelu({ x: f32('quickGelu', 'x', input.x) });
}

/** dLoss/dx of quickGelu() given dLoss/dOut. Returns a new array. */
export function quickGeluBackward(input: { x: Float32Array; gradOut: Float32Array }): Float32Array {
  const fn = 'quickGeluBackward';
  const x = f32(fn, 'x', input.x);
  return native().quickGeluBackward({ x, gradOut: f32(fn, 'gradOut', input.gradOut, x.length, 'the length of x') });
}
