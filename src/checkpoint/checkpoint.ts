/**
 * Training checkpoints: RUN_DIR/checkpoints/step-000123/ is a Hugging Face model folder as it is (model.safetensors
 * with hub names, config.json, tokenizer, chat template, preprocessor and generation config copied from the base
 * model) plus trainer/ (state.json, optimizer moments, fp32 master weights when the export dtype is narrower).
 * Every checkpoint is written into a temporary folder and renamed into place, then `latest` is updated atomically,
 * so a crash never leaves a broken latest checkpoint. The last `keepLast` are kept.
 * Data-parallel runs (saveShardedCheckpoint) write the same model folder from rank 0, and every rank writes its slice
 * of the optimizer moments as trainer/optimizer-rank{R}-of-{N}.safetensors with its [begin, end) recorded; the
 * checkpoint becomes complete (state.json, rename, `latest`) only after every shard is on disk. Loading reads any
 * range of the moments from either layout, so a run resumes on a different number of ranks.
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
  await writeModelFiles(tmp, c);
  writeSafetensors(join(tmp, 'trainer', 'optimizer.safetensors'), {
    exp_avg: { dtype: 'F32', shape: [c.optimizer.expAvg.length], data: c.optimizer.expAvg },
    exp_avg_sq: { dtype: 'F32', shape: [c.optimizer.expAvgSq.length], data: c.optimizer.expAvgSq },
  }, { step: String(c.optimizer.step) });
  writeFileSync(join(tmp, 'trainer', 'state.json'), JSON.stringify({ version: 1, step: c.step, exportDtype: c.exportDtype, ...c.state }, null, 1));
  return publish(runDir, tmp, name, keepLast);
}

/** The model folder part of a checkpoint: side files, weights (+ fp32 master copy), extra tensors and files. */
async function writeModelFiles(tmp: string, c: Omit<CheckpointContent, 'optimizer'>): Promise<void> {
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
  if (c.extraTensors && Object.keys(c.extraTensors).length) {
    const extra: Record<string, TensorToWrite> = {};
    for (const [k, v] of Object.entries(c.extraTensors)) extra[k] = { dtype: 'F32', shape: [v.length], data: v };
    writeSafetensors(join(tmp, 'trainer', 'extra.safetensors'), extra);
  }
  if (c.writeExtra) await c.writeExtra(tmp);
}

/** Renames a finished temporary folder into place, points `latest` at it and prunes old checkpoints. */
function publish(runDir: string, tmp: string, name: string, keepLast: number): string {
  const root = join(runDir, 'checkpoints');
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

/**
 * Reads a checkpoint's trainer state, fp32 parameters (in `layout` order) and optimizer moments: all of them, or
 * `optimizerRange` (a data-parallel rank's shard), from either checkpoint layout.
 */
export function loadCheckpoint(dir: string, layout: readonly ParamEntry[], totalParams: number, optimizerRange?: { begin: number; end: number }): LoadedCheckpoint {
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
  const moments = readOptimizerMoments(dir, state, optimizerRange);
  const stepMeta = Number((state.optimizerStep as number | undefined) ?? state.step);
  const extraTensors: Record<string, Float32Array> = {};
  const extraFile = join(dir, 'trainer', 'extra.safetensors');
  if (existsSync(extraFile)) for (const [k, t] of readSafetensors(extraFile)) extraTensors[k] = t.data as Float32Array;
  return { dir, step: Number(state.step), state, params, optimizer: { expAvg: moments.expAvg, expAvgSq: moments.expAvgSq, step: stepMeta }, extraTensors };
}

/** File name of rank `rank`'s optimizer shard in a checkpoint of a `world`-rank run. */
export function optimizerShardName(rank: number, world: number): string {
  return `optimizer-rank${rank}-of-${world}.safetensors`;
}

/** One rank's slice [begin, end) of the optimizer moments (indices into the trainable range). */
export interface OptimizerShardInfo { rank: number; file: string; begin: number; end: number }

/** How the ranks of a data-parallel run coordinate a checkpoint. */
export interface ShardedCheckpointPeers {
  rank: number;
  world: number;
  /** Returns once every rank has called it. */
  barrier(): Promise<void>;
  /** Elementwise sums over ranks (every rank calls it at the same point). */
  sum(values: number[]): Promise<number[]>;
}

export interface ShardedCheckpointContent {
  step: number;
  /** This rank's moments: indices [begin, end) of the `total` trainable values. */
  shard: { begin: number; end: number; total: number; expAvg: Float32Array; expAvgSq: Float32Array };
  optimizerStep: number;
  /** Rank 0 only: the model folder and the JSON state (the other ranks pass undefined). */
  rank0?: Omit<CheckpointContent, 'optimizer' | 'step'>;
}

/**
 * Writes a checkpoint of a data-parallel run; every rank calls it at the same step. Rank 0 writes the model folder
 * (loadable like any checkpoint) into a temporary folder; then each rank writes its optimizer shard atomically
 * (src/util/atomic-file.ts); after a barrier rank 0 checks that every shard is there, writes state.json (with the
 * shard table), renames the folder into place and moves `latest`. The run folder must be on a filesystem every
 * node sees. Returns the checkpoint folder on every rank.
 */
export async function saveShardedCheckpoint(runDir: string, c: ShardedCheckpointContent, keepLast: number, peers: ShardedCheckpointPeers): Promise<string> {
  const root = join(runDir, 'checkpoints');
  const name = checkpointName(c.step);
  // One temporary folder name for all ranks (pids differ between ranks and hosts).
  const tmp = join(root, `.tmp-${name}-of-${peers.world}`);
  if (peers.rank === 0) {
    if (!c.rank0) throw new TypeError('saveShardedCheckpoint: rank 0 must pass the model content (rank0)');
    mkdirSync(root, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, 'trainer'), { recursive: true });
    await writeModelFiles(tmp, { ...c.rank0, step: c.step });
  }
  await peers.barrier();
  const { shard } = c;
  if (shard.expAvg.length !== shard.end - shard.begin || shard.expAvgSq.length !== shard.end - shard.begin) {
    throw new RangeError(`optimizer shard [${shard.begin}, ${shard.end}) holds ${shard.expAvg.length} / ${shard.expAvgSq.length} values`);
  }
  mkdirSync(join(tmp, 'trainer'), { recursive: true });  // a node that does not share the run folder still gets a clear error below
  const file = join(tmp, 'trainer', optimizerShardName(peers.rank, peers.world));
  // writeSafetensors is atomic (temporary file, fsync, rename: src/util/atomic-file.ts)
  writeSafetensors(file, {
    exp_avg: { dtype: 'F32', shape: [shard.expAvg.length], data: shard.expAvg },
    exp_avg_sq: { dtype: 'F32', shape: [shard.expAvgSq.length], data: shard.expAvgSq },
  }, { begin: String(shard.begin), end: String(shard.end), total: String(shard.total), rank: String(peers.rank), world: String(peers.world), step: String(c.optimizerStep) });
  const ranges = await peers.sum(Array.from({ length: peers.world * 2 }, (_, i) => (Math.floor(i / 2) === peers.rank ? (i % 2 ? shard.end : shard.begin) : 0)));
  const shards: OptimizerShardInfo[] = Array.from({ length: peers.world }, (_, r) => ({ rank: r, file: optimizerShardName(r, peers.world), begin: ranges[2 * r]!, end: ranges[2 * r + 1]! }));
  // Rank 0 checks that every shard arrived; all ranks learn the verdict, so they fail (or go on) together.
  const missing = peers.rank === 0 ? shards.filter((s) => !existsSync(join(tmp, 'trainer', s.file))).map((s) => s.rank) : [];
  const verdict = await peers.sum(Array.from({ length: peers.world }, (_, r) => (missing.includes(r) ? 1 : 0)));
  const lost = verdict.flatMap((v, r) => (v > 0 ? [r] : []));
  if (lost.length) {
    throw new CheckpointError(`checkpoint ${name}: the optimizer shards of rank${lost.length > 1 ? 's' : ''} ${lost.join(', ')} are not in ${join(tmp, 'trainer')} as rank 0 sees it.`,
      'Put train.outDir on a filesystem shared by every node (NFS, a shared volume), so all ranks write into the same run folder.');
  }
  if (peers.rank === 0) {
    let covered = 0;
    for (const s of shards) {
      if (s.begin !== covered) throw new CheckpointError(`checkpoint ${name}: optimizer shard of rank ${s.rank} starts at ${s.begin}, expected ${covered}.`, 'This is a bug in the sharded optimizer; please report it.');
      covered = s.end;
    }
    if (covered !== shard.total) throw new CheckpointError(`checkpoint ${name}: optimizer shards cover ${covered} of ${shard.total} values.`, 'This is a bug in the sharded optimizer; please report it.');
    const r0 = c.rank0!;
    writeFileSync(join(tmp, 'trainer', 'state.json'), JSON.stringify({
      version: 1, step: c.step, exportDtype: r0.exportDtype, ...r0.state, optimizerStep: c.optimizerStep, worldSize: peers.world, optimizerShards: shards,
    }, null, 1));
    publish(runDir, tmp, name, keepLast);
  }
  await peers.barrier();
  return join(root, name);
}

function checkShardTable(x: unknown, file: string): OptimizerShardInfo[] {
  const ok = Array.isArray(x) && x.every((s) => s && typeof s === 'object' && typeof (s as OptimizerShardInfo).file === 'string'
    && Number.isSafeInteger((s as OptimizerShardInfo).begin) && Number.isSafeInteger((s as OptimizerShardInfo).end));
  if (!ok) throw new CheckpointError(`${file}: optimizerShards is not a list of {rank, file, begin, end}.`, 'Resume from another checkpoint.');
  return x as OptimizerShardInfo[];
}

/**
 * Reads moments [begin, end) of a checkpoint's optimizer state (default: all of them), from the one
 * optimizer.safetensors of a single-process run or from the overlapping per-rank shards of a data-parallel run.
 */
export function readOptimizerMoments(dir: string, state: Record<string, unknown>, range?: { begin: number; end: number }): { expAvg: Float32Array; expAvgSq: Float32Array; total: number } {
  const stateFile = join(dir, 'trainer', 'state.json');
  if (state.optimizerShards === undefined) {
    const optFile = join(dir, 'trainer', 'optimizer.safetensors');
    const opt = readSafetensors(optFile);
    const m = opt.get('exp_avg'), v = opt.get('exp_avg_sq');
    if (!m || !v) throw new CheckpointError(`${optFile} lacks exp_avg / exp_avg_sq.`, 'Resume from another checkpoint.');
    const total = m.data.length;
    const { begin, end } = range ?? { begin: 0, end: total };
    if (begin < 0 || end > total || begin > end) throw new CheckpointError(`${optFile} holds ${total} moments; moments [${begin}, ${end}) were asked for.`, 'Resume with the same model and trainable parameters (model.lora, model.freezeVision).');
    const whole = begin === 0 && end === total;
    return { expAvg: whole ? m.data as Float32Array : (m.data as Float32Array).slice(begin, end), expAvgSq: whole ? v.data as Float32Array : (v.data as Float32Array).slice(begin, end), total };
  }
  const shards = checkShardTable(state.optimizerShards, stateFile);
  const total = shards.reduce((a, s) => Math.max(a, s.end), 0);
  const { begin, end } = range ?? { begin: 0, end: total };
  if (begin < 0 || end > total || begin > end) throw new CheckpointError(`${dir}: the optimizer shards hold ${total} moments; moments [${begin}, ${end}) were asked for.`, 'Resume with the same model and trainable parameters (model.lora, model.freezeVision).');
  const expAvg = new Float32Array(end - begin), expAvgSq = new Float32Array(end - begin);
  let covered = 0;
  for (const s of shards) {
    const lo = Math.max(begin, s.begin), hi = Math.min(end, s.end);
    if (lo >= hi) continue;
    const file = join(dir, 'trainer', s.file);
    if (!existsSync(file)) throw new CheckpointError(`${file} (optimizer shard of rank ${s.rank}) is missing.`, 'Resume from another checkpoint, or copy the shard back.');
    const t = readSafetensors(file);
    const m = t.get('exp_avg'), v = t.get('exp_avg_sq');
    if (!m || !v || m.data.length !== s.end - s.begin || v.data.length !== s.end - s.begin) {
      throw new CheckpointError(`${file} does not hold the ${s.end - s.begin} moments [${s.begin}, ${s.end}) that state.json lists.`, 'Resume from another checkpoint.');
    }
    expAvg.set((m.data as Float32Array).subarray(lo - s.begin, hi - s.begin), lo - begin);
    expAvgSq.set((v.data as Float32Array).subarray(lo - s.begin, hi - s.begin), lo - begin);
    covered += hi - lo;
  }
  if (covered !== end - begin) throw new CheckpointError(`${dir}: the optimizer shards cover ${covered} of the ${end - begin} moments [${begin}, ${end}).`, 'Resume from another checkpoint.');
  return { expAvg, expAvgSq, total };
}
