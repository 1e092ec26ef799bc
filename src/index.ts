/** vlm-grpo: the public library API. */
export * as kernels from './kernels/index.js';
export { buildInfo, cudaInfo, setNumThreads, getNumThreads } from './native/runtime.js';
export type { BuildInfo, CudaInfo } from './native/runtime.js';
export { VlmGrpoError, NativeAddonError } from './errors.js';
