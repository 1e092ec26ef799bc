/**
 * Scaled dot-product attention over packed variable-length sequences (FlashAttention-2 "varlen" layout) on
 * the CPU, computed flash-style (query x key tiles with an online softmax: memory grows linearly with the
 * sequence length). Layout, row-major: q and out [totalQ, numHeads, headDim], k and v
 * [totalK, numKvHeads, headDim], lse [numHeads, totalQ]. Sequence b owns query rows
 * cuSeqlensQ[b] .. cuSeqlensQ[b+1]-1 and key rows cuSeqlensK[b] .. cuSeqlensK[b+1]-1. Query head h reads
 * kv head h / (numHeads / numKvHeads) (GQA; MHA and MQA are special cases).
 */
import { native } from '../native/binding.js';

export interface AttentionInput {
  /** Queries [totalQ, numHeads, headDim]. */
  q: Float32Array;
  /** Keys [totalK, numKvHeads, headDim]. */
  k: Float32Array;
  /** Values [totalK, numKvHeads, headDim]. */
  v: Float32Array;
  /** [B + 1] query offsets: 0, then cumulative sequence lengths; the last entry equals totalQ. */
  cuSeqlensQ: Int32Array;
  /** [B + 1] key offsets (last = totalK). Defaults to cuSeqlensQ (self-attention). */
  cuSeqlensK?: Int32Array;
  /** Query heads; a multiple of numKvHeads. */
  numHeads: number;
  /** Key/value heads. */
  numKvHeads: number;
  /** Head dimension (any value >= 1). */
  headDim: number;
  /**
   * Causal mask, bottom-right aligned: in a sequence with Lq queries and Lk keys, query i sees keys
   * j <= i + (Lk - Lq) (so one query with a KV cache sees every key). A query that sees no key gets a zero
   * output and lse = -Infinity. Default false.
   */
  causal?: boolean;
  /** Softmax scale applied to q·k. Default 1 / sqrt(headDim). */
  scale?: number;
}

export interface AttentionOutput {
  /** [totalQ, numHeads, headDim] */
  out: Float32Array;
  /** [numHeads, totalQ]: natural-log log-sum-exp of each row's scaled scores, kept for the backward. */
  lse: Float32Array;
}

export interface AttentionBackwardInput extends AttentionInput {
  /** The forward's `out`. */
  out: Float32Array;
  /** The forward's `lse`. */
  lse: Float32Array;
  /** dLoss/dOut, [totalQ, numHeads, headDim]. */
  gradOut: Float32Array;
}

export interface AttentionGradients {
  /** dLoss/dq, [totalQ, numHeads, headDim]. */
  gradQ: Float32Array;
  /** dLoss/dk, [totalK, numKvHeads, headDim] (summed over the query heads sharing a kv head). */
  gradK: Float32Array;
  /** dLoss/dv, [totalK, numKvHeads, headDim]. */
  gradV: Float32Array;
}

function positiveInt(value: unknown, field: string, fn: string): number {
  if (typeof value !== 'number') throw new TypeError(`${fn}: ${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff)
    throw new RangeError(`${fn}: ${field} must be a positive integer, got ${value}`);
  return value;
}

function float32(value: unknown, field: string, fn: string): Float32Array {
  if (!(value instanceof Float32Array)) throw new TypeError(`${fn}: ${field} must be a Float32Array`);
  return value;
}

// cu_seqlens: Int32Array of B + 1 offsets from 0, non-decreasing, ending at `total` tokens.
function checkCuSeqlens(cu: unknown, field: string, total: number, what: string, fn: string): Int32Array {
  if (!(cu instanceof Int32Array)) throw new TypeError(`${fn}: ${field} must be an Int32Array`);
  if (cu.length < 1) throw new RangeError(`${fn}: ${field} must have at least 1 entry (B + 1 for B sequences)`);
  if (cu[0] !== 0) throw new RangeError(`${fn}: ${field}[0] must be 0, got ${cu[0]}`);
  for (let b = 1; b < cu.length; b++) {
    const prev = cu[b - 1] as number;
    const cur = cu[b] as number;
    if (cur < prev)
      throw new RangeError(`${fn}: ${field} must be non-decreasing, but ${field}[${b}]=${cur} < ${field}[${b - 1}]=${prev}`);
  }
  const last = cu[cu.length - 1] as number;
  if (last !== total) throw new RangeError(`${fn}: ${field} ends at ${last} but ${what} holds ${total} tokens`);
  return cu;
}

/** Validates the options shared by all attention calls; returns the token counts. */
function validate(input: AttentionInput, fn: string): { totalQ: number; totalK: number } {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${fn} expects one options object`);
  const hq = positiveInt(input.numHeads, 'numHeads', fn);
  const hkv = positiveInt(input.numKvHeads, 'numKvHeads', fn);
  const d = positiveInt(input.headDim, 'headDim', fn);
  if (hq % hkv !== 0) throw new RangeError(`${fn}: numHeads (${hq}) must be a multiple of numKvHeads (${hkv})`);
  const q = float32(input.q, 'q', fn);
  const k = float32(input.k, 'k', fn);
  const v = float32(input.v, 'v', fn);
  if (q.length % (hq * d) !== 0)
    throw new RangeError(`${fn}: q has length ${q.length}, not a multiple of numHeads*headDim = ${hq}*${d} = ${hq * d}`);
  if (k.length % (hkv * d) !== 0)
    throw new RangeError(`${fn}: k has length ${k.length}, not a multiple of numKvHeads*headDim = ${hkv}*${d} = ${hkv * d}`);
  if (v.length !== k.length) throw new RangeError(`${fn}: v has length ${v.length}, expected ${k.length} (like k)`);
  const totalQ = q.length / (hq * d);
  const totalK = k.length / (hkv * d);
  const cuQ = checkCuSeqlens(input.cuSeqlensQ, 'cuSeqlensQ', totalQ, 'q', fn);
  if (input.cuSeqlensK === undefined) {
    if (totalK !== totalQ)
      throw new RangeError(
        `${fn}: cuSeqlensK defaults to cuSeqlensQ, which ends at ${totalQ}, but k holds ${totalK} tokens; pass cuSeqlensK`,
      );
  } else {
    const cuK = checkCuSeqlens(input.cuSeqlensK, 'cuSeqlensK', totalK, 'k', fn);
    if (cuK.length !== cuQ.length)
      throw new RangeError(`${fn}: cuSeqlensK has length ${cuK.length}, expected ${cuQ.length} (like cuSeqlensQ)`);
  }
  if (input.causal !== undefined && typeof input.causal !== 'boolean')
    throw new TypeError(`${fn}: causal must be a boolean`);
  if (input.scale !== undefined) {
    if (typeof input.scale !== 'number') throw new TypeError(`${fn}: scale must be a number`);
    if (!Number.isFinite(input.scale)) throw new RangeError(`${fn}: scale must be finite, got ${input.scale}`);
  }
  return { totalQ, totalK };
}

function validateBackward(input: AttentionBackwardInput, fn: string): void {
  const { totalQ } = validate(input, fn);
  const qLen = input.q.length;
  const out = float32(input.out, 'out', fn);
  const lse = float32(input.lse, 'lse', fn);
  const gradOut = float32(input.gradOut, 'gradOut', fn);
  if (out.length !== qLen) throw new RangeError(`${fn}: out has length ${out.length}, expected ${qLen} (like q)`);
  if (gradOut.length !== qLen) throw new RangeError(`${fn}: gradOut has length ${gradOut.length}, expected ${qLen} (like q)`);
  const lseLen = input.numHeads * totalQ;
  if (lse.length !== lseLen)
    throw new RangeError(`${fn}: lse has length ${lse.length}, expected numHeads*totalQ = ${input.numHeads}*${totalQ} = ${lseLen}`);
}

/** Attention forward (flash-style, multithreaded). Returns the output and the per-row log-sum-exp. */
export function attention(input: AttentionInput): AttentionOutput {
  validate(input, 'attention');
  return native().attention(input);
}

/**
 * Attention backward: gradients w.r.t. q, k, v from the forward's out and lse and dLoss/dOut. The
 * probabilities are recomputed tile by tile (never stored); results do not depend on the thread count.
 */
export function attentionBackward(input: AttentionBackwardInput): AttentionGradients {
  validateBackward(input, 'attentionBackward');
  return native().attentionBackward(input);
}

/**
 * The textbook baseline with the same options and results as attention(): it materialises the full
 * [numHeads, Lq, Lk] score matrix of each sequence (memory grows with Lq·Lk). For benchmarks and cross-checks.
 */
export function attentionNaive(input: AttentionInput): AttentionOutput {
  validate(input, 'attentionNaive');
  return native().attentionNaive(input);
}

/** Backward of attentionNaive(): materialises P and dP per sequence. For benchmarks and cross-checks. */
export function attentionNaiveBackward(input: AttentionBackwardInput): AttentionGradients {
  validateBackward(input, 'attentionNaiveBackward');
  return native().attentionNaiveBackward(input);
}
