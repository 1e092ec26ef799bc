/**
 * The training configuration, defined once: the zod schema below holds every knob with its default and a one-line
 * description. Unknown keys are rejected (with a did-you-mean hint, see load.ts) and cross-field rules are checked
 * before any heavy work. Batch knobs are expressed in prompts × G (group size).
 */
import { z } from 'zod';

import { LORA_TEXT_TARGETS } from '../model/lora.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const prob = z.number().min(0).max(1);

export const rewardSpecSchema = z.strictObject({
  /** Built-in reward name (see rewardFunctions) or 'custom'. */
  name: z.string().min(1),
  weight: z.number().default(1),
  /** Options passed to the reward function (e.g. { threshold: 0.5 } for iou). */
  options: z.record(z.string(), z.unknown()).default({}),
  /** For name 'custom': path of a JS/TS module; `export` picks the export (default: the default export). */
  module: z.string().optional(),
  export: z.string().optional(),
  /** Custom modules: 'sample' = fn(sample) per completion, 'batch' = fn(samples[]) once per step. */
  mode: z.enum(['sample', 'batch']).default('sample'),
});

export const dataSourceSchema = z.strictObject({
  /** A .jsonl, .json or .parquet file. */
  path: z.string().min(1),
  /** Folder that relative image paths are resolved against (default: the file's folder). */
  imageFolder: z.string().optional(),
  format: z.enum(['auto', 'vlm-r1', 'verl', 'r1v']).default('auto'),
});

/** Weights & Biases logging (src/report/wandb.ts): one W&B run per training run, a history row per step. */
export const wandbConfigSchema = z.strictObject({
  project: z.string().min(1),
  /** Team or user; default: the API key's default entity. */
  entity: z.string().min(1).optional(),
  /** Display name of the run (default: W&B picks one). */
  name: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
  tags: z.array(z.string().min(1)).default([]),
  /** online: upload while training; offline: write RUN_DIR/wandb/offline-run-… folders for a later sync; disabled: nothing. */
  mode: z.enum(['online', 'offline', 'disabled']).default('online'),
  /** W&B server (default: env WANDB_BASE_URL, else https://api.wandb.ai). */
  baseUrl: z.string().url().optional(),
});

export type WandbConfig = z.output<typeof wandbConfigSchema>;
export type WandbConfigInput = z.input<typeof wandbConfigSchema>;

/** Where metrics go besides RUN_DIR/metrics.jsonl. */
const loggingSchema = z.strictObject({
  /** null (default) = no W&B. */
  wandb: wandbConfigSchema.nullable().default(null),
}).prefault({});

export const configSchema = z.strictObject({
  model: z.strictObject({
    /** A Hugging Face model folder (config.json, safetensors, tokenizer files). */
    path: z.string().min(1),
    device: z.enum(['cpu', 'cuda']).default('cpu'),
    /** Do not train the vision tower (its gradients are not computed). */
    freezeVision: z.boolean().default(false),
    /** Recompute decoder activations in backward to save memory. */
    gradientCheckpointing: z.boolean().default(false),
    /** Kernel threads (0 = all hardware threads). */
    threads: nonNegInt.default(0),
    /** LoRA: train low-rank adapters instead of the full model; the base stays frozen and is the KL reference. */
    lora: z.strictObject({
      enabled: z.boolean().default(false),
      r: posInt.default(16),
      alpha: z.number().positive().default(32),
      dropout: z.number().min(0).lt(1).default(0.05),
      /** PEFT target_modules: suffixes (list) or a regex (string). Default: every decoder projection, not the vision tower. */
      targetModules: z.union([z.string(), z.array(z.string()).min(1)]).default(LORA_TEXT_TARGETS),
      excludeModules: z.union([z.string(), z.array(z.string())]).nullable().default(null),
      rsLora: z.boolean().default(false),
      /** Start from an existing PEFT adapter folder instead of fresh adapters. */
      adapter: z.string().nullable().default(null),
    }).prefault({}),
  }),
  data: z.strictObject({
    train: z.array(dataSourceSchema).min(1),
    /** Separate validation files; when absent, `validationSplit` of train is held out. */
    validation: z.array(dataSourceSchema).default([]),
    validationSplit: z.number().min(0).max(0.9).default(0),
    /** 'r1' (think then answer), 'none', or a custom string containing {question}. */
    promptTemplate: z.string().default('r1'),
    systemPrompt: z.string().nullable().default(null),
    minPixels: posInt.default(3136),
    maxPixels: posInt.default(401408),
    /** Prompt tokens after image expansion; longer rows are filtered and counted. */
    maxPromptLength: posInt.default(1024),
    /**
     * Video inputs (qwen-vl-utils semantics): sampling rate of video files (and the rate frame lists were taken at),
     * frame count limits, per-frame min/max pixels and the whole video's pixel budget. Unset fields: qwen-vl-utils'
     * defaults (fps 2, 4–768 frames, 128·28·28 – 768·28·28 pixels, total 128000·28·28·0.9) or the model's
     * video_preprocessor_config.json pixel limits.
     */
    video: z.strictObject({
      fps: z.number().positive().optional(),
      minFrames: posInt.optional(),
      maxFrames: z.number().int().min(2).optional(),
      minPixels: posInt.optional(),
      maxPixels: posInt.optional(),
      totalPixels: posInt.optional(),
    }).optional(),
    shuffle: z.boolean().default(true),
    /** Stop when more than this share of rows is broken (malformed, missing or undecodable images). */
    maxBadFraction: prob.default(0.5),
  }),
  rewards: z.array(rewardSpecSchema).min(1).default([{ name: 'accuracy', weight: 1, options: {}, mode: 'sample' }, { name: 'format', weight: 1, options: {}, mode: 'sample' }]),
  rollout: z.strictObject({
    /** G: completions per prompt. */
    groupSize: posInt.default(8),
    /** Prompts per training step (the rollout batch is promptsPerStep × groupSize completions). */
    promptsPerStep: posInt.default(4),
    maxNewTokens: posInt.default(256),
    temperature: z.number().min(0).default(1),
    topP: z.number().gt(0).max(1).default(1),
    topK: nonNegInt.default(0),
    minP: prob.default(0),
    /** DAPO dynamic sampling: drop groups whose rewards are all equal and refill, at most maxRetries extra rounds. */
    dynamicSampling: z.boolean().default(false),
    dynamicSamplingMaxRetries: nonNegInt.default(3),
    /** Exclude completions cut by maxNewTokens from the loss. */
    maskTruncated: z.boolean().default(false),
    /** DAPO soft overlong penalty: linear from 0 to -overlongPenalty over the last overlongBuffer tokens. */
    overlongBuffer: nonNegInt.default(0),
    overlongPenalty: z.number().min(0).default(1),
  }).prefault({}),
  algorithm: z.strictObject({
    /** grpo: (r - mean_g) / (std_g + eps) (std off = Dr.GRPO); rloo: leave-one-out baseline. */
    advantage: z.enum(['grpo', 'rloo']).default('grpo'),
    /** group: divide by the group's std; batch: by the whole batch's std; none: no division (Dr.GRPO). */
    scaleRewards: z.enum(['group', 'batch', 'none']).default('group'),
    stdEps: z.number().positive().default(1e-6),
    /** μ: policy updates per rollout batch (old log-probs are kept from before the first update). */
    updatesPerRollout: posInt.default(1),
    clipLow: z.number().min(0).max(1).default(0.2),
    clipHigh: z.number().min(0).default(0.28),
    /** Dual-clip constant c > 1 for negative advantages (null = off). */
    dualClip: z.number().gt(1).nullable().default(null),
    /** β: KL-to-reference coefficient. 0 means no reference model at all. */
    klCoef: z.number().min(0).default(0),
    klEstimator: z.enum(['k1', 'k2', 'k3', 'abs']).default('k3'),
    /** Put β·KL into the rewards (r − β·Σ_t KL_t, before advantages) instead of the loss (verl use_kl_in_reward). */
    klInReward: z.boolean().default(false),
    /** Adaptive β (verl AdaptiveKLController): target KL per token; null keeps β fixed. */
    klTarget: z.number().positive().nullable().default(null),
    klHorizon: posInt.default(10000),
    /**
     * Train-vs-rollout importance-sampling correction (TIS / MIS): weights exp(log π_train − log π_rollout) on the
     * loss, per token or per sequence, truncated at (or masked above) rolloutCorrectionThreshold.
     */
    rolloutCorrection: z.enum(['none', 'token-truncate', 'token-mask', 'sequence-truncate', 'sequence-mask']).default('none'),
    rolloutCorrectionThreshold: z.number().gt(1).default(2),
    entropyCoef: z.number().default(0),
    lossAgg: z.enum(['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm']).default('token-mean'),
    /** 'sequence' = GSPO sequence-level ratio. */
    ratioLevel: z.enum(['token', 'sequence']).default('token'),
    /** 'ppo' = clipped surrogate (with dual-clip); 'cispo' = −sg(clip(ρ))·A·log π (CISPO, MiniMax-M1). */
    policyLoss: z.enum(['ppo', 'cispo']).default('ppo'),
  }).prefault({}),
  optim: z.strictObject({
    lr: z.number().positive().default(1e-6),
    weightDecay: z.number().min(0).default(0),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    /** Global gradient-norm clip (0 = off). */
    maxGradNorm: z.number().min(0).default(1),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('constant'),
    warmupSteps: nonNegInt.default(0),
    /**
     * Optimizer steps the linear/cosine schedule spans (default: the run's steps). A longer span stops the run
     * partway down the decay, as if it were the first part of a longer run.
     */
    scheduleSteps: posInt.nullable().default(null),
    /** Completions per forward/backward micro-batch; gradients accumulate over the rollout batch. */
    microBatchSize: posInt.default(8),
  }).prefault({}),
  train: z.strictObject({
    steps: posInt.default(100),
    /** Run folder: metrics, rollouts, checkpoints, report. */
    outDir: z.string().default('runs/grpo'),
    seed: nonNegInt.default(42),
    /** Save a checkpoint every N steps (0 = only at the end). */
    saveEvery: nonNegInt.default(50),
    keepLast: posInt.default(3),
    exportDtype: z.enum(['fp32', 'bf16']).default('fp32'),
    /** Evaluate on the validation set every N steps (0 = never). */
    evalEvery: nonNegInt.default(0),
    evalMaxPrompts: posInt.default(64),
    logEvery: posInt.default(1),
  }).prefault({}),
  logging: loggingSchema,
  /** Data-parallel training (`vlm-grpo train --nproc-per-node N`, or RANK/WORLD_SIZE set); ignored by one process. */
  distributed: z.strictObject({
    /** 0 = plain data parallel (full optimizer moments on every rank); 1 = moments sharded (1/N each); 2 = gradients reduce-scattered into the shards too. */
    zeroStage: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    /** Collective library: 'gloo' (CPU ranks, TCP) or 'nccl' (GPU ranks). */
    backend: z.enum(['gloo', 'nccl']).default('gloo'),
    /** Seconds the rendezvous and every collective wait for the other ranks before failing with an error naming the operation. */
    timeoutSeconds: z.number().positive().default(300),
    /**
     * Start each gradient bucket's all-reduce / reduce-scatter while the last backward of a step is still running
     * (gloo backend, full fine-tuning); false runs the same buckets after backward (bit-identical results).
     */
    overlapBuckets: z.boolean().default(true),
    /** Size of one gradient bucket in MB (2^20 bytes): smaller starts collectives sooner, larger issues fewer of them. */
    bucketMB: z.number().positive().max(4096).default(25),
  }).prefault({}),
});

/** The validated, fully defaulted configuration. */
export type TrainConfig = z.output<typeof configSchema>;
/** What a user writes: every field with a default may be left out. */
export type TrainConfigInput = z.input<typeof configSchema>;

/**
 * Supervised fine-tuning (`vlm-grpo sft`): the same model, data, optimizer and run sections as GRPO, plus how the
 * target completion is built from each row's ground truth. Cross-entropy on the completion tokens only.
 */
export const sftConfigSchema = z.strictObject({
  model: configSchema.shape.model,
  data: configSchema.shape.data,
  optim: configSchema.shape.optim,
  train: configSchema.shape.train,
  logging: loggingSchema,
  sft: z.strictObject({
    /** Target completion; {answer} is the row's ground truth (its <answer> span when it has one). */
    answerTemplate: z.string().default('<answer>{answer}</answer>'),
    /** Prompts per optimizer step. */
    batchSize: posInt.default(16),
    /** End each target with the end-of-turn token so the model learns to stop. */
    appendEos: z.boolean().default(true),
  }).prefault({}),
});

export type SftConfig = z.output<typeof sftConfigSchema>;
export type SftConfigInput = z.input<typeof sftConfigSchema>;
