import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  ModelConfigError,
  parseGenerationConfig,
  parseModelConfig,
  readGenerationConfig,
  readModelConfig,
  type ModelConfig,
} from '../../src/model/index.js';
import { readModelConfig as readModelConfigFromRoot, type ModelConfig as RootModelConfig } from '../../src/index.js';
import { cleanupTempDirs, FIXTURES, fixtureConfigJson, tempDir, thrown } from './fixtures.js';

afterAll(cleanupTempDirs);

/** tiny-b as described in test/fixtures/README.md, in the flat Hub layout. */
function tinyBFlat(): Record<string, unknown> {
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    attention_dropout: 0.0,
    bos_token_id: 495,
    eos_token_id: 497,
    vision_start_token_id: 498,
    vision_end_token_id: 499,
    image_token_id: 500,
    video_token_id: 501,
    hidden_act: 'silu',
    hidden_size: 96,
    intermediate_size: 160,
    max_position_embeddings: 4096,
    num_attention_heads: 4,
    num_hidden_layers: 3,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-6,
    rope_theta: 100.0,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
    use_sliding_window: false,
    vocab_size: 512,
    rope_scaling: { type: 'mrope', mrope_section: [3, 4, 5] },
    vision_config: {
      depth: 3,
      hidden_act: 'silu',
      hidden_size: 48,
      intermediate_size: 80,
      num_heads: 2,
      in_chans: 3,
      out_hidden_size: 96,
      patch_size: 14,
      spatial_merge_size: 2,
      spatial_patch_size: 14,
      temporal_patch_size: 2,
      window_size: 112,
      fullatt_block_indexes: [1],
      tokens_per_second: 2,
    },
  };
}

/** The same model re-saved the transformers v5 way: nested text_config with rope_parameters. */
function tinyBNestedV5(): Record<string, unknown> {
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    dtype: 'float32',
    image_token_id: 500,
    video_token_id: 501,
    vision_start_token_id: 498,
    vision_end_token_id: 499,
    tie_word_embeddings: false,
    text_config: {
      model_type: 'qwen2_5_vl_text',
      attention_dropout: 0.0,
      bos_token_id: 495,
      eos_token_id: 497,
      hidden_act: 'silu',
      hidden_size: 96,
      intermediate_size: 160,
      layer_types: ['full_attention', 'full_attention', 'full_attention'],
      max_position_embeddings: 4096,
      num_attention_heads: 4,
      num_hidden_layers: 3,
      num_key_value_heads: 4,
      rms_norm_eps: 1e-6,
      rope_parameters: { rope_type: 'default', rope_theta: 100.0, mrope_section: [3, 4, 5] },
      sliding_window: null,
      use_sliding_window: false,
      vocab_size: 512,
    },
    vision_config: { ...(tinyBFlat().vision_config as object), model_type: 'qwen2_5_vl', initializer_range: 0.02 },
  };
}

function withoutSource(c: ModelConfig): Omit<ModelConfig, 'file' | 'layout' | 'torchDtype'> {
  const { file: _f, layout: _l, torchDtype: _d, ...rest } = c;
  return rest;
}

function configError(raw: unknown): ModelConfigError {
  const e = thrown(() => parseModelConfig(raw, '/models/x/config.json'));
  expect(e).toBeInstanceOf(ModelConfigError);
  expect((e as ModelConfigError).code).toBe('ERR_MODEL_CONFIG');
  expect(e.message).toContain('/models/x/config.json');
  return e as ModelConfigError;
}

describe('model config: fixtures', () => {
  it('tiny-a (Qwen2.5-VL, flat, tied, GQA) parses to the flat values', () => {
    const c = readModelConfig(join(FIXTURES, 'tiny-a'));
    expect(c.file).toBe(join(FIXTURES, 'tiny-a', 'config.json'));
    expect(c).toMatchObject({
      modelType: 'qwen2_5_vl',
      layout: 'flat',
      vocabSize: 512,
      hiddenSize: 64,
      intermediateSize: 128,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      kvGroups: 2,
      qSize: 64,
      kvSize: 32,
      attentionScale: 0.25,
      hiddenAct: 'silu',
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      mropeSection: [2, 3, 3],
      tieWordEmbeddings: true,
      visionDepth: 2,
      visionHiddenSize: 32,
      visionNumHeads: 2,
      visionHeadDim: 16,
      visionRotaryFreqs: 4,
      visionIntermediateSize: 64,
      visionHiddenAct: 'silu',
      visionMlpKind: 'gated',
      visionNormKind: 'rmsnorm',
      visionNormEps: 1e-6,
      patchInputSize: 1176,
      spatialMergeSize: 2,
      mergeUnit: 4,
      windowed: true,
      windowSize: 56,
      windowUnits: 2,
      fullAttBlockIndexes: [1],
      visionBlockAttention: ['window', 'full'],
      mergerNormKind: 'rmsnorm',
      mergerHiddenSize: 128,
      mergerAct: 'gelu',
      outHiddenSize: 64,
      imageTokenId: 500,
      videoTokenId: 501,
      visionStartTokenId: 498,
      visionEndTokenId: 499,
      bosTokenId: 495,
      eosTokenIds: [497],
      padTokenId: null,
    });
  });

  it('tiny-q2vl (Qwen2-VL keys, MQA, hidden_act missing → quick_gelu) parses', () => {
    const raw = fixtureConfigJson('tiny-q2vl');
    expect((raw.vision_config as Record<string, unknown>).hidden_act).toBeUndefined();
    const c = readModelConfig(join(FIXTURES, 'tiny-q2vl', 'config.json'));
    expect(c).toMatchObject({
      modelType: 'qwen2_vl',
      numKeyValueHeads: 1,
      kvGroups: 4,
      kvSize: 16,
      intermediateSize: 96,
      mropeSection: [4, 2, 2],
      tieWordEmbeddings: false,
      visionHiddenSize: 32, // embed_dim
      visionIntermediateSize: 64, // embed_dim · mlp_ratio 2
      visionHiddenAct: 'quick_gelu',
      visionMlpKind: 'fc',
      visionNormKind: 'layernorm',
      mergerNormKind: 'layernorm',
      outHiddenSize: 64, // vision_config.hidden_size
      windowed: false,
      windowUnits: 0,
      fullAttBlockIndexes: [],
      visionBlockAttention: ['full', 'full'],
    });
  });

  it('is exported from the package root', () => {
    const c: RootModelConfig = readModelConfigFromRoot(join(FIXTURES, 'tiny-a'));
    expect(c.hiddenSize).toBe(64);
  });
});

describe('model config: layouts', () => {
  it('a tiny-b-like nested text_config + rope_parameters config parses to the same flat values as its flat form', () => {
    const flat = parseModelConfig(tinyBFlat());
    const nested = parseModelConfig(tinyBNestedV5());
    expect(flat.layout).toBe('flat');
    expect(nested.layout).toBe('nested');
    expect(withoutSource(nested)).toEqual(withoutSource(flat));
    expect(nested).toMatchObject({
      hiddenSize: 96,
      numHiddenLayers: 3,
      numAttentionHeads: 4,
      numKeyValueHeads: 4,
      headDim: 24,
      kvGroups: 1,
      ropeTheta: 100,
      mropeSection: [3, 4, 5],
      tieWordEmbeddings: false,
      visionDepth: 3,
      visionHiddenSize: 48,
      visionHeadDim: 24,
      visionRotaryFreqs: 6,
      visionIntermediateSize: 80,
      windowUnits: 4,
      visionBlockAttention: ['window', 'full', 'window'],
      mergerHiddenSize: 192,
      outHiddenSize: 96,
      bosTokenId: 495,
      eosTokenIds: [497],
    });
  });

  it('a 4.5x-style nested config (text_config with rope_scaling and rope_theta) equals the flat fixture', () => {
    const raw = fixtureConfigJson('tiny-a');
    const textKeys = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'hidden_act', 'bos_token_id', 'eos_token_id', 'tie_word_embeddings', 'max_position_embeddings'];
    const text: Record<string, unknown> = {};
    const top: Record<string, unknown> = { ...raw };
    for (const k of textKeys) {
      text[k] = raw[k];
      delete top[k];
    }
    const nested = parseModelConfig({ ...top, text_config: text });
    expect(withoutSource(nested)).toEqual(withoutSource(readModelConfig(join(FIXTURES, 'tiny-a'))));
  });

  it('text_config takes precedence over stale top-level text keys', () => {
    const raw = { ...tinyBNestedV5(), hidden_size: 64, num_hidden_layers: 2 };
    const c = parseModelConfig(raw);
    expect(c.hiddenSize).toBe(96);
    expect(c.numHiddenLayers).toBe(3);
  });

  it('applies HF defaults for keys real configs omit', () => {
    const raw = tinyBFlat();
    delete raw.num_key_value_heads; // → MHA
    delete raw.rope_theta; // → 1e6
    delete raw.image_token_id; // → 151655, which must fit the vocabulary
    raw.vocab_size = 151936;
    const vc = raw.vision_config as Record<string, unknown>;
    delete vc.window_size; // → 112
    delete vc.hidden_act; // → silu for Qwen2.5-VL
    const c = parseModelConfig(raw);
    expect(c.numKeyValueHeads).toBe(4);
    expect(c.ropeTheta).toBe(1_000_000);
    expect(c.imageTokenId).toBe(151655);
    expect(c.windowUnits).toBe(4);
    expect(c.visionHiddenAct).toBe('silu');
  });
});

describe('model config: errors name the file and the field', () => {
  it('missing fields', () => {
    const raw = tinyBFlat();
    delete raw.hidden_size;
    let e = configError(raw);
    expect(e.field).toBe('hidden_size');
    expect(e.message).toMatch(/hidden_size: missing required field/);

    const nested = tinyBNestedV5();
    delete (nested.text_config as Record<string, unknown>).num_hidden_layers;
    e = configError(nested);
    expect(e.field).toBe('text_config.num_hidden_layers');

    const noDepth = tinyBFlat();
    delete (noDepth.vision_config as Record<string, unknown>).depth;
    expect(configError(noDepth).field).toBe('vision_config.depth');

    const noVision = tinyBFlat();
    delete noVision.vision_config;
    expect(configError(noVision).field).toBe('vision_config');

    const noMrope = tinyBFlat();
    noMrope.rope_scaling = { type: 'mrope' };
    expect(configError(noMrope).field).toBe('rope_scaling.mrope_section');

    const noType = tinyBFlat();
    delete noType.model_type;
    expect(configError(noType).field).toBe('model_type');
  });

  it('unsupported model types', () => {
    const e = configError({ ...tinyBFlat(), model_type: 'llama' });
    expect(e.field).toBe('model_type');
    expect(e.message).toContain('"llama"');
    expect(e.message).toMatch(/qwen2_vl.*qwen2_5_vl/);
    expect(configError({ ...tinyBFlat(), model_type: 'qwen2_vl' }).field).toBe('architectures');
  });

  it('mrope sections that do not sum to head_dim / 2', () => {
    const e = configError({ ...tinyBFlat(), rope_scaling: { type: 'mrope', mrope_section: [3, 4, 4] } });
    expect(e.field).toBe('rope_scaling.mrope_section');
    expect(e.message).toContain('sums to 11');
    expect(e.message).toContain('head_dim / 2 = 12');
    const nested = tinyBNestedV5();
    (nested.text_config as Record<string, Record<string, unknown>>).rope_parameters!.mrope_section = [4, 4, 5];
    expect(configError(nested).field).toBe('text_config.rope_parameters.mrope_section');
    expect(configError({ ...tinyBFlat(), rope_scaling: { type: 'mrope', mrope_section: [6, 6] } }).message).toContain('expected 3 sections');
  });

  it('wrong types', () => {
    let e = configError({ ...tinyBFlat(), hidden_size: '96' });
    expect(e.field).toBe('hidden_size');
    expect(e.message).toContain('"96"');
    e = configError({ ...tinyBFlat(), num_attention_heads: 4.5 });
    expect(e.field).toBe('num_attention_heads');
    e = configError({ ...tinyBFlat(), tie_word_embeddings: 'yes' });
    expect(e.field).toBe('tie_word_embeddings');
    const v = tinyBFlat();
    (v.vision_config as Record<string, unknown>).fullatt_block_indexes = [1, -2];
    expect(configError(v).field).toBe('vision_config.fullatt_block_indexes.1');
    expect(configError([1, 2]).message).toContain('expected a JSON object');
  });

  it('inconsistent values', () => {
    expect(configError({ ...tinyBFlat(), num_key_value_heads: 3 }).field).toBe('num_key_value_heads');
    expect(configError({ ...tinyBFlat(), num_attention_heads: 5 }).message).toMatch(/hidden_size 96 is not divisible by num_attention_heads 5/);
    expect(configError({ ...tinyBFlat(), head_dim: 32 }).field).toBe('head_dim');
    expect(configError({ ...tinyBFlat(), image_token_id: 512 }).message).toMatch(/image_token_id: token id 512 is outside the vocabulary \(vocab_size 512\)/);
    expect(configError({ ...tinyBFlat(), video_token_id: 500 }).message).toMatch(/also image_token_id/);
    expect(configError({ ...tinyBFlat(), rope_scaling: { rope_type: 'yarn', mrope_section: [3, 4, 5] } }).field).toBe('rope_scaling.rope_type');
    expect(configError({ ...tinyBFlat(), use_sliding_window: true }).field).toBe('use_sliding_window');
    expect(configError({ ...tinyBFlat(), hidden_act: 'relu6' }).message).toContain('unsupported activation "relu6"');
    const b = tinyBFlat();
    (b.vision_config as Record<string, unknown>).fullatt_block_indexes = [1, 3];
    expect(configError(b).message).toMatch(/block 3 does not exist \(depth 3\)/);
    const o = tinyBFlat();
    (o.vision_config as Record<string, unknown>).out_hidden_size = 64;
    expect(configError(o).field).toBe('vision_config.out_hidden_size');
    const h = tinyBFlat();
    (h.vision_config as Record<string, unknown>).num_heads = 8; // 48 / 8 = 6, not a multiple of 4
    expect(configError(h).message).toMatch(/vision head dim 6 must be a multiple of 4/);
    const w = tinyBFlat();
    (w.vision_config as Record<string, unknown>).window_size = 20;
    expect(configError(w).field).toBe('vision_config.window_size');
    const theta = tinyBNestedV5();
    (theta.text_config as Record<string, unknown>).rope_theta = 1000;
    expect(configError(theta).message).toMatch(/contradicts text_config.rope_parameters.rope_theta 100/);
  });

  it('folders and files', () => {
    const empty = tempDir();
    let e = thrown(() => readModelConfig(empty));
    expect(e).toBeInstanceOf(ModelConfigError);
    expect(e.message).toContain(`not a model folder: ${empty} has no readable config.json`);
    expect(thrown(() => readModelConfig(join(empty, 'nope'))).message).toContain('no such file or folder');
    const bad = join(empty, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'config.json'), '{"model_type": "qwen2_5_vl",');
    e = thrown(() => readModelConfig(bad));
    expect(e.message).toContain(join(bad, 'config.json'));
    expect(e.message).toContain('invalid JSON');
  });
});

describe('generation config', () => {
  const model = readModelConfig(join(FIXTURES, 'tiny-a'));

  it('reads the Qwen2.5-VL-style file', () => {
    const d = tempDir();
    writeFileSync(
      join(d, 'generation_config.json'),
      JSON.stringify({ bos_token_id: 495, pad_token_id: 495, do_sample: true, eos_token_id: [497, 495], repetition_penalty: 1.05, temperature: 0.1, top_k: 1, top_p: 0.001, transformers_version: '4.49.0' }),
    );
    expect(readGenerationConfig(d, model)).toEqual({
      file: join(d, 'generation_config.json'),
      doSample: true,
      temperature: 0.1,
      topK: 1,
      topP: 0.001,
      repetitionPenalty: 1.05,
      maxNewTokens: null,
      maxLength: null,
      bosTokenId: 495,
      padTokenId: 495,
      eosTokenIds: [497, 495],
    });
  });

  it('defaults to HF values and config.json ids when the file is absent', () => {
    const g = readGenerationConfig(tempDir(), model);
    expect(g).toMatchObject({ file: null, doSample: false, temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1, bosTokenId: 495, eosTokenIds: [497] });
  });

  it('rejects bad values naming the field', () => {
    let e = thrown(() => parseGenerationConfig({ top_p: 0 }, 'g.json'));
    expect(e).toBeInstanceOf(ModelConfigError);
    expect((e as ModelConfigError).field).toBe('top_p');
    e = thrown(() => parseGenerationConfig({ temperature: -1 }, 'g.json'));
    expect((e as ModelConfigError).field).toBe('temperature');
    e = thrown(() => parseGenerationConfig({ eos_token_id: [497, 600] }, 'g.json', model));
    expect(e.message).toMatch(/g\.json: eos_token_id: token id 600 is outside the vocabulary/);
  });
});
