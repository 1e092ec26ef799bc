/** Build and runtime facts about the native core, and the kernels' thread count. */
import { native, type NativeBuildInfo, type NativeCudaInfo } from './binding.js';

export type BuildInfo = NativeBuildInfo;
export type CudaInfo = NativeCudaInfo;

/** What the loaded addon was built with (BLAS, CUDA, compiler flags, version). */
export function buildInfo(): BuildInfo {
  return native().buildInfo();
}

/** Probes the CUDA driver and GPUs (never throws; `status` says why the GPU path is unavailable). */
export function cudaInfo(): CudaInfo {
  return native().cudaInfo();
}

/** Sets the number of threads the CPU kernels (and the BLAS) use; 0 = all hardware threads. */
export function setNumThreads(n: number): number {
  return native().setNumThreads(n);
}

export function getNumThreads(): number {
  return native().getNumThreads();
}
