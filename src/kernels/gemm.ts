/** GEMM and linear layers on typed arrays (row-major). */
import { native } from '../native/binding.js';

export interface GemmInput {
  /** [batch, m, k] (or [batch, k, m] when transA) */
  a: Float32Array;
  /** [batch, k, n] (or [batch, n, k] when transB) */
  b: Float32Array;
  /** Optional [batch, m, n] accumulated into with `beta`. */
  c?: Float32Array;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  batch?: number;
  /** Use the built-in cache-blocked GEMM instead of the BLAS (for comparisons). */
  builtin?: boolean;
}

/** C = alpha · op(A) · op(B) + beta · C, for each of `batch` matrices. Returns a new array. */
export function gemm(input: GemmInput): Float32Array {
  return native().gemm(input);
}

/** y = x · Wᵀ + b with W stored [outFeatures, inFeatures] (PyTorch layout). */
export function linear(input: {
  x: Float32Array;
  weight: Float32Array;
  bias?: Float32Array;
  rows: number;
  inFeatures: number;
  outFeatures: number;
}): Float32Array {
  return native().linear(input);
}

/** Gradients of linear() given dL/dy. gradBias is present unless `bias: false`. */
export function linearBackward(input: {
  x: Float32Array;
  weight: Float32Array;
  gradOutput: Float32Array;
  rows: number;
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
}): { gradInput: Float32Array; gradWeight: Float32Array; gradBias?: Float32Array } {
  return native().linearBackward(input);
}
