/**
 * Model weights: find the safetensors files of a checkpoint folder (single file or sharded with
 * model.safetensors.index.json), normalise tensor names of both layouts to one canonical form, check them
 * against the tensor list implied by config.json, and produce the plan the native loader consumes.
 *
 * Canonical names are the Hub (legacy) names: `model.*` (text), `visual.*` (vision), `lm_head.weight`.
 * They are what the published checkpoints and the reference fixtures use; transformers ≥ 4.52 names
 * (`model.language_model.*`, `model.visual.*`) are mapped onto them.
 *
 * The plan lists, for every parameter in a fixed order (vision tower, then text model, then lm_head):
 * canonical name, shape, the file it comes from, its dtype (F32, BF16 or F16; the native loader converts to
 * the compute type) and its absolute byte range in that file, so the native side can memory-map the files and
 * copy without parsing anything.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';

import { z } from 'zod';

import { VlmGrpoError } from '../errors.js';
import type { ModelConfig } from './config.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  readSafetensorsHeader,
  SafetensorsError,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './safetensors.js';

/** Weights that do not fit the config (missing, unexpected, wrong shape or dtype) or a broken shard index. */
export class ModelWeightsError extends VlmGrpoError {
  /** The file at fault (a .safetensors file or model.safetensors.index.json). */
  readonly file: string;
  /** The first tensor at fault, when one is. */
  readonly tensor: string | null;
  /** Every problem found, one sentence each. */
  readonly problems: readonly string[];

  constructor(file: string, tensor: string | null, problems: readonly string[], remedy?: string) {
    const shown = problems.slice(0, 12);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more (see .problems)` : '';
    super(
      'ERR_MODEL_WEIGHTS',
      problems.length === 1 ? problems[0]! : `${problems.length} problems with the weights:\n  ${shown.join('\n  ')}${more}`,
      remedy ?? 'Make sure config.json and the .safetensors files come from the same checkpoint.',
    );
    this.name = 'ModelWeightsError';
    this.file = file;
    this.tensor = tensor;
    this.problems = problems;
  }
}

/** Floating-point dtypes a checkpoint may store parameters in. */
export const WEIGHT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'BF16', 'F16'];

export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

export interface ExpectedWeight {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Maps a checkpoint tensor name to its canonical (Hub) form:
 * `model.language_model.X` → `model.X`, `model.visual.X` → `visual.X`; everything else is unchanged.
 */
export function canonicalWeightName(name: string): string {
  if (name.startsWith('model.language_model.')) return `model.${name.slice('model.language_model.'.length)}`;
  if (name.startsWith('model.visual.')) return `visual.${name.slice('model.visual.'.length)}`;
  return name;
}

/** Every parameter tensor the config implies, with its shape, in plan order. lm_head.weight is absent when tied. */
export function expectedWeights(c: ModelConfig): ExpectedWeight[] {
  const out: ExpectedWeight[] = [];
  const add = (name: string, ...shape: number[]): void => {
    out.push({ name, shape });
  };
  const D = c.visionHiddenSize;
  const I = c.visionIntermediateSize;
  const q2 = c.modelType === 'qwen2_vl';
  const q3 = c.modelType === 'qwen3_vl';
  add('visual.patch_embed.proj.weight', D, c.inChannels, c.temporalPatchSize, c.patchSize, c.patchSize);
  if (q3) {
    add('visual.patch_embed.proj.bias', D);
    add('visual.pos_embed.weight', c.numPositionEmbeddings, D);
  }
  for (let b = 0; b < c.visionDepth; b++) {
    const p = `visual.blocks.${b}.`;
    add(`${p}norm1.weight`, D);
    if (q2 || q3) add(`${p}norm1.bias`, D);
    add(`${p}norm2.weight`, D);
    if (q2 || q3) add(`${p}norm2.bias`, D);
    add(`${p}attn.qkv.weight`, 3 * D, D);
    add(`${p}attn.qkv.bias`, 3 * D);
    add(`${p}attn.proj.weight`, D, D);
    add(`${p}attn.proj.bias`, D);
    if (c.visionMlpKind === 'fc') {
      const fc = q3 ? 'mlp.linear_fc' : 'mlp.fc'; // Qwen3VLVisionMLP names its layers linear_fc1 / linear_fc2
      add(`${p}${fc}1.weight`, I, D);
      add(`${p}${fc}1.bias`, I);
      add(`${p}${fc}2.weight`, D, I);
      add(`${p}${fc}2.bias`, D);
    } else {
      add(`${p}mlp.gate_proj.weight`, I, D);
      add(`${p}mlp.gate_proj.bias`, I);
      add(`${p}mlp.up_proj.weight`, I, D);
      add(`${p}mlp.up_proj.bias`, I);
      add(`${p}mlp.down_proj.weight`, D, I);
      add(`${p}mlp.down_proj.bias`, D);
    }
  }
  if (q3) {
    // Qwen3VLVisionPatchMerger: norm (over D; over the 4 concatenated patches for the deepstack mergers) → fc1 → GELU → fc2.
    const M = c.mergerHiddenSize;
    const mergers = ['visual.merger.', ...c.deepstackVisualIndexes.map((_, i) => `visual.deepstack_merger_list.${i}.`)];
    mergers.forEach((p, i) => {
      add(`${p}norm.weight`, i === 0 ? D : M);
      add(`${p}norm.bias`, i === 0 ? D : M);
      add(`${p}linear_fc1.weight`, M, M);
      add(`${p}linear_fc1.bias`, M);
      add(`${p}linear_fc2.weight`, c.outHiddenSize, M);
      add(`${p}linear_fc2.bias`, c.outHiddenSize);
    });
  } else {
    add('visual.merger.ln_q.weight', D);
    if (c.mergerNormKind === 'layernorm') add('visual.merger.ln_q.bias', D);
    add('visual.merger.mlp.0.weight', c.mergerHiddenSize, c.mergerHiddenSize);
    add('visual.merger.mlp.0.bias', c.mergerHiddenSize);
    add('visual.merger.mlp.2.weight', c.outHiddenSize, c.mergerHiddenSize);
    add('visual.merger.mlp.2.bias', c.outHiddenSize);
  }

  const H = c.hiddenSize;
  add('model.embed_tokens.weight', c.vocabSize, H);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, H);
    add(`${p}self_attn.q_proj.weight`, c.qSize, H);
    if (c.attentionBias) add(`${p}self_attn.q_proj.bias`, c.qSize);
    add(`${p}self_attn.k_proj.weight`, c.kvSize, H);
    if (c.attentionBias) add(`${p}self_attn.k_proj.bias`, c.kvSize);
    add(`${p}self_attn.v_proj.weight`, c.kvSize, H);
    if (c.attentionBias) add(`${p}self_attn.v_proj.bias`, c.kvSize);
    add(`${p}self_attn.o_proj.weight`, H, c.qSize);
    if (c.qkNorm) {
      add(`${p}self_attn.q_norm.weight`, c.headDim);
      add(`${p}self_attn.k_norm.weight`, c.headDim);
    }
    add(`${p}post_attention_layernorm.weight`, H);
    add(`${p}mlp.gate_proj.weight`, c.intermediateSize, H);
    add(`${p}mlp.up_proj.weight`, c.intermediateSize, H);
    add(`${p}mlp.down_proj.weight`, H, c.intermediateSize);
  }
  add('model.norm.weight', H);
  if (!c.tieWordEmbeddings) add('lm_head.weight', c.vocabSize, H);
  return out;
}

export interface WeightFile {
  /** File name inside the model folder. */
  readonly name: string;
  readonly path: string;
  readonly fileSize: number;
  /** Absolute offset of the data buffer (8 + header length). */
  readonly dataOffset: number;
}

export interface SourceTensor {
  /** Name as stored in the file. */
  readonly sourceName: string;
  readonly fileIndex: number;
  readonly info: SafetensorsTensorInfo;
}

export interface WeightSource {
  readonly dir: string;
  /** Path of model.safetensors.index.json, or null for a single-file checkpoint. */
  readonly indexFile: string | null;
  readonly files: readonly WeightFile[];
  /** The tensors the checkpoint provides, by name as stored. */
  readonly tensors: ReadonlyMap<string, SourceTensor>;
}

const indexSchema = z.looseObject({
  metadata: z.looseObject({}).nullish(),
  weight_map: z.record(z.string(), z.string()),
});

/**
 * Finds and opens the weight files of a model folder: model.safetensors if present (as HF prefers it),
 * otherwise model.safetensors.index.json and the shards it names. Every header is validated (a truncated
 * file fails here, naming the file and the first tensor whose data is missing). With an index, every tensor
 * it maps must exist in the named shard; tensors a shard holds but the index does not map are not loaded.
 */
export function resolveWeightFiles(dir: string): WeightSource {
  const single = join(dir, SINGLE_WEIGHTS_FILE);
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (existsSync(single)) {
    const h = readSafetensorsHeader(single);
    const files: WeightFile[] = [{ name: SINGLE_WEIGHTS_FILE, path: single, fileSize: h.fileSize, dataOffset: h.dataOffset }];
    const tensors = new Map<string, SourceTensor>();
    for (const t of h.tensors) tensors.set(t.name, { sourceName: t.name, fileIndex: 0, info: t });
    return { dir, indexFile: null, files, tensors };
  }
  if (!existsSync(indexPath)) {
    throw new ModelWeightsError(
      dir,
      null,
      [`${dir}: no weights found: neither ${SINGLE_WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE} exists`],
      'Download the .safetensors files of the checkpoint (PyTorch .bin weights are not supported).',
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new ModelWeightsError(indexPath, null, [`${indexPath}: cannot read the shard index: ${(e as Error).message}`]);
  }
  const parsed = indexSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelWeightsError(indexPath, null, [`${indexPath}: ${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`]);
  }
  const weightMap = parsed.data.weight_map;
  const names = Object.keys(weightMap);
  if (names.length === 0) throw new ModelWeightsError(indexPath, null, [`${indexPath}: weight_map is empty`]);
  const shardNames = [...new Set(Object.values(weightMap))].sort();
  const files: WeightFile[] = [];
  const headers: SafetensorsHeader[] = [];
  for (const s of shardNames) {
    if (s.length === 0 || s.includes('/') || s.includes('\\') || s === '.' || s === '..') {
      throw new ModelWeightsError(indexPath, null, [`${indexPath}: shard name ${JSON.stringify(s)} is not a file name in the model folder`]);
    }
    const p = join(dir, s);
    if (!existsSync(p)) {
      const first = names.find((n) => weightMap[n] === s)!;
      throw new ModelWeightsError(
        indexPath,
        first,
        [`${indexPath} maps ${names.filter((n) => weightMap[n] === s).length} tensors (first: ${first}) to ${s}, which does not exist in ${dir}`],
        'Download every shard listed in model.safetensors.index.json.',
      );
    }
    const h = readSafetensorsHeader(p);
    files.push({ name: s, path: p, fileSize: h.fileSize, dataOffset: h.dataOffset });
    headers.push(h);
  }
  const tensors = new Map<string, SourceTensor>();
  const problems: string[] = [];
  let firstBad: { file: string; tensor: string } | null = null;
  for (const n of names) {
    const fi = shardNames.indexOf(weightMap[n]!);
    const info = headers[fi]!.byName.get(n);
    if (!info) {
      problems.push(`${files[fi]!.path}: tensor ${n} is missing (${WEIGHTS_INDEX_FILE} maps it to this shard)`);
      firstBad ??= { file: files[fi]!.path, tensor: n };
      continue;
    }
    tensors.set(n, { sourceName: n, fileIndex: fi, info });
  }
  if (firstBad) throw new ModelWeightsError(firstBad.file, firstBad.tensor, problems);
  return { dir, indexFile: indexPath, files, tensors };
}

export interface PlannedWeight {
  /** Canonical (Hub) name. */
  readonly name: string;
  /** Name as stored in the checkpoint. */
  readonly sourceName: string;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Storage dtype (F32, BF16 or F16). */
  readonly dtype: SafetensorsDtype;
  /** Index into WeightPlan.files. */
  readonly fileIndex: number;
  readonly file: string;
  /** Absolute byte offset in `file`. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface WeightPlan {
  readonly dir: string;
  readonly indexFile: string | null;
  readonly files: readonly WeightFile[];
  /** Every parameter, in expectedWeights() order. */
  readonly params: readonly PlannedWeight[];
  /** true when lm_head reuses embed_tokens (no lm_head entry in params). */
  readonly tiedLmHead: boolean;
  /** Tensors present in the checkpoint but not loaded, with the reason (e.g. lm_head.weight of a tied model). */
  readonly ignored: readonly { readonly name: string; readonly file: string; readonly reason: string }[];
  /** Which name layout the checkpoint used. */
  readonly layout: 'hub' | 'language_model' | 'mixed';
  readonly totalParams: number;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Explains an unexpected layer/block index in terms of the config, which is the usual cause. */
function unexpectedHint(name: string, c: ModelConfig): string {
  const m = /^(model\.layers|visual\.blocks)\.(\d+)\./.exec(name);
  if (m) {
    const text = m[1] === 'model.layers';
    const n = text ? c.numHiddenLayers : c.visionDepth;
    if (Number(m[2]) >= n) return ` (config.json has ${text ? 'num_hidden_layers' : 'vision_config.depth'} ${n})`;
  }
  return '';
}

/** When the vision MLP names belong to the other model type, the config and weights are from different families. */
function modelTypeHint(names: ReadonlyMap<string, unknown>, c: ModelConfig): string | undefined {
  if (c.modelType === 'qwen3_vl') return undefined;
  const other = c.visionMlpKind === 'gated' ? 'mlp.fc1.weight' : 'mlp.gate_proj.weight';
  if (![...names.keys()].some((n) => n.startsWith('visual.blocks.') && n.endsWith(other))) return undefined;
  const [looks, says] = c.modelType === 'qwen2_5_vl' ? ['Qwen2-VL', 'qwen2_5_vl'] : ['Qwen2.5-VL', 'qwen2_vl'];
  return `These weights look like a ${looks} checkpoint (visual.blocks.*.${other}) but config.json says model_type "${says}": use the config.json that came with the weights.`;
}

/**
 * Validates a model folder's weights against the config and returns the load plan.
 * Problems (missing tensor, unexpected tensor, shape mismatch, unsupported dtype, the same tensor under both
 * name layouts) are collected and thrown together as one ModelWeightsError naming each file and tensor.
 * A tied model may carry lm_head.weight; it is ignored (embed_tokens is used, as HF ties after loading).
 */
export function planWeights(dir: string, config: ModelConfig): WeightPlan {
  const src = resolveWeightFiles(dir);
  const where = src.indexFile ?? src.files[0]!.path;
  const fileOf = (t: SourceTensor): string => src.files[t.fileIndex]!.path;
  const problems: string[] = [];
  let first: { file: string; tensor: string } | null = null;
  const problem = (file: string, tensor: string, msg: string): void => {
    problems.push(msg);
    first ??= { file, tensor };
  };

  const byCanon = new Map<string, SourceTensor>();
  let hub = 0;
  let lm = 0;
  for (const t of src.tensors.values()) {
    const canon = canonicalWeightName(t.sourceName);
    if (canon !== t.sourceName) lm++;
    else if (t.sourceName.startsWith('model.') || t.sourceName.startsWith('visual.')) hub++;
    const prev = byCanon.get(canon);
    if (prev) {
      problem(fileOf(t), t.sourceName, `${fileOf(t)}: tensor ${t.sourceName} duplicates ${prev.sourceName} in ${fileOf(prev)} (both are ${canon})`);
      continue;
    }
    byCanon.set(canon, t);
  }

  const expected = expectedWeights(config);
  const params: PlannedWeight[] = [];
  const used = new Set<string>();
  for (const e of expected) {
    const t = byCanon.get(e.name);
    if (!t) {
      const hint =
        e.name === 'lm_head.weight' ? ' (config.json has tie_word_embeddings: false; if the checkpoint shares embed_tokens as the head, set it to true)' : '';
      problem(where, e.name, `${where}: missing tensor ${e.name} (expected shape ${shapeStr(e.shape)})${hint}`);
      continue;
    }
    used.add(e.name);
    const f = fileOf(t);
    const { info } = t;
    if (info.shape.length !== e.shape.length || info.shape.some((s, i) => s !== e.shape[i])) {
      problem(f, t.sourceName, `${f}: tensor ${t.sourceName} has shape ${shapeStr(info.shape)} but config.json implies ${shapeStr(e.shape)}`);
      continue;
    }
    if (!WEIGHT_DTYPES.includes(info.dtype)) {
      problem(f, t.sourceName, `${f}: tensor ${t.sourceName} has dtype ${info.dtype}; parameters must be ${WEIGHT_DTYPES.join(', ')}`);
      continue;
    }
    params.push({
      name: e.name,
      sourceName: t.sourceName,
      shape: e.shape,
      numel: info.numel,
      dtype: info.dtype,
      fileIndex: t.fileIndex,
      file: f,
      byteOffset: info.byteOffset,
      byteLength: info.byteLength,
    });
  }

  const ignored: { name: string; file: string; reason: string }[] = [];
  for (const [canon, t] of byCanon) {
    if (used.has(canon)) continue;
    const f = fileOf(t);
    if (canon === 'lm_head.weight' && config.tieWordEmbeddings) {
      const want = [config.vocabSize, config.hiddenSize];
      if (t.info.shape.length !== 2 || t.info.shape[0] !== want[0] || t.info.shape[1] !== want[1]) {
        problem(f, t.sourceName, `${f}: tensor ${t.sourceName} has shape ${shapeStr(t.info.shape)} but config.json implies ${shapeStr(want)}`);
      } else {
        ignored.push({ name: t.sourceName, file: f, reason: 'tie_word_embeddings is true: the head uses model.embed_tokens.weight' });
      }
      continue;
    }
    problem(f, t.sourceName, `${f}: unexpected tensor ${t.sourceName}${unexpectedHint(canon, config)}: not a parameter of this ${config.modelType} config`);
  }
  if (first !== null) {
    const f: { file: string; tensor: string } = first;
    throw new ModelWeightsError(f.file, f.tensor, problems, modelTypeHint(byCanon, config));
  }
  return {
    dir,
    indexFile: src.indexFile,
    files: src.files,
    params,
    tiedLmHead: config.tieWordEmbeddings,
    ignored,
    layout: lm === 0 ? 'hub' : hub === 0 ? 'language_model' : 'mixed',
    totalParams: params.reduce((a, p) => a + p.numel, 0),
  };
}

/**
 * Reads planned parameters into float32 arrays (BF16/F16 widened), by canonical name. For small models and
 * tests; the native loader memory-maps the files instead. `names` limits the read (each must be planned).
 */
export function readPlannedWeights(plan: WeightPlan, names?: readonly string[]): Map<string, Float32Array> {
  if (endianness() !== 'LE') throw new Error('readPlannedWeights needs a little-endian host');
  const byName = new Map(plan.params.map((p) => [p.name, p]));
  const want = names
    ? names.map((n) => {
        const p = byName.get(n);
        if (!p) throw new RangeError(`readPlannedWeights: ${n} is not a planned parameter`);
        return p;
      })
    : plan.params;
  const out = new Map<string, Float32Array>();
  const fds = new Map<number, number>();
  try {
    for (const p of want) {
      let fd = fds.get(p.fileIndex);
      if (fd === undefined) {
        fd = openSync(p.file, 'r');
        fds.set(p.fileIndex, fd);
      }
      const bytes = new Uint8Array(p.byteLength);
      let got = 0;
      while (got < p.byteLength) {
        const n = readSync(fd, bytes, got, p.byteLength - got, p.byteOffset + got);
        if (n === 0) throw new SafetensorsError(p.file, p.sourceName, `file ended while reading (${got} of ${p.byteLength} bytes): it changed after planning`);
        got += n;
      }
      let data: Float32Array;
      if (p.dtype === 'F32') data = new Float32Array(bytes.buffer);
      else if (p.dtype === 'BF16') data = bfloat16BitsToFloat32(new Uint16Array(bytes.buffer));
      else data = float16BitsToFloat32(new Uint16Array(bytes.buffer));
      out.set(p.name, data);
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  return out;
}
