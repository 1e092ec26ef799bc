/**
 * What GRPO and SFT training share: turning on LoRA (or picking the trainable parameter range), and saving /
 * restoring a training checkpoint (weights or adapters, optimizer moments, data cursor, extra state). Data-parallel
 * runs pass `dist`: rank 0 writes the model folder, every rank its optimizer shard, and a resume reads each rank's
 * own range of the moments whatever the number of ranks that saved them.
 */
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, saveShardedCheckpoint, type ShardedCheckpointPeers } from '../checkpoint/checkpoint.js';
import { shardRange } from '../dist/shard.js';
import type { TrainConfig } from '../config/schema.js';
import { loadLoraAdapter, saveLoraAdapter } from '../model/lora.js';
import type { VlmModel } from '../model/vlm-model.js';
import type { TrainableRange } from './optimizer.js';
import type { PromptSource } from './types.js';

/** Enables LoRA when configured and returns what the optimizer should update. */
export async function prepareTrainable(model: VlmModel, m: TrainConfig['model'], seed: number): Promise<TrainableRange> {
  const lora = m.lora;
  if (lora.enabled) {
    if (lora.adapter) await loadLoraAdapter(model, lora.adapter, { seed });
    else {
      await model.enableLora({
        r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targetModules: lora.targetModules, excludeModules: lora.excludeModules,
        rsLora: lora.rsLora, seed,
      });
    }
    return { target: 'lora', size: model.loraParameters().length };
  }
  const layout = model.layout();
  const total = model.parameters().length;
  const visionBegin = Math.min(total, ...layout.filter((e) => e.vision).map((e) => e.offset));
  return { target: 'params', begin: 0, end: m.freezeVision ? visionBegin : total };
}

/** What checkpoints need from an optimizer (AdamW, or ZeroAdamW whose moments may cover only its shard). */
export interface TrainingOptimizer {
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  /** Optimizer steps taken. */
  step: number;
  restore(expAvg: Float32Array, expAvgSq: Float32Array, step: number): void;
}

/** A data-parallel rank's part in checkpoints. */
export interface CheckpointDist {
  peers: ShardedCheckpointPeers;
  /** The optimizer's moments are values [begin, end) of the `total` trainable values (the whole range at stage 0). */
  moments: { begin: number; end: number; total: number };
}

export interface CheckpointArgs {
  runDir: string;
  step: number;
  modelDir: string;
  model: VlmModel;
  optimizer: TrainingOptimizer;
  prompts: PromptSource;
  lora: boolean;
  exportDtype: 'fp32' | 'bf16';
  keepLast: number;
  /** More JSON state (config, β, ...). */
  state: Record<string, unknown>;
  /** Data-parallel run: write a sharded checkpoint (see checkpoint.ts saveShardedCheckpoint). */
  dist?: CheckpointDist;
}

/** Writes a checkpoint: a LoRA run's model.safetensors holds the merged weights and the PEFT adapter sits beside it. */
export async function saveTrainingCheckpoint(a: CheckpointArgs): Promise<string> {
  const { model, optimizer: opt } = a;
  if (a.dist) return saveDistCheckpoint(a, a.dist);
  return saveCheckpoint(a.runDir, {
    step: a.step,
    modelDir: a.modelDir,
    layout: model.layout(),
    params: a.lora ? await model.mergedParameters() : model.parameters(),
    ...(a.lora ? { extraTensors: { lora: model.loraParameters() }, writeExtra: (d: string) => saveLoraAdapter(model, d) } : {}),
    exportDtype: a.exportDtype,
    optimizer: { expAvg: opt.expAvg, expAvgSq: opt.expAvgSq, step: opt.step },
    state: { optimizerStep: opt.step, dataCursor: a.prompts.cursor(), ...a.state },
  }, a.keepLast);
}

async function saveDistCheckpoint(a: CheckpointArgs, d: CheckpointDist): Promise<string> {
  const { model, optimizer: opt } = a;
  const { peers, moments } = d;
  if (opt.expAvg.length !== moments.end - moments.begin) {
    throw new RangeError(`optimizer moments hold ${opt.expAvg.length} values, their range [${moments.begin}, ${moments.end}) ${moments.end - moments.begin}`);
  }
  // Full moments on every rank (ZeRO stage 0): each rank still saves only its shard, so the layout is the same.
  const own = moments.end - moments.begin === moments.total && peers.world > 1 ? shardRange(moments.total, peers.world, peers.rank) : moments;
  const lo = own.begin - moments.begin, hi = own.end - moments.begin;
  return saveShardedCheckpoint(a.runDir, {
    step: a.step,
    optimizerStep: opt.step,
    shard: { begin: own.begin, end: own.end, total: moments.total, expAvg: opt.expAvg.subarray(lo, hi), expAvgSq: opt.expAvgSq.subarray(lo, hi) },
    ...(peers.rank === 0 ? {
      rank0: {
        modelDir: a.modelDir,
        layout: model.layout(),
        params: a.lora ? await model.mergedParameters() : model.parameters(),
        ...(a.lora ? { extraTensors: { lora: model.loraParameters() }, writeExtra: (dir: string) => saveLoraAdapter(model, dir) } : {}),
        exportDtype: a.exportDtype,
        state: { optimizerStep: opt.step, dataCursor: a.prompts.cursor(), ...a.state },
      },
    } : {}),
  }, a.keepLast, peers);
}

/**
 * Restores the latest checkpoint of `runDir` into the model, optimizer and data cursor; null when there is none.
 * `momentRange`: the optimizer holds only moments [begin, end) of the trainable values (a data-parallel shard).
 */
export function restoreTrainingCheckpoint(
  runDir: string, model: VlmModel, optimizer: TrainingOptimizer, prompts: PromptSource, lora: boolean, momentRange?: { begin: number; end: number },
): { dir: string; step: number; state: Record<string, unknown> } | null {
  const last = latestCheckpoint(runDir);
  if (!last) return null;
  const ck = loadCheckpoint(last.dir, model.layout(), model.parameters().length, momentRange);
  if (lora) {
    const adapters = ck.extraTensors.lora;
    if (!adapters || adapters.length !== model.loraParameters().length) {
      throw new Error(`resume: ${last.dir} has no LoRA adapters matching this configuration (model.lora changed?)`);
    }
    model.loraParameters().set(adapters);
  } else {
    model.parameters().set(ck.params);
  }
  optimizer.restore(ck.optimizer.expAvg, ck.optimizer.expAvgSq, Number(ck.state.optimizerStep ?? 0));
  if (ck.state.dataCursor !== undefined) prompts.restore(ck.state.dataCursor);
  return { dir: last.dir, step: ck.step, state: ck.state };
}
