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
  /** Gloo (CPU collectives for multi-process training) was found at build time. */
  glooAvailable: boolean;
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

/** Options of the attention kernels (kernels_attention.cpp); layout in native/cpu/attention.h. */
export interface NativeAttentionOptions {
  q: Float32Array; k: Float32Array; v: Float32Array; cuSeqlensQ: Int32Array; cuSeqlensK?: Int32Array;
  numHeads: number; numKvHeads: number; headDim: number; causal?: boolean; scale?: number;
}

/** Fully defaulted options of grpoLoss (kernels_grpo.cpp); math in native/cpu/grpo_loss.h. */
export interface NativeGrpoLossOptions {
  logprobs: Float32Array; oldLogprobs: Float32Array; refLogprobs?: Float32Array; advantages: Float32Array;
  mask: Uint8Array | Float32Array; entropy?: Float32Array; numSequences: number; seqLen: number;
  clipLow: number; clipHigh: number; dualClip: number; klCoef: number; klEstimator: string; lossAgg: string;
  lossScale: number; entropyCoef: number; ratioLevel: string; policyLoss: string; tokenCountNormalizer: number; sequenceCountNormalizer: number;
}

/** Statistics returned by grpoLoss (definitions in native/cpu/grpo_loss.h). */
export interface NativeGrpoLossStats {
  clipFracLow: number; clipFracHigh: number; clipFracDual: number; kl: number; ratioMean: number; ppoKl: number;
  pgLoss: number; klLoss: number; entropyLoss: number; numTokens: number; numValidSequences: number;
}

/** The addon's exports. Kernel groups add their members here (one section each). */
/** Flat model description handed to `new NativeModel` (model_binding.cpp); built by src/model/native-config.ts. */
export interface NativeModelConfig {
  vocabSize: number; hiddenSize: number; numLayers: number; numHeads: number; numKvHeads: number; headDim: number;
  intermediateSize: number; rmsNormEps: number; ropeTheta: number; mropeSection: [number, number, number];
  /** Qwen3-VL text model: interleaved M-RoPE, no q/k/v bias, per-head q/k RMSNorm. */
  mropeInterleaved?: boolean; attentionBias?: boolean; qkNorm?: boolean;
  tieWordEmbeddings: boolean; imageTokenId: number; videoTokenId: number; visionStartTokenId: number; visionEndTokenId: number;
  vision: {
    kind: 'qwen2_5_vl' | 'qwen2_vl' | 'qwen3_vl'; depth: number; hiddenSize: number; numHeads: number; headDim: number; intermediateSize: number;
    patchSize: number; temporalPatchSize: number; mergeSize: number; inChannels: number; outHiddenSize: number;
    act: 'silu' | 'quick_gelu' | 'gelu' | 'gelu_tanh'; eps: number; windowSize: number; fullAttBlocks: number[];
    /** Qwen3-VL: learned position table rows and the vision blocks feeding the deepstack mergers. */
    numPositionEmbeddings?: number; deepstackIndexes?: number[];
  };
}

/** Vision inputs of one packed call: all images in order, with the index arrays of src/model/vision-index.ts. */
export interface NativeVisionInput {
  numPatches: number; pixelValues: Float32Array; posIds: Int32Array; cuSeqlens: Int32Array;
  windowIndex?: Int32Array; cuWindowSeqlens?: Int32Array;
}

/** A packed batch: sequences end to end, positions [3, N], cuSeqlens [B + 1]. */
export interface NativePackedInput {
  inputIds: Int32Array; positions: Int32Array; cuSeqlens: Int32Array; vision?: NativeVisionInput;
}

/**
 * Bucketed sum of gradients [begin, end) across ranks (native/dist/grad_buckets.h): buckets of at most bucketBytes
 * following the backward order; op 'allReduce' (ZeRO 0/1) or 'reduceScatter' into the shards of `counts` (ZeRO 2).
 * Host-memory (gloo) communicators only; not for LoRA adapters (their gradients are not in the gradient buffer).
 */
export interface NativeBucketReduce {
  communicator: NativeCommunicatorHandle;
  begin: number;
  end: number;
  bucketBytes: number;
  op: 'allReduce' | 'reduceScatter';
  counts?: number[];
}

/** buckets: collectives issued; overlapped: how many of them started before backward had finished. */
export interface BucketReduceStats {
  buckets: number;
  overlapped: number;
}

export interface NativeModelHandle {
  load(sources: { name: string; file: string; dtype: string; begin: number; end: number }[]): Promise<void>;
  forward(o: NativePackedInput & {
    targets?: Int32Array; returnLogits?: boolean; returnEntropy?: boolean; keepForBackward?: boolean; recompute?: boolean; temperature?: number;
    adapters?: boolean;
  }): Promise<{ logprobs?: Float32Array; entropy?: Float32Array; logits?: Float32Array; imageEmbeds?: Float32Array }>;
  /**
   * With `overlapWith`, the bucketed gradient collectives run on the communicator's thread while backward goes on
   * (native/dist/grad_buckets.h); resolves to { buckets, overlapped } once backward and every collective finished.
   */
  backward(o: { gradLogprobs: Float32Array; gradEntropy?: Float32Array; trainVision?: boolean; overlapWith?: NativeBucketReduce }): Promise<void | BucketReduceStats>;
  /** The same bucketed collectives as backward's overlapWith, without a backward (ordered after queued ones). */
  reduceGradients(o: NativeBucketReduce): Promise<BucketReduceStats>;
  generate(o: NativePackedInput & {
    ropeDeltas: Int32Array; maxNewTokens: number; numSamples?: number; seed?: number; temperature?: number; topK?: number;
    topP?: number; minP?: number; stopIds?: Int32Array; bannedIds?: Int32Array; sequenceIdBase?: number;
    adapters?: boolean; mergeAdapters?: boolean;
  }): Promise<{ prompt: number; tokens: Int32Array; logprobs: Float32Array; stopped: boolean }[]>;
  zeroGrads(): void;
  optimizerStep(o: {
    target?: 'params' | 'lora'; begin?: number; end?: number; expAvg: Float32Array; expAvgSq: Float32Array; step: number; lr: number;
    beta1?: number; beta2?: number; eps?: number; weightDecay?: number; maxGradNorm?: number;
    /** The pre-clip GLOBAL norm measured by the caller (across ranks): native clips with it instead of measuring. */
    gradNorm?: number;
  }): Promise<{ gradNorm: number; skipped: boolean }>;
  /** Σ g² (double, thread-count independent) over gradients [begin, end) of 'params' or 'lora', on the model thread. */
  gradSquaredSum(o: { target?: 'params' | 'lora'; begin?: number; end?: number }): Promise<number>;
  parameters(): Float32Array;
  gradients(): Float32Array;
  layout(): { name: string; shape: number[]; offset: number; numel: number; vision: boolean }[];
  /** LoRA (native/model/lora.h): replaces any adapters; A from `seed`, B = 0; the base is frozen from then on. */
  enableLora(o: { r: number; alpha: number; dropout?: number; rsLora?: boolean; seed?: number; modules: string[] }): Promise<void>;
  disableLora(): Promise<void>;
  hasLora(): boolean;
  loraParameters(): Float32Array;
  loraGradients(): Float32Array;
  loraLayout(): {
    tensors: { name: string; shape: number[]; offset: number; numel: number; vision: boolean }[];
    modules: { name: string; inFeatures: number; outFeatures: number; vision: boolean }[];
    scale: number;
    total: number;
  };
  /** A copy of parameters() with every adapted matrix merged (W + s B A). */
  mergedParameters(): Promise<Float32Array>;
  dispose(): void;
}

/** Options of createCommunicator (communicator_binding.cpp); rendezvous at masterAddr:masterPort served by rank 0. */
export interface NativeCommunicatorOptions {
  backend: 'gloo' | 'nccl'; rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number;
  /** CUDA device of this rank (nccl). */
  cudaDevice?: number;
  /** Local address Gloo binds to (default: the local address that routes to masterAddr). */
  localAddr?: string;
}

/**
 * A collective communicator (native/dist/communicator.h). Every operation is in place on the given typed array,
 * runs on the handle's own native thread in submission order, and must be issued by every rank in the same order.
 * reduceScatter/allGather: buf holds sum(counts) values laid out rank by rank; counts.length === worldSize.
 */
export interface NativeCommunicatorHandle {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: 'gloo' | 'nccl';
  allReduce(buf: Float32Array | Float64Array, op?: 'sum' | 'max' | 'min'): Promise<void>;
  reduceScatter(buf: Float32Array, counts: number[]): Promise<void>;
  allGather(buf: Float32Array, counts: number[]): Promise<void>;
  broadcast(buf: Float32Array | Uint8Array, root: number): Promise<void>;
  barrier(): Promise<void>;
  /** Idempotent; queued operations finish first. */
  destroy(): Promise<void>;
}

export interface NativeAddon {
  // ---- communicator_binding.cpp
  createCommunicator(o: NativeCommunicatorOptions): Promise<NativeCommunicatorHandle>;

  // ---- model_binding.cpp
  NativeModel: new (config: NativeModelConfig) => NativeModelHandle;

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

  // ---- kernels_attention.cpp
  attention(o: NativeAttentionOptions): { out: Float32Array; lse: Float32Array };
  attentionBackward(o: NativeAttentionOptions & { out: Float32Array; lse: Float32Array; gradOut: Float32Array }): {
    gradQ: Float32Array; gradK: Float32Array; gradV: Float32Array;
  };
  attentionNaive(o: NativeAttentionOptions): { out: Float32Array; lse: Float32Array };
  attentionNaiveBackward(o: NativeAttentionOptions & { out: Float32Array; lse: Float32Array; gradOut: Float32Array }): {
    gradQ: Float32Array; gradK: Float32Array; gradV: Float32Array;
  };

  // ---- kernels_grpo.cpp
  grpoLoss(o: NativeGrpoLossOptions): { loss: number; grad: Float32Array; gradEntropy?: Float32Array; stats: NativeGrpoLossStats };
  adamwStep(o: {
    params: Float32Array; grads: Float32Array; expAvg: Float32Array; expAvgSq: Float32Array; step: number; lr: number;
    beta1: number; beta2: number; eps: number; weightDecay: number;
  }): void;
  clipGradNorm(o: { grads: Float32Array[]; maxNorm: number }): { totalNorm: number; scale: number };

  // ---- kernels_logprob.cpp
  logprobs(o: {
    hidden: Float32Array; lmHead: Float32Array; targets: Int32Array; numTokens: number; hiddenSize: number; vocabSize: number;
    temperature?: number; withEntropy?: boolean; chunkSize?: number; fullLogits?: boolean;
  }): { logprobs: Float32Array; entropy?: Float32Array; logsumexp: Float32Array };
  logprobsBackward(o: {
    hidden: Float32Array; lmHead: Float32Array; targets: Int32Array; logsumexp: Float32Array; gradLogprobs: Float32Array;
    gradEntropy?: Float32Array; entropy?: Float32Array; numTokens: number; hiddenSize: number; vocabSize: number;
    temperature?: number; chunkSize?: number; fullLogits?: boolean;
  }): { gradHidden: Float32Array; gradLmHead: Float32Array };
  sample(o: {
    logits: Float32Array; numRows: number; vocabSize: number; seed: number; sequenceIds: Int32Array | Uint32Array;
    positions: Int32Array; temperature?: number; topK?: number; topP?: number; minP?: number; bannedTokens?: Int32Array;
  }): { tokens: Int32Array; logprobs: Float32Array; filteredLogprobs: Float32Array };

  // ---- kernels_layers.cpp
  rmsNorm(o: { x: Float32Array; weight: Float32Array; rows: number; hidden: number; eps: number }): {
    out: Float32Array; rstd: Float32Array;
  };
  rmsNormBackward(o: {
    x: Float32Array; weight: Float32Array; rstd: Float32Array; gradOut: Float32Array; rows: number; hidden: number;
    gradWeight?: Float32Array;
  }): { gradInput: Float32Array; gradWeight: Float32Array };
  layerNorm(o: { x: Float32Array; weight: Float32Array; bias?: Float32Array; rows: number; hidden: number; eps: number }): {
    out: Float32Array; mean: Float32Array; rstd: Float32Array;
  };
  layerNormBackward(o: {
    x: Float32Array; weight: Float32Array; mean: Float32Array; rstd: Float32Array; gradOut: Float32Array; rows: number;
    hidden: number; gradWeight?: Float32Array; gradBias?: Float32Array;
  }): { gradInput: Float32Array; gradWeight: Float32Array; gradBias: Float32Array };
  ropeTables(o: NativeRopeSpec): { cos: Float32Array; sin: Float32Array };
  ropeApply(o: {
    x: Float32Array; cos: Float32Array; sin: Float32Array; numTokens: number; numHeads: number; headDim: number; inverse?: boolean;
  }): Float32Array;
  rope(o: NativeRopeSpec & { x: Float32Array; numHeads: number; inverse?: boolean }): Float32Array;
  swiglu(o: { gate: Float32Array; up: Float32Array } | { gateUp: Float32Array; intermediate: number }): Float32Array;
  swigluBackward(o: { gate: Float32Array; up: Float32Array; gradOut: Float32Array }): { gradGate: Float32Array; gradUp: Float32Array };
  swigluBackward(o: { gateUp: Float32Array; intermediate: number; gradOut: Float32Array }): { gradGateUp: Float32Array };
  gelu(o: { x: Float32Array; approximate?: 'none' | 'tanh' }): Float32Array;
  geluBackward(o: { x: Float32Array; gradOut: Float32Array; approximate?: 'none' | 'tanh' }): Float32Array;
  quickGelu(o: { x: Float32Array }): Float32Array;
  quickGeluBackward(o: { x: Float32Array; gradOut: Float32Array }): Float32Array;
}

/** Rotary angle source for kernels_layers.cpp (see native/cpu/rope.h). */
export interface NativeRopeSpec {
  kind: '1d' | 'mrope' | 'vision2d';
  numTokens: number;
  headDim: number;
  /** [N] (1d), [3, N] (mrope: t, h, w rows), [N, 2] (vision2d: hpos, wpos) */
  positions: Int32Array;
  /** Default 1e6 for '1d' / 'mrope', 1e4 for 'vision2d'. */
  theta?: number;
  mropeSection?: readonly [number, number, number];
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
