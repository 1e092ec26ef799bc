/**
 * The `kernels` namespace: single CPU kernels on typed arrays, for tests, benchmarks and embedding.
 * One module per kernel group; this file only re-exports them.
 */
export { gemm, linear, linearBackward } from './gemm.js';
export type { GemmInput } from './gemm.js';
