/**
 * Training checkpoints: RUN_DIR/checkpoints/step-000123/ is a Hugging Face model folder as it is (model.safetensors
 * with hub names, config.json, tokenizer, chat template, preprocessor and generation config copied from the base
 * model) plus trainer/ (state.json, optimizer moments, fp32 master weights when the export dtype is narrower).
 * Every checkpoint is written into a temporary folder and renamed into place, then `latest` is updated atomically,
 * so a crash never leaves a broken latest checkpoint. The last `keepLast` are kept.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { VlmGrpoError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../model/safetensors.js';

/** Files of a model folder other than the weights, copied into every checkpoint. */
export const MODEL_SIDE_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt',
  'special_tokens_map.json', 'added_tokens.json', 'chat_template.json', 'chat_template.jinja', 'preprocessor_config.json',
] as const;

export interface ParamEntry { name: string; shape: number[]; offset: number; numel: number }

export interface CheckpointContent {
  step: number;
  /** Where the base model's side files come from. */
  modelDir: string;
  layout: readonly ParamEntry[];
  params: Float32Array;
  exportDtype: 'fp32' | 'bf16';
  /** Trainable range moments (same length as the optimizer's view). */
  optimizer: { expAvg: Float32Array; expAvgSq: Float32Array; step: number };
  /** Anything JSON: config, data cursor, RNG counters, metric summaries. */
  state: Record<string, unknown>;
  /** Extra fp32 buffers needed to resume (e.g. LoRA adapters), saved in trainer/extra.safetensors. */
  extraTensors?: Record<string, Float32Array>;
  /** Writes more files into the (temporary) checkpoint folder before it is renamed into place. */
  writeExtra?: (dir: string) => Promise<void>;
}

export interface LoadedCheckpoint {
  dir: string;
  step: number;
  state: Record<string, unknown>;
  params: Float32Array;
  optimizer: { expAvg: Float32Array; expAvgSq: Float32Array; step: number };
  extraTensors: Record<string, Float32Array>;
}

export class CheckpointError extends VlmGrpoError {
  constructor(message: string, remedy: string, cause?: unknown) {
    super('ERR_CHECKPOINT', message, remedy, { cause });
    this.name = 'CheckpointError';
  }
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}


/** Writes a checkpoint atomically and prunes old ones; returns its folder. */
export async function saveCheckpoint(runDir: string, c: CheckpointContent, keepLast: number): Promise<string> {
  const root = join(runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const name = checkpointName(c.step);
  const tmp = join(root, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'trainer'), { recursive: true });
  for (const f of MODEL_SIDE_FILES) {
    const src = join(c.modelDir, f);
    if (existsSync(src)) copyFileSync(src, join(tmp, f));
  }
  const tensors: Record<string, TensorToWrite> = {};
  for (const e of c.layout) {
    tensors[e.name] = { dtype: c.exportDtype === 'bf16' ? 'BF16' : 'F32', shape: e.shape, data: c.params.subarray(e.offset, e.offset + e.numel) };
  }
  writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
  if (c.exportDtype !== 'fp32') {
    writeSafetensors(join(tmp, 'trainer', 'params.safetensors'), { params: { dtype: 'F32', shape: [c.params.length], data: c.params } });
  }
  writeSafetensors(join(tmp, 'trainer', 'optimizer.safetensors'), {
    exp_avg: { dtype: 'F32', shape: [c.optimizer.expAvg.length], data: c.optimizer.expAvg },
    exp_avg_sq: { dtype: 'F32', shape: [c.optimizer.expAvgSq.length], data: c.optimizer.expAvgSq },
  }, { step: String(c.optimizer.step) });
  if (c.extraTensors && Object.keys(c.extraTensors).length) {
    const extra: Record<string, TensorToWrite> = {};
    for (const [k, v] of Object.entries(c.extraTensors)) extra[k] = { dtype: 'F32', shape: [v.length], data: v };
    writeSafetensors(join(tmp, 'trainer', 'extra.safetensors'), extra);
  }
  if (c.writeExtra) await c.writeExtra(tmp);
  writeFileSync(join(tmp, 'trainer', 'state.json'), JSON.stringify({ version: 1, step: c.step, exportDtype: c.exportDtype, ...c.state }, null, 1));
  const final = join(root, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  writeFileAtomic(join(root, 'latest'), name);
  // Keep the newest `keepLast` complete checkpoints.
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keepLast))) rmSync(old.dir, { recursive: true, force: true });
  return final;
}

/** Complete checkpoints (those with trainer/state.json), oldest first. */
export function listCheckpoints(runDir: string): { dir: string; step: number }[] {
  const root = join(runDir, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => /^step-\d+$/.test(n) && existsSync(join(root, n, 'trainer', 'state.json')))
    .map((n) => ({ dir: join(root, n), step: Number(n.slice(5)) }))
    .sort((a, b) => a.step - b.step);
}

/** The checkpoint `latest` names, or else the newest complete one; null when there is none. */
export function latestCheckpoint(runDir: string): { dir: string; step: number } | null {
  const all = listCheckpoints(runDir);
  const pointer = join(runDir, 'checkpoints', 'latest');
  if (existsSync(pointer)) {
    const name = readFileSync(pointer, 'utf8').trim();
    const hit = all.find((c) => c.dir.endsWith(name));
    if (hit) return hit;
  }
  return all.at(-1) ?? null;
}

/** Reads a checkpoint's trainer state, fp32 parameters (in `layout` order) and optimizer moments. */
export function loadCheckpoint(dir: string, layout: readonly ParamEntry[], totalParams: number): LoadedCheckpoint {
  const stateFile = join(dir, 'trainer', 'state.json');
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`cannot read ${stateFile}: ${(err as Error).message}`, 'Resume from another checkpoint, or start without --resume.', err);
  }
  const params = new Float32Array(totalParams);
  const fp32 = join(dir, 'trainer', 'params.safetensors');
  if (existsSync(fp32)) {
    const t = readSafetensors(fp32).get('params');
    if (!t || t.data.length !== totalParams) throw new CheckpointError(`${fp32} holds ${t?.data.length ?? 0} parameters, the model has ${totalParams}.`, 'Resume with the same model configuration.');
    params.set(t.data as Float32Array);
  } else {
    const file = join(dir, 'model.safetensors');
    const tensors = readSafetensors(file);
    for (const e of layout) {
      const t = tensors.get(e.name);
      if (!t || t.data.length !== e.numel) throw new CheckpointError(`${file}: tensor ${e.name} is ${t ? `of ${t.data.length} elements` : 'missing'}, expected ${e.numel}.`, 'Resume with the same model configuration.');
      params.set(t.data as Float32Array, e.offset);
    }
  }
  const optFile = join(dir, 'trainer', 'optimizer.safetensors');
  const opt = readSafetensors(optFile);
  const m = opt.get('exp_avg'), v = opt.get('exp_avg_sq');
  if (!m || !v) throw new CheckpointError(`${optFile} lacks exp_avg / exp_avg_sq.`, 'Resume from another checkpoint.');
  const stepMeta = Number((state.optimizerStep as number | undefined) ?? state.step);
  const extraTensors: Record<string, Float32Array> = {};
  const extraFile = join(dir, 'trainer', 'extra.safetensors');
  if (existsSync(extraFile)) for (const [k, t] of readSafetensors(extraFile)) extraTensors[k] = t.data as Float32Array;
  return { dir, step: Number(state.step), state, params, optimizer: { expAvg: m.data as Float32Array, expAvgSq: v.data as Float32Array, step: stepMeta }, extraTensors };
}
