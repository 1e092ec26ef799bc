/**
 * GPU memory planner: before anything is allocated, add up the bytes a GRPO run needs on one device and either
 * return the breakdown or fail early with a {@link MemoryPlanError} that names the numbers and the knobs that
 * would make it fit.
 *
 * The model (Qwen2-VL / Qwen2.5-VL shapes from {@link ModelConfig}) is counted parameter by parameter, the same
 * shapes the weight loader uses; Qwen2.5-VL-3B comes to 3,754,622,976 parameters (the count in the reference
 * spec, section 6.4). Bytes, following the GPU path's numerics (DESIGN.md, "Numerics"):
 *  - weights: every parameter in bf16 (2 B);
 *  - reference model: a second bf16 copy when a KL term needs a frozen reference and LoRA is off (with LoRA the
 *    frozen base is the reference, so no copy);
 *  - optimizer: fp32 master weights + two fp32 AdamW moments (12 B) per trainable parameter, divided by the
 *    world size from ZeRO stage 1 on;
 *  - gradients: fp32 (4 B) per trainable parameter, divided by the world size at ZeRO stage 2;
 *  - activations of one update micro-batch (bf16 values saved for the backward, fp32 row statistics):
 *      text, per token per layer, without recomputation: 2·(6h + 2·kv + 3i) + 4·heads + 8 bytes
 *        (norm inputs and outputs, q/k/v, attention output, residual, gate/up/activation, the softmax
 *        log-sum-exp per head and the two RMSNorm rstd values);
 *      with recomputation: the layer input (2h bytes) per layer, plus one layer's full set being recomputed;
 *      vision, per patch per block likewise with D and the vision MLP width (none kept when the tower is frozen:
 *        it runs without saving anything, so only one block's working set is counted);
 *  - log-prob chunk: tokens × chunk × (4 B fp32 logits + 2 B bf16 logit gradient) for the chunked LM-head pass;
 *  - KV cache for generation: layers × 2 × kv_heads × head_dim × tokens × 2 B.
 * Generation and the update do not overlap, so the peak is the resident state (weights, reference, optimizer,
 * gradients) plus the larger of the KV cache and the update's activations + log-prob chunk. A headroom fraction
 * (default 10%) is kept back for the CUDA context, cuBLAS workspaces and allocator fragmentation.
 */
import { VlmGrpoError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import type { TrainConfig } from '../config/schema.js';

/** The model fields the planner reads (a full {@link ModelConfig} satisfies it). */
export type PlannerModel = Pick<
  ModelConfig,
  | 'vocabSize'
  | 'hiddenSize'
  | 'intermediateSize'
  | 'numHiddenLayers'
  | 'numAttentionHeads'
  | 'numKeyValueHeads'
  | 'headDim'
  | 'tieWordEmbeddings'
  | 'visionDepth'
  | 'visionHiddenSize'
  | 'visionIntermediateSize'
  | 'visionMlpKind'
  | 'visionNormKind'
  | 'visionNumHeads'
  | 'patchInputSize'
  | 'mergerNormKind'
  | 'mergerHiddenSize'
  | 'outHiddenSize'
>;

/** What the run will do, in the planner's terms. Derive it from a TrainConfig with {@link memoryPlanOptionsFromConfig}. */
export interface MemoryPlanOptions {
  /** Bytes of device memory the run may use (free memory reported by the driver). */
  availableBytes: number;
  /** Share of availableBytes kept back for the CUDA context, workspaces and fragmentation (default 0.1). */
  headroomFraction?: number;
  /** Sequences per update micro-batch. */
  microBatchSize: number;
  /** Tokens per sequence in the update (prompt with image tokens + completion). */
  sequenceLength: number;
  /** Vision patches (before merging) per update micro-batch; 0 when there are no images. */
  visionPatchesPerMicroBatch: number;
  /** Recompute decoder (and vision) activations in the backward instead of keeping them. */
  gradientCheckpointing: boolean;
  /** The vision tower is not trained (no gradients, no optimizer state, no saved activations). */
  freezeVision: boolean;
  /** LoRA adapters of rank r on every decoder projection (q, k, v, o, gate, up, down); null = full training. */
  lora: { r: number } | null;
  /** A frozen reference model is needed (KL coefficient > 0). */
  referenceModel: boolean;
  /** Vocabulary columns per log-prob chunk. */
  logprobChunk: number;
  /** Tokens held in the KV cache at once during generation (all sequences × (prompt + max new tokens)). */
  kvCacheTokens: number;
  /** ZeRO stage: 0 = replicated, 1 = optimizer state sharded, 2 = gradients sharded too. */
  zeroStage: 0 | 1 | 2;
  /** Data-parallel ranks (1 = one GPU). */
  worldSize: number;
}

/** Parameter counts. */
export interface ParameterCounts {
  text: number;
  vision: number;
  total: number;
  /** Parameters that get gradients and optimizer state (LoRA adapters only, with LoRA). */
  trainable: number;
}

/** Bytes per component. */
export interface MemoryBreakdown {
  weights: number;
  referenceWeights: number;
  optimizerState: number;
  gradients: number;
  activations: number;
  logprobChunk: number;
  kvCache: number;
}

export interface MemoryPlan {
  params: ParameterCounts;
  bytes: MemoryBreakdown;
  /** weights + reference + optimizer state + gradients: allocated for the whole run. */
  residentBytes: number;
  /** resident + KV cache. */
  generationPeakBytes: number;
  /** resident + activations + log-prob chunk. */
  updatePeakBytes: number;
  /** max(generationPeakBytes, updatePeakBytes). */
  peakBytes: number;
  availableBytes: number;
  headroomFraction: number;
  /** availableBytes minus the headroom. */
  budgetBytes: number;
  fits: boolean;
}

/** One way to shrink the plan, with the bytes it would save at the peak. */
export interface MemoryKnob {
  /** The config field (or action) to change. */
  knob: string;
  /** What to do, in words. */
  action: string;
  savedBytes: number;
}

/** The run does not fit on the device; carries the plan and the knobs that help, largest saving first. */
export class MemoryPlanError extends VlmGrpoError {
  readonly plan: MemoryPlan;
  readonly knobs: readonly MemoryKnob[];

  constructor(plan: MemoryPlan, knobs: readonly MemoryKnob[]) {
    const b = plan.bytes;
    const msg =
      `the run needs ${gib(plan.peakBytes)} of GPU memory at its peak but the budget is ${gib(plan.budgetBytes)} ` +
      `(${gib(plan.availableBytes)} available minus ${Math.round(plan.headroomFraction * 100)}% headroom). Breakdown: weights ${gib(b.weights)}, reference model ${gib(b.referenceWeights)}, ` +
      `optimizer state ${gib(b.optimizerState)}, gradients ${gib(b.gradients)}, activations ${gib(b.activations)}, ` +
      `log-prob chunk ${gib(b.logprobChunk)}, KV cache ${gib(b.kvCache)} ` +
      `(generation peak ${gib(plan.generationPeakBytes)}, update peak ${gib(plan.updatePeakBytes)})`;
    const remedy =
      knobs.length > 0
        ? 'Free memory with one or more of: ' +
          knobs.map((k) => `${k.action} (${k.knob}, saves ${gib(k.savedBytes)})`).join('; ') +
          '.'
        : 'Even the smallest settings do not fit: use a GPU with more memory or a smaller model.';
    super('ERR_MEMORY_PLAN', msg, remedy);
    this.name = 'MemoryPlanError';
    this.plan = plan;
    this.knobs = knobs;
  }
}

const GiB = 1024 ** 3;

/** Bytes as GiB with two decimals. */
export function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)} GiB`;
}

function checkCount(name: string, v: number, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`planMemory: ${name} must be an integer, got ${String(v)}`);
  if (v < min) throw new RangeError(`planMemory: ${name} must be >= ${min}, got ${v}`);
}

/** Parameter counts of the language model and the vision tower (weights, biases and norms). */
export function countParameters(m: PlannerModel): { text: number; vision: number; loraPerRank: number } {
  const h = m.hiddenSize, i = m.intermediateSize, kv = m.numKeyValueHeads * m.headDim, q = m.numAttentionHeads * m.headDim;
  // q/k/v carry biases in Qwen2; o and the MLP do not; two RMSNorms per layer.
  const perLayer = h * q + q + 2 * (h * kv + kv) + q * h + 3 * h * i + 2 * h;
  const embed = m.vocabSize * h;
  const text = embed + m.numHiddenLayers * perLayer + h + (m.tieWordEmbeddings ? 0 : embed);
  const d = m.visionHiddenSize, iv = m.visionIntermediateSize;
  const normParams = m.visionNormKind === 'layernorm' ? 2 * d : d;
  const mlp = m.visionMlpKind === 'gated' ? 2 * (d * iv + iv) + iv * d + d : d * iv + iv + iv * d + d;
  const perBlock = d * 3 * d + 3 * d + d * d + d + mlp + 2 * normParams;
  const mh = m.mergerHiddenSize, out = m.outHiddenSize;
  const merger = (m.mergerNormKind === 'layernorm' ? 2 * d : d) + mh * mh + mh + mh * out + out;
  const vision = m.patchInputSize * d + m.visionDepth * perBlock + merger;
  // LoRA on q, k, v, o, gate, up, down: r · (in + out) per projection.
  const loraPerRank = m.numHiddenLayers * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h));
  return { text, vision, loraPerRank };
}

/** Activation bytes per token per layer kept for the backward (no recomputation). */
function textActivationBytesPerTokenLayer(m: PlannerModel): number {
  const h = m.hiddenSize, kv = m.numKeyValueHeads * m.headDim, i = m.intermediateSize;
  return 2 * (6 * h + 2 * kv + 3 * i) + 4 * m.numAttentionHeads + 8;
}

function visionActivationBytesPerPatchBlock(m: PlannerModel): number {
  const d = m.visionHiddenSize, iv = m.visionIntermediateSize;
  const mlp = m.visionMlpKind === 'gated' ? 3 * iv : 2 * iv;
  return 2 * (6 * d + 2 * d + mlp) + 4 * m.visionNumHeads + 8;
}

/** The breakdown for `opts` (never throws for a run that does not fit; see {@link planMemory}). */
export function estimateMemory(model: PlannerModel, opts: MemoryPlanOptions): MemoryPlan {
  checkCount('microBatchSize', opts.microBatchSize, 1);
  checkCount('sequenceLength', opts.sequenceLength, 1);
  checkCount('visionPatchesPerMicroBatch', opts.visionPatchesPerMicroBatch, 0);
  checkCount('logprobChunk', opts.logprobChunk, 1);
  checkCount('kvCacheTokens', opts.kvCacheTokens, 0);
  checkCount('worldSize', opts.worldSize, 1);
  if (![0, 1, 2].includes(opts.zeroStage)) throw new RangeError(`planMemory: zeroStage must be 0, 1 or 2, got ${String(opts.zeroStage)}`);
  if (opts.lora !== null) checkCount('lora.r', opts.lora.r, 1);
  if (typeof opts.availableBytes !== 'number' || !(opts.availableBytes >= 0) || !Number.isFinite(opts.availableBytes))
    throw new RangeError(`planMemory: availableBytes must be a finite number >= 0, got ${String(opts.availableBytes)}`);
  const headroom = opts.headroomFraction ?? 0.1;
  if (!(headroom >= 0 && headroom < 1)) throw new RangeError(`planMemory: headroomFraction must be in [0, 1), got ${headroom}`);

  const { text, vision, loraPerRank } = countParameters(model);
  const total = text + vision;
  const trainable = opts.lora !== null ? opts.lora.r * loraPerRank : text + (opts.freezeVision ? 0 : vision);
  const world = opts.worldSize;
  const optShard = opts.zeroStage >= 1 ? world : 1;
  const gradShard = opts.zeroStage >= 2 ? world : 1;

  const tokens = opts.microBatchSize * opts.sequenceLength;
  const layers = model.numHiddenLayers;
  const perLayer = textActivationBytesPerTokenLayer(model);
  const textAct = opts.gradientCheckpointing
    ? tokens * (layers * 2 * model.hiddenSize + perLayer)
    : tokens * layers * perLayer;
  const patches = opts.visionPatchesPerMicroBatch;
  const perBlock = visionActivationBytesPerPatchBlock(model);
  const visionTrained = opts.lora === null && !opts.freezeVision;
  const visionAct = !visionTrained
    ? patches * perBlock // forward only: one block's working set
    : opts.gradientCheckpointing
      ? patches * (model.visionDepth * 2 * model.visionHiddenSize + perBlock)
      : patches * model.visionDepth * perBlock;

  const bytes: MemoryBreakdown = {
    weights: 2 * total,
    referenceWeights: opts.referenceModel && opts.lora === null ? 2 * total : 0,
    optimizerState: Math.ceil((12 * trainable) / optShard),
    gradients: Math.ceil((4 * trainable) / gradShard),
    activations: textAct + visionAct,
    logprobChunk: tokens * Math.min(opts.logprobChunk, model.vocabSize) * 6,
    kvCache: layers * 2 * model.numKeyValueHeads * model.headDim * opts.kvCacheTokens * 2,
  };
  const residentBytes = bytes.weights + bytes.referenceWeights + bytes.optimizerState + bytes.gradients;
  const generationPeakBytes = residentBytes + bytes.kvCache;
  const updatePeakBytes = residentBytes + bytes.activations + bytes.logprobChunk;
  const peakBytes = Math.max(generationPeakBytes, updatePeakBytes);
  const budgetBytes = Math.floor(opts.availableBytes * (1 - headroom));
  return {
    params: { text, vision, total, trainable },
    bytes,
    residentBytes,
    generationPeakBytes,
    updatePeakBytes,
    peakBytes,
    availableBytes: opts.availableBytes,
    headroomFraction: headroom,
    budgetBytes,
    fits: peakBytes <= budgetBytes,
  };
}

/** The knobs that lower the peak for this plan, each with its saving, largest first. */
export function memoryKnobs(model: PlannerModel, opts: MemoryPlanOptions): MemoryKnob[] {
  const base = estimateMemory(model, opts).peakBytes;
  const candidates: { knob: string; action: string; opts: MemoryPlanOptions }[] = [];
  if (opts.lora === null)
    candidates.push({ knob: 'model.lora.enabled', action: 'train LoRA adapters (r = 16) instead of the full model', opts: { ...opts, lora: { r: 16 } } });
  if (!opts.gradientCheckpointing)
    candidates.push({ knob: 'model.gradientCheckpointing', action: 'recompute activations in the backward', opts: { ...opts, gradientCheckpointing: true } });
  if (!opts.freezeVision && opts.lora === null)
    candidates.push({ knob: 'model.freezeVision', action: 'freeze the vision tower', opts: { ...opts, freezeVision: true } });
  if (opts.microBatchSize > 1) {
    const half = Math.max(1, Math.floor(opts.microBatchSize / 2));
    candidates.push({
      knob: 'optim.microBatchSize',
      action: `lower the micro-batch from ${opts.microBatchSize} to ${half} sequences`,
      opts: {
        ...opts,
        microBatchSize: half,
        visionPatchesPerMicroBatch: Math.ceil((opts.visionPatchesPerMicroBatch * half) / opts.microBatchSize),
      },
    });
  }
  if (opts.kvCacheTokens > 0)
    candidates.push({
      knob: 'rollout.promptsPerStep / rollout.maxNewTokens',
      action: `hold fewer KV-cache tokens (half: ${Math.floor(opts.kvCacheTokens / 2)} instead of ${opts.kvCacheTokens})`,
      opts: { ...opts, kvCacheTokens: Math.floor(opts.kvCacheTokens / 2) },
    });
  if (opts.logprobChunk > 1024)
    candidates.push({ knob: 'logprobChunk', action: 'use a 1024-column log-prob chunk', opts: { ...opts, logprobChunk: 1024 } });
  if (opts.referenceModel && opts.lora === null)
    candidates.push({ knob: 'algorithm.klCoef', action: 'drop the KL term (klCoef 0: no reference model)', opts: { ...opts, referenceModel: false } });
  if (opts.worldSize > 1 && opts.zeroStage < 2)
    candidates.push({
      knob: 'distributed.zeroStage',
      action: `raise ZeRO to stage 2 (shard optimizer state and gradients over ${opts.worldSize} GPUs)`,
      opts: { ...opts, zeroStage: 2 },
    });
  if (opts.worldSize === 1)
    candidates.push({
      knob: '--nproc-per-node',
      action: 'train on 2 GPUs with ZeRO stage 2 (optimizer state and gradients split in half)',
      opts: { ...opts, worldSize: 2, zeroStage: 2 },
    });
  const knobs: MemoryKnob[] = [];
  for (const c of candidates) {
    const saved = base - estimateMemory(model, c.opts).peakBytes;
    if (saved > 0) knobs.push({ knob: c.knob, action: c.action, savedBytes: saved });
  }
  return knobs.sort((a, b) => b.savedBytes - a.savedBytes);
}

/**
 * Plans the run's device memory. Returns the plan when the peak fits in availableBytes minus the headroom;
 * throws {@link MemoryPlanError} (with the breakdown and the knobs that help) when it does not.
 */
export function planMemory(model: PlannerModel, opts: MemoryPlanOptions): MemoryPlan {
  const plan = estimateMemory(model, opts);
  if (!plan.fits) throw new MemoryPlanError(plan, memoryKnobs(model, opts));
  return plan;
}

/**
 * The planner's options for a training config: sequences of maxPromptLength + maxNewTokens tokens, images of up
 * to maxPixels (patchSize² pixels per patch) per sequence, a KV cache for the whole rollout batch
 * (promptsPerStep × groupSize sequences), a reference model when klCoef > 0.
 */
export function memoryPlanOptionsFromConfig(
  cfg: TrainConfig,
  model: Pick<ModelConfig, 'patchSize'>,
  device: { availableBytes: number; worldSize?: number; logprobChunk?: number; headroomFraction?: number },
): MemoryPlanOptions {
  const seqLen = cfg.data.maxPromptLength + cfg.rollout.maxNewTokens;
  const patchesPerImage = Math.floor(cfg.data.maxPixels / (model.patchSize * model.patchSize));
  return {
    availableBytes: device.availableBytes,
    headroomFraction: device.headroomFraction ?? 0.1,
    microBatchSize: cfg.optim.microBatchSize,
    sequenceLength: seqLen,
    visionPatchesPerMicroBatch: cfg.optim.microBatchSize * patchesPerImage,
    gradientCheckpointing: cfg.model.gradientCheckpointing,
    freezeVision: cfg.model.freezeVision,
    lora: cfg.model.lora.enabled ? { r: cfg.model.lora.r } : null,
    referenceModel: cfg.algorithm.klCoef > 0,
    logprobChunk: device.logprobChunk ?? 8192,
    kvCacheTokens: cfg.rollout.promptsPerStep * cfg.rollout.groupSize * seqLen,
    zeroStage: cfg.distributed.zeroStage,
    worldSize: device.worldSize ?? 1,
  };
}
