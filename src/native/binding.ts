/**
 * The one place that loads and types the native addon (build/Release/vlm_grpo.node).
 * Everything else imports `native()` from here. Set VLM_GRPO_ADDON to load a specific .node file.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NativeAddonError } from '../errors.js';

export interface NativeBuildInfo {
  version: string;
  blas: string;
  blasAvailable: boolean;
  cudaCompiled: boolean;
  cudaToolkit: string;
  cpuFlags: string;
  buildType: string;
  sanitize: string;
  compiler: string;
  buildTime: string;
  napiVersion: number;
}

export interface NativeGpuInfo {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  multiprocessors: number;
}

export interface NativeCudaInfo {
  compiled: boolean;
  toolkitVersion: string;
  runtimeVersion: number;
  driverVersion: number;
  status: string;
  kernelOk: boolean;
  gpus: NativeGpuInfo[];
}

/** The addon's exports. Kernel groups add their members here (one section each). */
export interface NativeAddon {
  // ---- build_info_binding.cpp
  buildInfo(): NativeBuildInfo;
  cudaInfo(): NativeCudaInfo;
  setNumThreads(n: number): number;
  getNumThreads(): number;

  // ---- kernels_gemm.cpp
  gemm(o: {
    a: Float32Array; b: Float32Array; c?: Float32Array; m: number; n: number; k: number;
    transA?: boolean; transB?: boolean; alpha?: number; beta?: number; batch?: number; builtin?: boolean;
  }): Float32Array;
  linear(o: { x: Float32Array; weight: Float32Array; bias?: Float32Array; rows: number; inFeatures: number; outFeatures: number }): Float32Array;
  linearBackward(o: {
    x: Float32Array; weight: Float32Array; gradOutput: Float32Array; rows: number; inFeatures: number; outFeatures: number; bias?: boolean;
  }): { gradInput: Float32Array; gradWeight: Float32Array; gradBias?: Float32Array };
}

/** The package root (holds package.json and build/), found from this file in src/ or dist/. */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'CMakeLists.txt'))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
})();

let cached: NativeAddon | undefined;
let loadedFrom = '';

/** The loaded addon; throws NativeAddonError naming the cause and the fix when it cannot be loaded. */
export function native(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const override = process.env.VLM_GRPO_ADDON;
  try {
    if (override) {
      cached = require(resolve(override)) as NativeAddon;
      loadedFrom = resolve(override);
    } else {
      const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
      loadedFrom = nodeGypBuild.resolve(packageRoot);
      cached = require(loadedFrom) as NativeAddon;
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/No native build was found|Cannot find module/.test(msg)) {
      throw new NativeAddonError(
        `The vlm-grpo native addon is not built (looked in ${join(packageRoot, 'build', 'Release')}).`,
        `Build it with: npm run build:native (in ${packageRoot}; needs cmake >= 3.20 and g++, and libopenblas-dev for full speed).`,
        err,
      );
    }
    throw new NativeAddonError(
      `The vlm-grpo native addon failed to load: ${msg}`,
      `Rebuild it for this Node version and machine with: npm run build:native (in ${packageRoot}).`,
      err,
    );
  }
  return cached;
}

/** Path of the .node file that was loaded (empty before the first load). */
export function addonPath(): string {
  return loadedFrom;
}
