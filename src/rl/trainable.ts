/**
 * What GRPO and SFT training share: turning on LoRA (or picking the trainable parameter range), and saving /
 * restoring a training checkpoint (weights or adapters, optimizer moments, data cursor, extra state).
 */
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint/checkpoint.js';
import type { TrainConfig } from '../config/schema.js';
import { loadLoraAdapter, saveLoraAdapter } from '../model/lora.js';
import type { VlmModel } from '../model/vlm-model.js';
import type { AdamW, TrainableRange } from './optimizer.js';
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

export interface CheckpointArgs {
  runDir: string;
  step: number;
  modelDir: string;
  model: VlmModel;
  optimizer: AdamW;
  prompts: PromptSource;
  lora: boolean;
  exportDtype: 'fp32' | 'bf16';
  keepLast: number;
  /** More JSON state (config, β, ...). */
  state: Record<string, unknown>;
}

/** Writes a checkpoint: a LoRA run's model.safetensors holds the merged weights and the PEFT adapter sits beside it. */
export async function saveTrainingCheckpoint(a: CheckpointArgs): Promise<string> {
  const { model, optimizer: opt } = a;
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

/** Restores the latest checkpoint of `runDir` into the model, optimizer and data cursor; null when there is none. */
export function restoreTrainingCheckpoint(
  runDir: string, model: VlmModel, optimizer: AdamW, prompts: PromptSource, lora: boolean,
): { dir: string; step: number; state: Record<string, unknown> } | null {
  const last = latestCheckpoint(runDir);
  if (!last) return null;
  const ck = loadCheckpoint(last.dir, model.layout(), model.parameters().length);
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
