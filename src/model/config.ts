/**
 * config.json of a Qwen2-VL / Qwen2.5-VL / dense Qwen3-VL checkpoint → one flat, fully validated `ModelConfig`.
 * Qwen3-VL (`qwen3_vl`) is always nested (text_config, vision_config); its MoE variant (`qwen3_vl_moe`) is rejected.
 *
 * Both layouts load:
 *  - flat (Hub originals): text fields at the top level, `rope_scaling: {type: "mrope", mrope_section}`;
 *  - nested (transformers ≥ 4.5x / v5 re-saves): `text_config: {...}`, optionally `rope_parameters:
 *    {rope_type, rope_theta, mrope_section}` instead of `rope_scaling` / `rope_theta`.
 * A text field is read from `text_config` first and falls back to the top level (the fixtures' reference
 * parser does the same; HF builds its text config from the top-level keys when `text_config` is absent).
 *
 * Shape-defining fields (sizes, heads, layers, mrope_section, vision depth/width/heads/MLP width) are required:
 * HF's class defaults are the 7B shapes, and silently loading 7B shapes for a config that lost a field would
 * only fail later with a confusing weight-shape error. Fields that real Hub configs omit get HF's defaults
 * (e.g. Qwen2-VL `vision_config.hidden_act` → quick_gelu, `mlp_ratio` → 4, `rope_theta` → 1e6).
 *
 * Every value the native model needs is computed here once (head dims, GQA groups, window units, merger widths,
 * norm/activation kinds, per-block attention kind), so native code receives numbers, never layout questions.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { z } from 'zod';

import { VlmGrpoError } from '../errors.js';

/** A config.json that cannot be used; `file` is the config path and `field` the offending key path. */
export class ModelConfigError extends VlmGrpoError {
  readonly file: string;
  readonly field: string;

  constructor(file: string, field: string, message: string, remedy?: string) {
    super(
      'ERR_MODEL_CONFIG',
      `${file}: ${field ? `${field}: ` : ''}${message}`,
      remedy ??
        'Check config.json against the checkpoint it came from (Qwen2-VL, Qwen2.5-VL or dense Qwen3-VL, Hugging Face format).',
    );
    this.name = 'ModelConfigError';
    this.file = file;
    this.field = field;
  }
}

export type ModelType = 'qwen2_vl' | 'qwen2_5_vl' | 'qwen3_vl';
/** silu: x·σ(x); quick_gelu: x·σ(1.702x); gelu: exact erf GELU; gelu_tanh: tanh approximation. */
export type ActivationKind = 'silu' | 'quick_gelu' | 'gelu' | 'gelu_tanh';
export type NormKind = 'rmsnorm' | 'layernorm';
/** gated: down(act(gate(x)) ⊙ up(x)), all three with bias (Qwen2.5-VL); fc: fc2(act(fc1(x))) with biases (Qwen2-VL). */
export type VisionMlpKind = 'gated' | 'fc';
/** full: attention within each image frame (cu_seqlens); window: within each window (cu_window_seqlens). */
export type VisionAttentionKind = 'full' | 'window';

/** The flat, fully defaulted model description handed to the native model. All sizes are element counts. */
export interface ModelConfig {
  /** Path (or label) of the config.json this was read from. */
  readonly file: string;
  readonly modelType: ModelType;
  /** `architectures[0]` when present. */
  readonly architecture: string | null;
  /** Which config.json layout the file used. */
  readonly layout: 'flat' | 'nested';
  /** `torch_dtype` / `dtype` as written (informational; tensors carry their own dtype). */
  readonly torchDtype: string | null;

  // ---- language model
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  /**
   * Qwen2/2.5-VL: hiddenSize / numAttentionHeads (HF ignores a separate head_dim; a contradicting one is rejected).
   * Qwen3-VL: text_config.head_dim (default 128), independent of hiddenSize.
   */
  readonly headDim: number;
  /** numAttentionHeads / numKeyValueHeads: query head h uses kv head floor(h / kvGroups). */
  readonly kvGroups: number;
  /** numAttentionHeads · headDim (rows of q_proj). */
  readonly qSize: number;
  /** numKeyValueHeads · headDim (rows of k_proj and v_proj). */
  readonly kvSize: number;
  /** headDim^-0.5. */
  readonly attentionScale: number;
  /** MLP activation: down(act(gate(x)) ⊙ up(x)), no biases. */
  readonly hiddenAct: ActivationKind;
  /** eps of every text RMSNorm. */
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** (t, h, w) rotary frequency pairs; sums to headDim / 2. */
  readonly mropeSection: readonly [number, number, number];
  /**
   * Qwen3-VL's interleaved M-RoPE: pair k takes h when k % 3 = 1 and k < 3·s1, w when k % 3 = 2 and k < 3·s2, else t
   * (false: contiguous t | h | w sections, Qwen2/2.5-VL).
   */
  readonly mropeInterleaved: boolean;
  /** q/k/v projections carry a bias (Qwen2/2.5-VL; Qwen3-VL has none). */
  readonly attentionBias: boolean;
  /** Per-head RMSNorm of q and k before RoPE (Qwen3-VL q_norm / k_norm). */
  readonly qkNorm: boolean;
  /** true: lm_head is embed_tokens (no lm_head.weight is loaded). */
  readonly tieWordEmbeddings: boolean;
  readonly maxPositionEmbeddings: number | null;

  // ---- vision tower
  readonly visionDepth: number;
  /** ViT width D (`hidden_size` in Qwen2.5-VL, `embed_dim` in Qwen2-VL). */
  readonly visionHiddenSize: number;
  readonly visionNumHeads: number;
  /** visionHiddenSize / visionNumHeads (a multiple of 4: half rotates by row, half by column). */
  readonly visionHeadDim: number;
  /** visionHeadDim^-0.5. */
  readonly visionAttentionScale: number;
  /** Vision rotary inv_freq count: visionHeadDim / 4, theta hard-coded to 10000 in HF. */
  readonly visionRotaryFreqs: number;
  readonly visionRopeTheta: number;
  /** MLP width (Qwen2-VL: int(embed_dim · mlp_ratio)). */
  readonly visionIntermediateSize: number;
  readonly visionHiddenAct: ActivationKind;
  readonly visionMlpKind: VisionMlpKind;
  /** norm1/norm2 kind; Qwen2-VL LayerNorm has a bias, Qwen2.5-VL RMSNorm does not. */
  readonly visionNormKind: NormKind;
  /** Hard-coded 1e-6 in HF for every vision norm, merger ln_q included. */
  readonly visionNormEps: number;
  readonly inChannels: number;
  readonly patchSize: number;
  readonly temporalPatchSize: number;
  readonly spatialMergeSize: number;
  /** spatialMergeSize² patches per merged token. */
  readonly mergeUnit: number;
  /** inChannels · temporalPatchSize · patchSize² (pixel_values row length, patch_embed input). */
  readonly patchInputSize: number;
  /** true for Qwen2.5-VL: tokens are permuted into windows before block 0. */
  readonly windowed: boolean;
  /** window_size in pixels (0 when not windowed). */
  readonly windowSize: number;
  /** Merged tokens per window side: window_size // spatial_merge_size // patch_size (0 when not windowed). */
  readonly windowUnits: number;
  readonly fullAttBlockIndexes: readonly number[];
  /** Attention kind of each vision block (length visionDepth). */
  readonly visionBlockAttention: readonly VisionAttentionKind[];
  /** Qwen3-VL learned position table rows (a square number; 0 for Qwen2/2.5-VL), interpolated to each image's grid. */
  readonly numPositionEmbeddings: number;
  /** Qwen3-VL vision blocks whose outputs feed the deepstack mergers (added after decoder layers 0..k-1); [] otherwise. */
  readonly deepstackVisualIndexes: readonly number[];
  /** Video temporal position scale (Qwen2.5-VL only; unused for images). */
  readonly tokensPerSecond: number;
  readonly mergerNormKind: NormKind;
  /** mergeUnit · visionHiddenSize: input and hidden width of the merger MLP. */
  readonly mergerHiddenSize: number;
  /** Merger activation between mlp.0 and mlp.2: exact erf GELU (nn.GELU()). */
  readonly mergerAct: ActivationKind;
  /** Merger output width; equals hiddenSize (image features are scattered into the text embeddings). */
  readonly outHiddenSize: number;

  // ---- special token ids
  readonly imageTokenId: number;
  readonly videoTokenId: number;
  readonly visionStartTokenId: number;
  readonly visionEndTokenId: number;
  readonly visionTokenId: number | null;
  readonly bosTokenId: number | null;
  /** config.json eos ids (generation uses generation_config.json when present). */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

// ------------------------------------------------------------------------------------------------------------
// zod schemas of the raw file: unknown keys are kept (HF configs carry many), known keys are type-checked.
// `null` is treated like a missing key, as HF writes null for unset optional fields.

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const tokenId = nonNegInt.nullish();
const eosIds = z.union([nonNegInt, z.array(nonNegInt)]).nullish();

const ropeSchema = z.looseObject({
  type: z.string().nullish(),
  rope_type: z.string().nullish(),
  mrope_section: z.array(nonNegInt).nullish(),
  rope_theta: z.number().positive().nullish(),
  mrope_interleaved: z.boolean().nullish(),
});

const textFields = {
  vocab_size: posInt.nullish(),
  hidden_size: posInt.nullish(),
  intermediate_size: posInt.nullish(),
  num_hidden_layers: posInt.nullish(),
  num_attention_heads: posInt.nullish(),
  num_key_value_heads: posInt.nullish(),
  head_dim: posInt.nullish(),
  attention_bias: z.boolean().nullish(),
  hidden_act: z.string().nullish(),
  rms_norm_eps: z.number().positive().nullish(),
  rope_theta: z.number().positive().nullish(),
  rope_scaling: ropeSchema.nullish(),
  rope_parameters: ropeSchema.nullish(),
  tie_word_embeddings: z.boolean().nullish(),
  use_sliding_window: z.boolean().nullish(),
  attention_dropout: z.number().min(0).nullish(),
  max_position_embeddings: posInt.nullish(),
  bos_token_id: tokenId,
  eos_token_id: eosIds,
  pad_token_id: tokenId,
};

const visionSchema = z.looseObject({
  depth: posInt.nullish(),
  hidden_size: posInt.nullish(),
  embed_dim: posInt.nullish(),
  num_heads: posInt.nullish(),
  intermediate_size: posInt.nullish(),
  mlp_ratio: z.number().positive().nullish(),
  out_hidden_size: posInt.nullish(),
  hidden_act: z.string().nullish(),
  in_channels: posInt.nullish(),
  in_chans: posInt.nullish(),
  patch_size: posInt.nullish(),
  spatial_patch_size: posInt.nullish(),
  temporal_patch_size: posInt.nullish(),
  spatial_merge_size: posInt.nullish(),
  window_size: posInt.nullish(),
  fullatt_block_indexes: z.array(nonNegInt).nullish(),
  tokens_per_second: z.number().positive().nullish(),
  num_position_embeddings: posInt.nullish(),
  deepstack_visual_indexes: z.array(nonNegInt).nullish(),
});

const topSchema = z.looseObject({
  ...textFields,
  model_type: z.string().nullish(),
  architectures: z.array(z.string()).nullish(),
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
  text_config: z.looseObject(textFields).nullish(),
  vision_config: visionSchema.nullish(),
  image_token_id: tokenId,
  video_token_id: tokenId,
  vision_start_token_id: tokenId,
  vision_end_token_id: tokenId,
  vision_token_id: tokenId,
});

type RawTop = z.infer<typeof topSchema>;
type RawText = z.infer<z.ZodObject<typeof textFields>>;
type RawRope = z.infer<typeof ropeSchema>;

const ACTIVATIONS: Record<string, ActivationKind> = {
  silu: 'silu',
  swish: 'silu',
  quick_gelu: 'quick_gelu',
  gelu: 'gelu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
};

const MODEL_TYPES: Record<ModelType, { arch: string; name: string }> = {
  qwen2_vl: { arch: 'Qwen2VL', name: 'Qwen2-VL' },
  qwen2_5_vl: { arch: 'Qwen2_5_VL', name: 'Qwen2.5-VL' },
  qwen3_vl: { arch: 'Qwen3VL', name: 'Qwen3-VL' },
};

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return `${s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s} (${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v})`;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = raw;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k as string];
  }
  return cur;
}

/**
 * Parses an already-decoded config.json object. `file` names the source in error messages.
 * Throws ModelConfigError naming the file and the field for a wrong type, a missing required field,
 * an unsupported model_type/feature, or values that contradict each other.
 */
export function parseModelConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelConfigError(file, '', `expected a JSON object, got ${describeValue(raw)}`);
  }
  const parsed = topSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.');
    throw new ModelConfigError(file, field, `${issue.message}; got ${describeValue(valueAt(raw, issue.path))}`);
  }
  return buildConfig(parsed.data, file);
}

/**
 * Reads `<dir>/config.json` (or the given .json file) and parses it with parseModelConfig.
 * A folder without config.json is reported as "not a model folder".
 */
export function readModelConfig(dirOrFile: string): ModelConfig {
  let file = dirOrFile;
  let isDir = false;
  try {
    isDir = statSync(dirOrFile).isDirectory();
  } catch {
    throw new ModelConfigError(dirOrFile, '', 'no such file or folder', 'Pass the path of a model folder that holds config.json.');
  }
  if (isDir) file = join(dirOrFile, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelConfigError(
      file,
      '',
      isDir ? `not a model folder: ${dirOrFile} has no readable config.json (${(e as Error).message})` : (e as Error).message,
      'Point at a Hugging Face Qwen2-VL / Qwen2.5-VL checkpoint folder (config.json, *.safetensors, tokenizer files).',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelConfigError(file, '', `invalid JSON: ${(e as Error).message}`);
  }
  return parseModelConfig(json, file);
}

function buildConfig(d: RawTop, file: string): ModelConfig {
  const fail = (field: string, msg: string, remedy?: string): never => {
    throw new ModelConfigError(file, field, msg, remedy);
  };

  // ---- model type and architecture
  const mt = d.model_type;
  if (mt == null) fail('model_type', 'missing; expected "qwen2_vl", "qwen2_5_vl" or "qwen3_vl"');
  if (mt === 'qwen3_vl_moe') {
    fail(
      'model_type',
      'Qwen3-VL mixture-of-experts checkpoints ("qwen3_vl_moe", e.g. Qwen3-VL-30B-A3B) are not supported; only the dense Qwen3-VL models are',
      'Use a dense Qwen3-VL checkpoint (Qwen3-VL-2B/4B/8B/32B-Instruct or -Thinking), or Qwen2-VL / Qwen2.5-VL.',
    );
  }
  if (mt !== 'qwen2_vl' && mt !== 'qwen2_5_vl' && mt !== 'qwen3_vl') {
    fail(
      'model_type',
      `unsupported model type ${JSON.stringify(mt)}; this trainer supports "qwen2_vl" (Qwen2-VL), "qwen2_5_vl" (Qwen2.5-VL) and "qwen3_vl" (dense Qwen3-VL)`,
      'Use a Qwen2-VL, Qwen2.5-VL or dense Qwen3-VL checkpoint.',
    );
  }
  const modelType = mt as ModelType;
  const isQ3 = modelType === 'qwen3_vl';
  const architecture = d.architectures?.[0] ?? null;
  if (architecture !== null && /Moe/i.test(architecture)) {
    fail('architectures', `${JSON.stringify(architecture)} is a mixture-of-experts model, which is not supported`);
  }
  if (architecture !== null && !architecture.startsWith(MODEL_TYPES[modelType].arch)) {
    fail(
      'architectures',
      `${JSON.stringify(architecture)} does not belong to model_type ${JSON.stringify(modelType)} (expected ${MODEL_TYPES[modelType].arch}ForConditionalGeneration)`,
    );
  }

  // ---- text fields: text_config first, then the top level
  const tc: RawText | null = d.text_config ?? null;
  const layout = tc ? 'nested' : 'flat';
  const textName = (k: string): string => (tc ? `text_config.${k}` : k);
  const tget = <K extends keyof RawText>(k: K): { value: NonNullable<RawText[K]> | undefined; field: string } => {
    const a = tc?.[k];
    if (a !== undefined && a !== null) return { value: a as NonNullable<RawText[K]>, field: `text_config.${String(k)}` };
    const b = d[k];
    if (b !== undefined && b !== null) return { value: b as NonNullable<RawText[K]>, field: String(k) };
    return { value: undefined, field: textName(String(k)) };
  };
  const need = <K extends keyof RawText>(k: K): NonNullable<RawText[K]> => {
    const r = tget(k);
    if (r.value === undefined) return fail(r.field, 'missing required field');
    return r.value;
  };

  const vocabSize = need('vocab_size') as number;
  const hiddenSize = need('hidden_size') as number;
  const intermediateSize = need('intermediate_size') as number;
  const numHiddenLayers = need('num_hidden_layers') as number;
  const numAttentionHeads = need('num_attention_heads') as number;
  const kv = tget('num_key_value_heads');
  const numKeyValueHeads = (kv.value as number | undefined) ?? numAttentionHeads;
  if (!isQ3 && hiddenSize % numAttentionHeads !== 0) {
    fail(textName('num_attention_heads'), `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  }
  const hd = tget('head_dim');
  // Qwen3-VL attention uses head_dim as written (Qwen3VLTextConfig default 128), not hidden_size / heads.
  const headDim = isQ3 ? ((hd.value as number | undefined) ?? 128) : hiddenSize / numAttentionHeads;
  if (!isQ3 && hd.value !== undefined && hd.value !== headDim) {
    fail(hd.field, `${hd.value} contradicts hidden_size / num_attention_heads = ${hiddenSize} / ${numAttentionHeads} = ${headDim} (Qwen2-VL attention uses the latter)`);
  }
  if (headDim % 2 !== 0) fail(isQ3 ? hd.field : textName('hidden_size'), `head_dim ${headDim}${isQ3 ? '' : ' (= hidden_size / num_attention_heads)'} must be even for rotary embeddings`);
  const bias = tget('attention_bias');
  if (isQ3 && bias.value === true) {
    fail(bias.field, 'Qwen3-VL with attention biases is not supported (the published dense checkpoints set attention_bias to false)');
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(kv.field, `num_attention_heads ${numAttentionHeads} is not divisible by num_key_value_heads ${numKeyValueHeads}`);
  }

  const act = tget('hidden_act');
  const hiddenAct = parseActivation(act.value as string | undefined, 'silu', act.field, fail);

  const eps = tget('rms_norm_eps');
  // HF's Qwen2 text config class default is 1e-6; the checkpoints all write it explicitly.
  const rmsNormEps = (eps.value as number | undefined) ?? 1e-6;

  // rope: rope_scaling (Hub) or rope_parameters (v5); theta from rope_theta or rope_parameters.rope_theta.
  const rs = tget('rope_scaling');
  const rp = tget('rope_parameters');
  const ropeEntries: { value: RawRope; field: string }[] = [];
  if (rs.value) ropeEntries.push({ value: rs.value as RawRope, field: rs.field });
  if (rp.value) ropeEntries.push({ value: rp.value as RawRope, field: rp.field });
  if (ropeEntries.length === 0) {
    fail(textName('rope_scaling'), 'missing; Qwen-VL needs rope_scaling (or rope_parameters) with mrope_section');
  }
  let mrope: { value: number[]; field: string } | undefined;
  let thetaFromRope: { value: number; field: string } | undefined;
  for (const { value: r, field } of ropeEntries) {
    const kind = r.rope_type ?? r.type;
    if (kind != null && kind !== 'mrope' && kind !== 'default') {
      fail(`${field}.${r.rope_type != null ? 'rope_type' : 'type'}`, `unsupported rope type ${JSON.stringify(kind)}; only M-RoPE without frequency scaling ("mrope"/"default") is implemented`);
    }
    if (r.mrope_interleaved && !isQ3) fail(`${field}.mrope_interleaved`, `interleaved M-RoPE is a Qwen3-VL feature; model_type ${JSON.stringify(modelType)} uses contiguous sections`);
    if (r.mrope_section != null) {
      if (mrope && JSON.stringify(mrope.value) !== JSON.stringify(r.mrope_section)) {
        fail(`${field}.mrope_section`, `${JSON.stringify(r.mrope_section)} contradicts ${mrope.field} ${JSON.stringify(mrope.value)}`);
      }
      mrope = { value: r.mrope_section, field: `${field}.mrope_section` };
    }
    if (r.rope_theta != null) thetaFromRope = { value: r.rope_theta, field: `${field}.rope_theta` };
  }
  if (!mrope) return fail(`${ropeEntries[0]!.field}.mrope_section`, 'missing required field');
  if (mrope.value.length !== 3) fail(mrope.field, `expected 3 sections (t, h, w), got ${mrope.value.length}: ${JSON.stringify(mrope.value)}`);
  const mropeSum = mrope.value.reduce((a, b) => a + b, 0);
  if (mropeSum !== headDim / 2) {
    fail(mrope.field, `${JSON.stringify(mrope.value)} sums to ${mropeSum}, but must sum to head_dim / 2 = ${headDim / 2} (head_dim = ${isQ3 ? `${hd.field} ${headDim}` : `hidden_size ${hiddenSize} / num_attention_heads ${numAttentionHeads}`})`);
  }
  const th = tget('rope_theta');
  if (th.value !== undefined && thetaFromRope && th.value !== thetaFromRope.value) {
    fail(th.field, `${th.value} contradicts ${thetaFromRope.field} ${thetaFromRope.value}`);
  }
  // Both Qwen2-VL and Qwen2.5-VL text configs default rope_theta to 1e6.
  const ropeTheta = (th.value as number | undefined) ?? thetaFromRope?.value ?? 1_000_000;

  const sw = tget('use_sliding_window');
  if (sw.value === true) fail(sw.field, 'sliding-window text attention is not supported (all published Qwen-VL configs set it to false)');
  const drop = tget('attention_dropout');
  if (drop.value !== undefined && drop.value !== 0) fail(drop.field, `attention dropout ${drop.value} is not supported; set it to 0.0`);
  const tie = tget('tie_word_embeddings');
  const tieWordEmbeddings = (tie.value as boolean | undefined) ?? false;
  const maxPos = tget('max_position_embeddings');

  // ---- vision
  const vc = d.vision_config;
  if (!vc) return fail('vision_config', 'missing required object');
  const vneed = (k: keyof typeof vc & string): number => {
    const v = vc[k];
    if (v === undefined || v === null) return fail(`vision_config.${k}`, 'missing required field');
    return v as number;
  };
  const isQ2 = modelType === 'qwen2_vl';
  const visionDepth = vneed('depth');
  const visionWidthKey = isQ2 ? 'embed_dim' : 'hidden_size';
  const visionHiddenSize = vneed(visionWidthKey);
  const visionNumHeads = vneed('num_heads');
  if (visionHiddenSize % visionNumHeads !== 0) {
    fail('vision_config.num_heads', `vision width ${visionHiddenSize} (vision_config.${visionWidthKey}) is not divisible by num_heads ${visionNumHeads}`);
  }
  const visionHeadDim = visionHiddenSize / visionNumHeads;
  if (visionHeadDim % 4 !== 0) {
    fail('vision_config.num_heads', `vision head dim ${visionHeadDim} must be a multiple of 4 (half the rotary pairs use the row, half the column)`);
  }
  let visionIntermediateSize: number;
  if (isQ2) {
    const ratio = vc.mlp_ratio ?? 4;
    visionIntermediateSize = Math.trunc(visionHiddenSize * ratio); // HF: int(embed_dim * mlp_ratio)
    if (visionIntermediateSize < 1) fail('vision_config.mlp_ratio', `${ratio} gives an MLP width of ${visionIntermediateSize}`);
  } else {
    visionIntermediateSize = vneed('intermediate_size');
  }
  const visionHiddenAct = parseActivation(vc.hidden_act ?? undefined, isQ2 ? 'quick_gelu' : isQ3 ? 'gelu_tanh' : 'silu', 'vision_config.hidden_act', fail);

  // Merger output: Qwen2-VL calls it vision_config.hidden_size, Qwen2.5-VL out_hidden_size. It must equal the
  // text width (features replace token embeddings), so a missing value can only mean hidden_size.
  const outKey = isQ2 ? 'hidden_size' : 'out_hidden_size';
  const outHiddenSize = (vc[outKey] as number | null | undefined) ?? hiddenSize;
  if (outHiddenSize !== hiddenSize) {
    fail(`vision_config.${outKey}`, `merger output width ${outHiddenSize} must equal the text hidden_size ${hiddenSize}`);
  }

  const inChannels = vc.in_channels ?? vc.in_chans ?? 3;
  if (inChannels !== 3) fail(vc.in_channels != null ? 'vision_config.in_channels' : 'vision_config.in_chans', `${inChannels} input channels; the image processor produces RGB (3)`);
  const patchSize = vc.patch_size ?? vc.spatial_patch_size ?? (isQ3 ? 16 : 14);
  const temporalPatchSize = vc.temporal_patch_size ?? 2;
  const spatialMergeSize = vc.spatial_merge_size ?? 2;

  let windowSize = 0;
  let windowUnits = 0;
  let fullAttBlockIndexes: number[] = [];
  let tokensPerSecond = 1;
  let numPositionEmbeddings = 0;
  let deepstackVisualIndexes: number[] = [];
  if (isQ3) {
    numPositionEmbeddings = vc.num_position_embeddings ?? 2304; // Qwen3VLVisionConfig default (48 × 48)
    const side = Math.round(Math.sqrt(numPositionEmbeddings));
    if (side * side !== numPositionEmbeddings) {
      fail('vision_config.num_position_embeddings', `${numPositionEmbeddings} is not a square number (the position table is a side × side grid)`);
    }
    deepstackVisualIndexes = [...(vc.deepstack_visual_indexes ?? [8, 16, 24])];
    const seenDs = new Set<number>();
    for (const b of deepstackVisualIndexes) {
      if (b >= visionDepth) fail('vision_config.deepstack_visual_indexes', `block ${b} does not exist (depth ${visionDepth}): ${JSON.stringify(deepstackVisualIndexes)}`);
      if (seenDs.has(b)) fail('vision_config.deepstack_visual_indexes', `block ${b} is listed twice: ${JSON.stringify(deepstackVisualIndexes)}`);
      seenDs.add(b);
    }
    if (deepstackVisualIndexes.length > numHiddenLayers) {
      fail('vision_config.deepstack_visual_indexes', `${deepstackVisualIndexes.length} deepstack features but only ${numHiddenLayers} decoder layers to add them to`);
    }
  }
  if (!isQ2 && !isQ3) {
    windowSize = vc.window_size ?? 112;
    windowUnits = Math.floor(Math.floor(windowSize / spatialMergeSize) / patchSize); // HF: window_size // merge // patch
    if (windowUnits < 1) {
      fail('vision_config.window_size', `${windowSize} pixels is smaller than one merged token (spatial_merge_size ${spatialMergeSize} × patch_size ${patchSize} = ${spatialMergeSize * patchSize})`);
    }
    fullAttBlockIndexes = [...(vc.fullatt_block_indexes ?? [7, 15, 23, 31])];
    const seen = new Set<number>();
    for (const b of fullAttBlockIndexes) {
      if (b >= visionDepth) fail('vision_config.fullatt_block_indexes', `block ${b} does not exist (depth ${visionDepth}): ${JSON.stringify(fullAttBlockIndexes)}`);
      if (seen.has(b)) fail('vision_config.fullatt_block_indexes', `block ${b} is listed twice: ${JSON.stringify(fullAttBlockIndexes)}`);
      seen.add(b);
    }
    tokensPerSecond = vc.tokens_per_second ?? 4;
  }
  const fullSet = new Set(fullAttBlockIndexes);
  const visionBlockAttention: VisionAttentionKind[] = [];
  for (let b = 0; b < visionDepth; b++) visionBlockAttention.push(isQ2 || isQ3 || fullSet.has(b) ? 'full' : 'window');

  // ---- special ids (HF class defaults are the real Qwen ids; all must exist in the vocabulary)
  const ids = {
    image_token_id: d.image_token_id ?? 151655,
    video_token_id: d.video_token_id ?? 151656,
    vision_start_token_id: d.vision_start_token_id ?? 151652,
    vision_end_token_id: d.vision_end_token_id ?? 151653,
  };
  const seenIds = new Map<number, string>();
  for (const [k, v] of Object.entries(ids)) {
    if (v >= vocabSize) fail(k, `token id ${v} is outside the vocabulary (vocab_size ${vocabSize})`);
    const other = seenIds.get(v);
    if (other) fail(k, `token id ${v} is also ${other}`);
    seenIds.set(v, k);
  }
  const optId = (field: string, v: number | undefined): number | null => {
    if (v === undefined) return null;
    if (v >= vocabSize) fail(field, `token id ${v} is outside the vocabulary (vocab_size ${vocabSize})`);
    return v;
  };
  const bos = tget('bos_token_id');
  const pad = tget('pad_token_id');
  const eos = tget('eos_token_id');
  const eosRaw = eos.value as number | number[] | undefined;
  const eosTokenIds = eosRaw === undefined ? [] : Array.isArray(eosRaw) ? [...eosRaw] : [eosRaw];
  for (const e of eosTokenIds) optId(eos.field, e);

  const mergeUnit = spatialMergeSize * spatialMergeSize;
  return {
    file,
    modelType,
    architecture,
    layout,
    torchDtype: d.torch_dtype ?? d.dtype ?? null,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    kvGroups: numAttentionHeads / numKeyValueHeads,
    qSize: numAttentionHeads * headDim,
    kvSize: numKeyValueHeads * headDim,
    attentionScale: 1 / Math.sqrt(headDim),
    hiddenAct,
    rmsNormEps,
    ropeTheta,
    mropeSection: [mrope.value[0]!, mrope.value[1]!, mrope.value[2]!],
    mropeInterleaved: isQ3,
    attentionBias: !isQ3,
    qkNorm: isQ3,
    tieWordEmbeddings,
    maxPositionEmbeddings: (maxPos.value as number | undefined) ?? null,
    visionDepth,
    visionHiddenSize,
    visionNumHeads,
    visionHeadDim,
    visionAttentionScale: 1 / Math.sqrt(visionHeadDim),
    visionRotaryFreqs: visionHeadDim / 4,
    visionRopeTheta: 10000,
    visionIntermediateSize,
    visionHiddenAct,
    visionMlpKind: isQ2 || isQ3 ? 'fc' : 'gated',
    visionNormKind: isQ2 || isQ3 ? 'layernorm' : 'rmsnorm',
    visionNormEps: 1e-6,
    inChannels,
    patchSize,
    temporalPatchSize,
    spatialMergeSize,
    mergeUnit,
    patchInputSize: inChannels * temporalPatchSize * patchSize * patchSize,
    windowed: !isQ2 && !isQ3,
    windowSize,
    windowUnits,
    fullAttBlockIndexes,
    visionBlockAttention,
    numPositionEmbeddings,
    deepstackVisualIndexes,
    tokensPerSecond,
    mergerNormKind: isQ2 || isQ3 ? 'layernorm' : 'rmsnorm',
    mergerHiddenSize: mergeUnit * visionHiddenSize,
    mergerAct: 'gelu',
    outHiddenSize,
    imageTokenId: ids.image_token_id,
    videoTokenId: ids.video_token_id,
    visionStartTokenId: ids.vision_start_token_id,
    visionEndTokenId: ids.vision_end_token_id,
    visionTokenId: optId('vision_token_id', d.vision_token_id ?? undefined),
    bosTokenId: optId(bos.field, bos.value as number | undefined),
    eosTokenIds,
    padTokenId: optId(pad.field, pad.value as number | undefined),
  };
}

function parseActivation(
  name: string | undefined,
  dflt: ActivationKind,
  field: string,
  fail: (field: string, msg: string) => never,
): ActivationKind {
  if (name === undefined) return dflt;
  const k = ACTIVATIONS[name];
  if (!k) fail(field, `unsupported activation ${JSON.stringify(name)}; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
  return k!;
}
