/**
 * A complete, randomly initialised Qwen2.5-VL model folder, small enough to train on a CPU in minutes, with the
 * counting task's tokenizer. It goes through exactly the code path of a Hub checkpoint (config.json in the flat
 * hub layout, model.safetensors under hub tensor names, tokenizer.json + tokenizer_config.json with the chat
 * template, preprocessor_config.json, generation_config.json):
 *
 *   preset 'demo':  text hidden 128, 4 layers, 4 heads (head dim 32), 2 KV heads, MLP 352, M-RoPE [4, 6, 6];
 *                   vision depth 2, width 128, 4 heads (head dim 32), MLP 256, patch 14, merge 2, window 56
 *                   (2×2 merged tokens) with block 1 full attention; tied embeddings. ≈ 1.6 M parameters.
 *   preset 'test':  text hidden 64, 2 layers, 4 heads (16), 2 KV heads, MLP 128, M-RoPE [2, 3, 3]; vision width 32,
 *                   2 heads, MLP 64: for quick tests.
 *
 * Initialisation follows transformers' Qwen2_5_VLPreTrainedModel._init_weights with initializer_range 0.02:
 * every Linear / Conv3d weight and the token embedding ~ N(0, 0.02²), biases 0, RMSNorm weights 1. Each tensor
 * draws from its own stream Rng(seed, tensor name), so the same seed gives the same bytes.
 *
 * preprocessor_config.json keeps HF's min_pixels (56²) and sets max_pixels to 224² so the demo's 84–224-pixel
 * images are never resized (smart_resize keeps any multiple of 28 inside that budget).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { parseModelConfig, type ModelConfig } from '../model/config.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { expectedWeights } from '../model/weights.js';
import { CLIP_MEAN, CLIP_STD } from '../processor/preprocessor-config.js';
import { QWEN_SPECIAL_TOKENS } from '../processor/tokenizer.js';
import { Rng } from './scenes.js';
import { buildTaskTokenizer, countingCorpus, type TaskTokenizer } from './tokenizer.js';

export type TinyModelPreset = 'demo' | 'test';
export const TINY_MODEL_PRESETS: readonly TinyModelPreset[] = ['demo', 'test'];

interface PresetSizes {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  mropeSection: [number, number, number];
  visionDepth: number;
  visionHidden: number;
  visionHeads: number;
  visionIntermediate: number;
  windowSize: number;
  fullAttBlocks: number[];
}

const PRESETS: Record<TinyModelPreset, PresetSizes> = {
  demo: {
    hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 352, mropeSection: [4, 6, 6],
    visionDepth: 2, visionHidden: 128, visionHeads: 4, visionIntermediate: 256, windowSize: 56, fullAttBlocks: [1],
  },
  test: {
    hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, mropeSection: [2, 3, 3],
    visionDepth: 2, visionHidden: 32, visionHeads: 2, visionIntermediate: 64, windowSize: 56, fullAttBlocks: [1],
  },
};

/** Standard deviation of the random weights (HF initializer_range). */
export const INITIALIZER_RANGE = 0.02;

export interface TinyModelOptions {
  /** Folder to write (created when missing; existing files of the same names are overwritten). */
  outDir: string;
  /** Seed of the weights. Default 0. */
  seed?: number;
  /** Sizes. Default 'demo'. */
  preset?: TinyModelPreset;
  /** The tokenizer; default buildTaskTokenizer(countingCorpus()). */
  tokenizer?: TaskTokenizer;
}

export interface TinyModelResult {
  dir: string;
  /** config.json as written. */
  configJson: Record<string, unknown>;
  /** The parsed config (what loadModel sees). */
  config: ModelConfig;
  /** Number of parameters (tied head counted once). */
  parameterCount: number;
  vocabSize: number;
  /** Paths of the files written. */
  files: string[];
}

/** config.json of a preset for a tokenizer (flat hub layout, model_type qwen2_5_vl). */
export function tinyModelConfigJson(preset: TinyModelPreset, tokenizer: TaskTokenizer): Record<string, unknown> {
  const p = PRESETS[preset];
  if (!p) throw new RangeError(`unknown preset ${JSON.stringify(preset)}; known: ${TINY_MODEL_PRESETS.join(', ')}`);
  const id = (s: string): number => {
    const v = tokenizer.specialTokenIds[s];
    if (v === undefined) throw new RangeError(`the tokenizer has no ${s}`);
    return v;
  };
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    attention_dropout: 0.0,
    bos_token_id: id(QWEN_SPECIAL_TOKENS.endOfText),
    eos_token_id: id(QWEN_SPECIAL_TOKENS.imEnd),
    pad_token_id: id(QWEN_SPECIAL_TOKENS.endOfText),
    vision_start_token_id: id(QWEN_SPECIAL_TOKENS.visionStart),
    vision_end_token_id: id(QWEN_SPECIAL_TOKENS.visionEnd),
    image_token_id: id(QWEN_SPECIAL_TOKENS.imagePad),
    video_token_id: id(QWEN_SPECIAL_TOKENS.videoPad),
    hidden_act: 'silu',
    hidden_size: p.hidden,
    initializer_range: INITIALIZER_RANGE,
    intermediate_size: p.intermediate,
    max_position_embeddings: 4096,
    max_window_layers: p.layers,
    num_attention_heads: p.heads,
    num_hidden_layers: p.layers,
    num_key_value_heads: p.kvHeads,
    rms_norm_eps: 1e-6,
    // Short sequences (≈100 tokens): a small theta keeps every rotary frequency informative.
    rope_theta: 10000.0,
    rope_scaling: { type: 'mrope', mrope_section: [...p.mropeSection] },
    sliding_window: 4096,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: tokenizer.vocabSize,
    vision_config: {
      depth: p.visionDepth,
      hidden_act: 'silu',
      hidden_size: p.visionHidden,
      intermediate_size: p.visionIntermediate,
      num_heads: p.visionHeads,
      in_chans: 3,
      out_hidden_size: p.hidden,
      patch_size: 14,
      spatial_merge_size: 2,
      spatial_patch_size: 14,
      temporal_patch_size: 2,
      window_size: p.windowSize,
      fullatt_block_indexes: [...p.fullAttBlocks],
      tokens_per_second: 2,
      initializer_range: INITIALIZER_RANGE,
    },
  };
}

/** Whether a parameter is a norm weight (initialised to ones). */
function isNormWeight(name: string): boolean {
  return /(?:norm1|norm2|ln_q|input_layernorm|post_attention_layernorm|model\.norm)\.weight$/.test(name);
}

/** HF-style random init of every tensor the config implies (see the module comment). */
export function initTinyWeights(config: ModelConfig, seed: number): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  for (const w of expectedWeights(config)) {
    const numel = w.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(numel);
    if (isNormWeight(w.name)) data.fill(1);
    else if (!w.name.endsWith('.bias')) {
      const rng = Rng.fromKey('tiny-model', seed, w.name);
      for (let i = 0; i < numel; i++) data[i] = INITIALIZER_RANGE * rng.normal();
    }
    out.set(w.name, { dtype: 'F32', shape: w.shape, data });
  }
  return out;
}

/** Write the model folder (see the module comment). */
export async function writeTinyModel(options: TinyModelOptions): Promise<TinyModelResult> {
  if (!options || typeof options.outDir !== 'string' || options.outDir.length === 0) throw new TypeError('writeTinyModel: outDir (a folder path) is required');
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`writeTinyModel: seed must be a non-negative integer, got ${seed}`);
  const preset = options.preset ?? 'demo';
  if (!TINY_MODEL_PRESETS.includes(preset)) throw new RangeError(`writeTinyModel: unknown preset ${JSON.stringify(preset)}; known: ${TINY_MODEL_PRESETS.join(', ')}`);
  const tokenizer = options.tokenizer ?? buildTaskTokenizer(countingCorpus());
  const configJson = tinyModelConfigJson(preset, tokenizer);
  const dir = path.resolve(options.outDir);
  const config = parseModelConfig(configJson, path.join(dir, 'config.json'));
  await mkdir(dir, { recursive: true });

  const weights = initTinyWeights(config, seed);
  let parameterCount = 0;
  for (const t of weights.values()) parameterCount += t.data.length;
  const imEnd = tokenizer.specialTokenIds[QWEN_SPECIAL_TOKENS.imEnd]!;
  const endOfText = tokenizer.specialTokenIds[QWEN_SPECIAL_TOKENS.endOfText]!;
  const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';
  const files: [string, string | null][] = [
    ['config.json', json(configJson)],
    ['generation_config.json', json({ bos_token_id: endOfText, eos_token_id: [imEnd], pad_token_id: endOfText, do_sample: false })],
    ['tokenizer.json', JSON.stringify(tokenizer.tokenizerJson)],
    ['tokenizer_config.json', json(tokenizer.tokenizerConfig)],
    ['preprocessor_config.json', json({
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [...CLIP_MEAN],
      image_std: [...CLIP_STD],
      image_processor_type: 'Qwen2VLImageProcessor',
      min_pixels: 56 * 56,
      max_pixels: 224 * 224,
      merge_size: 2,
      patch_size: 14,
      processor_class: 'Qwen2_5_VLProcessor',
      resample: 3,
      rescale_factor: 1 / 255,
      temporal_patch_size: 2,
    })],
    ['model.safetensors', null],
  ];
  const written: string[] = [];
  for (const [name, text] of files) {
    const file = path.join(dir, name);
    if (text === null) writeSafetensors(file, weights, { format: 'pt' });
    else await writeFile(file, text);
    written.push(file);
  }
  return { dir, configJson, config, parameterCount, vocabSize: tokenizer.vocabSize, files: written };
}
