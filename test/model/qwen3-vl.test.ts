// Dense Qwen3-VL against the fixtures of test/reference/qwen3_vl_reference.py (an independent float64 PyTorch
// reading of HF modeling_qwen3_vl.py): config parsing, weight names, get_rope_index, vision tower output, logits,
// completion log-probs, every parameter gradient and greedy generation, in fp32 with the tolerances of
// model-fixtures.test.ts. Also: MoE is rejected with a clear error, the Qwen3-VL image processor (patch 16 → resize
// factor 32, mean/std from preprocessor_config.json), and videos (fixture case "video": a [2, 4, 4] video written as
// two timestamped one-frame runs, then an image; encode() writes HF Qwen3VLProcessor's timestamp text).
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, LORA_TEXT_TARGETS, mergeLoraInto, type VlmModel } from '../../src/index.js';
import { expectedWeights, getRopeIndex, parseModelConfig, readSafetensors, type LoadedTensor } from '../../src/model/index.js';
import { preprocessImages } from '../../src/processor/image.js';
import { smartResize } from '../../src/processor/smart-resize.js';
import { expandImageTokenIds } from '../../src/processor/chat-template.js';
import { tinyTokenizer, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { cleanupTempDirs, completionTargets, expectClose, expectGradientsMatch, FIXTURES, ints, maxAbs, rng, tempDir, thrown } from './fixtures.js';

const DIR = join(FIXTURES, 'tiny-q3vl');
const expectedTensors: Map<string, LoadedTensor> = readSafetensors(join(DIR, 'expected.safetensors'));
const inputs = JSON.parse(readFileSync(join(DIR, 'inputs.json'), 'utf8'));
const configJson = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Record<string, any>;

function t(key: string): LoadedTensor {
  const x = expectedTensors.get(key);
  if (!x) throw new Error(`tiny-q3vl/expected.safetensors has no ${key}`);
  return x;
}
const f32 = (key: string): Float32Array => t(key).data as Float32Array;
const grid = (g: number[][]) => g.map((x) => [x[0]!, x[1]!, x[2]!] as const);

const withConfig = (patch: (c: any) => void): Record<string, unknown> => {
  const c = structuredClone(configJson);
  patch(c);
  return c;
};

describe('Qwen3-VL config, weights and rope index', () => {
  it('parses the nested qwen3_vl config (explicit head_dim, interleaved M-RoPE, deepstack, patch 16)', () => {
    const c = parseModelConfig(configJson, 'tiny-q3vl/config.json');
    expect(c.modelType).toBe('qwen3_vl');
    expect([c.headDim, c.qSize, c.kvSize, c.hiddenSize]).toEqual([24, 96, 48, 64]);
    expect(c.mropeInterleaved).toBe(true);
    expect(c.qkNorm).toBe(true);
    expect(c.attentionBias).toBe(false);
    expect(c.deepstackVisualIndexes).toEqual([0, 1]);
    expect(c.numPositionEmbeddings).toBe(16);
    expect([c.patchSize, c.windowed, c.visionNormKind, c.visionMlpKind, c.visionHiddenAct]).toEqual([16, false, 'layernorm', 'fc', 'gelu_tanh']);
    expect(c.visionBlockAttention).toEqual(['full', 'full', 'full']);
  });

  it('rejects MoE checkpoints, attention biases, a non-square position table and out-of-range deepstack blocks', () => {
    expect(thrown(() => parseModelConfig(withConfig((c) => { c.model_type = 'qwen3_vl_moe'; }))).message).toMatch(/mixture-of-experts .* not supported/);
    expect(thrown(() => parseModelConfig(withConfig((c) => { c.architectures = ['Qwen3VLMoeForConditionalGeneration']; }))).message).toMatch(/mixture-of-experts/);
    expect(thrown(() => parseModelConfig(withConfig((c) => { c.text_config.attention_bias = true; }))).message).toMatch(/text_config\.attention_bias: Qwen3-VL with attention biases/);
    expect(thrown(() => parseModelConfig(withConfig((c) => { c.vision_config.num_position_embeddings = 15; }))).message).toMatch(/num_position_embeddings: 15 is not a square/);
    expect(thrown(() => parseModelConfig(withConfig((c) => { c.vision_config.deepstack_visual_indexes = [0, 3]; }))).message).toMatch(/block 3 does not exist \(depth 3\)/);
    expect(thrown(() => parseModelConfig(withConfig((c) => { c.text_config.rope_scaling.mrope_section = [4, 4, 3]; }))).message).toMatch(/sums to 11, but must sum to head_dim \/ 2 = 12/);
    // Interleaved M-RoPE stays a Qwen3-VL feature.
    const q2 = JSON.parse(readFileSync(join(FIXTURES, 'tiny-q2vl', 'config.json'), 'utf8'));
    q2.rope_scaling.mrope_interleaved = true;
    expect(thrown(() => parseModelConfig(q2)).message).toMatch(/interleaved M-RoPE is a Qwen3-VL feature/);
  });

  it('expects exactly the tensors of the Qwen3-VL checkpoint (canonical names)', () => {
    const c = parseModelConfig(configJson);
    const names = expectedWeights(c).map((w) => w.name).sort();
    const file = [...readSafetensors(join(DIR, 'model.safetensors')).keys()]
      .map((n) => n.replace(/^model\.language_model\./, 'model.').replace(/^model\.visual\./, 'visual.')).sort();
    expect(names).toEqual(file);
    expect(names).toContain('visual.deepstack_merger_list.1.linear_fc2.bias');
    expect(names).toContain('model.layers.1.self_attn.k_norm.weight');
    expect(names).not.toContain('model.layers.0.self_attn.q_proj.bias');
  });

  it('get_rope_index matches the reference (one image; two images of different grids)', () => {
    const c = parseModelConfig(configJson);
    for (const key of ['single', 'multi'] as const) {
      const ids = ints(t(`${key}.input_ids`));
      const r = getRopeIndex(c, { inputIds: ids, imageGridThw: inputs.cases[key].image_grid_thw });
      expect(Array.from(r.positionIds), key).toEqual(ints(t(`${key}.positions`)));
    }
  });

  it('splits a video grid into one-frame grids (Qwen3-VL timestamps layout)', () => {
    const c = parseModelConfig(configJson);
    const run = [498, ...Array(4).fill(501), 499];
    const ids = [1, ...run, 7, 8, ...run, 9];  // two frames of a [2, 4, 4] video, text (the timestamp) between
    const r = getRopeIndex(c, { inputIds: ids, videoGridThw: [[2, 4, 4]] });
    // Each frame is its own [1, 4, 4] grid: frame 1 at base 2 (t 2, h/w 2..3), the 4 text tokens 4..7, frame 2 at base 8.
    const T = Array.from(r.positionIds.subarray(0, ids.length));
    const Hh = Array.from(r.positionIds.subarray(ids.length, 2 * ids.length));
    expect(T).toEqual([0, 1, 2, 2, 2, 2, 4, 5, 6, 7, 8, 8, 8, 8, 10, 11]);
    expect(Hh).toEqual([0, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 11]);
    expect(thrown(() => getRopeIndex(c, { inputIds: ids, videoGridThw: [[1, 4, 4]] })).message).toMatch(/videoGridThw has 1 grids, but inputIds row 0 holds video 2 of 2/);
  });

  it('get_rope_index of the video case matches the reference and a hand count', () => {
    const c = parseModelConfig(configJson);
    const v = inputs.cases.video;
    const ids = ints(t('video.input_ids'));
    const r = getRopeIndex(c, { inputIds: ids, imageGridThw: v.image_grid_thw, videoGridThw: v.video_grid_thw });
    expect(Array.from(r.positionIds)).toEqual(ints(t('video.positions')));
    // By hand: <im_start> 10 "<0.2 seconds>"(3 ids) <vs> → 0..5; frame 1 (2×2 tokens) at base 6; <ve> "<1.2 seconds>" <vs>
    // → 8..12; frame 2 at base 13 (no temporal offset: time is in the text); <ve> 11 <vs> → 15..17; the image
    // (2×3 tokens) at base 18 (w up to 20); the 8 tokens after it → 21..28.
    const n = ids.length;
    const T = Array.from(r.positionIds.subarray(0, n));
    const W = Array.from(r.positionIds.subarray(2 * n, 3 * n));
    expect(T).toEqual([0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 8, 9, 10, 11, 12, 13, 13, 13, 13, 15, 16, 17, 18, 18, 18, 18, 18, 18, 21, 22, 23, 24, 25, 26, 27, 28]);
    expect(W.slice(6, 10)).toEqual([6, 7, 6, 7]);
    expect(W.slice(22, 28)).toEqual([18, 19, 20, 18, 19, 20]);
    expect(r.ropeDeltas[0]).toBe(29 - n);
  });
});

describe('Qwen3-VL model vs the reference fixtures', () => {
  let model: VlmModel;
  beforeAll(async () => {
    model = await loadModel(DIR);
  });
  afterAll(async () => {
    await model.dispose();
    cleanupTempDirs();
  });

  it('vision tower output (merger) matches', async () => {
    const packed = model.pack([{ inputIds: Int32Array.from(ints(t('single.input_ids'))), pixelValues: f32('single.pixel_values'), imageGridThw: grid(inputs.cases.single.image_grid_thw) }]);
    const out = await model.handle.forward({ ...packed });
    expectClose(out.imageEmbeds!, f32('single.image_embeds'), 'image embeds');
  });

  it('logits and completion log-probs: one image, and two images of different grids', async () => {
    for (const key of ['single', 'multi'] as const) {
      const c = inputs.cases[key];
      const inputIds = Int32Array.from(ints(t(`${key}.input_ids`)));
      const targets = completionTargets(inputIds, c.completion_start, c.completion_length);
      const out = await model.forward({ inputIds, pixelValues: f32(`${key}.pixel_values`), imageGridThw: grid(c.image_grid_thw), targets, returnLogits: true });
      expectClose(out.logits!, f32(`${key}.logits`), `${key} logits`);
      expectClose(out.logprobs!.slice(c.completion_start - 1, c.completion_start - 1 + c.completion_length), f32(`${key}.completion_logprobs`), `${key} log-probs`);
    }
  });

  it('gradients of every parameter match (relative L2 ≤ 1e-4, max ≤ 2e-4·max|ref|)', async () => {
    const c = inputs.cases.single;
    const inputIds = Int32Array.from(ints(t('single.input_ids')));
    const targets = completionTargets(inputIds, c.completion_start, c.completion_length);
    await model.forwardBatch([{ inputIds, pixelValues: f32('single.pixel_values'), imageGridThw: grid(c.image_grid_thw), targets }], { keepForBackward: true });
    model.zeroGrads();
    const grad = new Float32Array(inputIds.length);
    for (let n = 0; n < targets.length; n++) if (targets[n]! >= 0) grad[n] = -1;  // loss = −Σ completion log-probs
    await model.backward({ gradLogprobs: grad });
    const g = model.gradients();
    expect(expectGradientsMatch(g, model.layout(), (name) => f32(`single.grad.${name}`))).toBeGreaterThan(60);
  });

  it('greedy KV-cached generation equals the reference tokens', async () => {
    const c = inputs.cases.generate;
    const inputIds = Int32Array.from(ints(t('generate.input_ids')));
    const [g] = await model.generate({ inputIds, pixelValues: f32('single.pixel_values'), imageGridThw: grid(c.image_grid_thw) }, { maxNewTokens: c.max_new_tokens, temperature: 0, stopIds: [] });
    expect(Array.from(g!.tokens)).toEqual(c.tokens);
  });

  const videoInput = () => {
    const v = inputs.cases.video;
    const inputIds = Int32Array.from(ints(t('video.input_ids')));
    return {
      v, inputIds, targets: completionTargets(inputIds, v.completion_start, v.completion_length),
      input: { inputIds, pixelValues: f32('video.pixel_values'), imageGridThw: grid(v.image_grid_thw),
        pixelValuesVideos: f32('video.pixel_values_videos'), videoGridThw: grid(v.video_grid_thw) },
    };
  };

  it('video then image: video features, logits and completion log-probs match', async () => {
    const { v, input, targets } = videoInput();
    const packed = model.pack([input]);
    expect(Array.from(packed.positions)).toEqual(ints(t('video.positions')));
    const emb = (await model.handle.forward({ ...packed })).imageEmbeds!;
    expectClose(emb.subarray(6 * 64), f32('video.video_embeds'), 'video embeds (rows after the image\'s 6)');
    const out = await model.forward({ ...input, targets, returnLogits: true });
    expectClose(out.logits!, f32('video.logits'), 'video logits');
    expectClose(out.logprobs!.slice(v.completion_start - 1, v.completion_start - 1 + v.completion_length), f32('video.completion_logprobs'), 'video log-probs');
    // Not vacuous: other video pixels change the logits.
    const other = await model.forward({ ...input, pixelValuesVideos: input.pixelValuesVideos.map((x) => -x), returnLogits: true });
    let d = 0;
    for (let i = 0; i < other.logits!.length; i++) d = Math.max(d, Math.abs(other.logits![i]! - out.logits![i]!));
    expect(d).toBeGreaterThan(1e-3);
  });

  it('video case: gradients of every parameter match (relative L2 ≤ 1e-4, max ≤ 2e-4·max|ref|)', async () => {
    const { input, targets } = videoInput();
    await model.forwardBatch([{ ...input, targets }], { keepForBackward: true });
    model.zeroGrads();
    const grad = new Float32Array(input.inputIds.length);
    for (let n = 0; n < targets.length; n++) if (targets[n]! >= 0) grad[n] = -1;
    await model.backward({ gradLogprobs: grad });
    const g = model.gradients();
    expect(expectGradientsMatch(g, model.layout(), (name) => f32(`video.grad.${name}`))).toBeGreaterThan(60);
  });

  it('encode(): a video becomes one "<t seconds>" + vision_start … video_pad … vision_end run per temporal step', async () => {
    const d = tempDir();
    for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) copyFileSync(join(DIR, f), join(d, f));
    writeTinyTokenizer(d, tinyTokenizer());
    const r = rng(93);
    const frames: string[] = [];
    for (let i = 0; i < 4; i++) {
      const px = Buffer.from(Array.from({ length: 64 * 64 * 3 }, () => Math.floor(r() * 256)));
      const f = join(d, `f${i}.png`);
      writeFileSync(f, await sharp(px, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer());
      frames.push(f);
    }
    const m = await loadModel(d);
    try {
      const enc = await m.encode({
        messages: [{ role: 'user', content: [{ type: 'video' }, { type: 'image' }, { type: 'text', text: 'hello' }] }],
        images: [frames[0]!],
        videos: [frames],
        videoOptions: { minPixels: 4096, maxPixels: 4096, fps: 2 },
      });
      // 4 frames at 2 fps: times 0, 0.5, 1, 1.5 → per temporal pair (0 + 0.5)/2 = 0.25 → "0.2" (Python rounds the tie
      // to even), (1 + 1.5)/2 = 1.25 → "1.2"; grid [2, 4, 4] → 4 pads per frame.
      expect(enc.videoGridThw).toEqual([[2, 4, 4]]);
      const triple = '<|vision_start|><|video_pad|><|vision_end|>';
      expect(enc.text).toContain(triple);
      const run = '<|vision_start|>' + '<|video_pad|>'.repeat(4) + '<|vision_end|>';
      const want = expandImageTokenIds(m.tokenizer.encode(enc.text.replace(triple, `<0.2 seconds>${run}<1.2 seconds>${run}`)), enc.imageGridThw, 500, 2);
      expect(Array.from(enc.inputIds)).toEqual(want);
      expect(m.tokenizer.decode(Array.from(enc.inputIds))).toContain(`<0.2 seconds>${run}<1.2 seconds>${run}<|vision_start|><|image_pad|>`);
      const out = await m.forward({ ...enc, returnLogits: true });
      expect(out.logits!.length).toBe(enc.inputIds.length * 512);
      expect(out.logits!.every(Number.isFinite)).toBe(true);
    } finally {
      await m.dispose();
    }
  });

  it('image processor: patch 16 (resize factor 32) and mean/std 0.5 from preprocessor_config.json', async () => {
    expect([model.preprocessor.patchSize, model.preprocessor.imageMean[0], model.preprocessor.minPixels]).toEqual([16, 0.5, 65536]);
    const png = await sharp({ create: { width: 100, height: 70, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toBuffer();
    const pre = await preprocessImages([new Uint8Array(png)], model.preprocessor);
    const s = smartResize(70, 100, { factor: 32, minPixels: 65536, maxPixels: 16777216 });
    expect(pre.imageGridThw[0]).toEqual([1, s.height / 16, s.width / 16]);
    expect(s.height % 32 === 0 && s.width % 32 === 0).toBe(true);
    expect(pre.pixelValues.length).toBe((s.height / 16) * (s.width / 16) * 1536);
    expect(pre.pixelValues[0]).toBeCloseTo((10 / 255 - 0.5) / 0.5, 5);  // first row: red channel of a flat image
  });
});

describe('Qwen3-VL with LoRA adapters on the text decoder', () => {
  it('adapters change the logits, merge into a loadable folder with the same logits, and receive gradients', async () => {
    const model = await loadModel(DIR);
    try {
      const c = inputs.cases.single;
      const inputIds = Int32Array.from(ints(t('single.input_ids')));
      const input = { inputIds, pixelValues: f32('single.pixel_values'), imageGridThw: grid(c.image_grid_thw) };
      const base = (await model.forward({ ...input, returnLogits: true })).logits!.slice();
      const cfg = await model.enableLora({ r: 4, alpha: 8, targetModules: LORA_TEXT_TARGETS, seed: 9 });
      const layers = Number(configJson.text_config.num_hidden_layers);
      expect(cfg.modules).toHaveLength(7 * layers);
      // B starts at zero (the base model exactly); random B makes the adapters matter.
      expect((await model.forward({ ...input, returnLogits: true })).logits!).toEqual(base);
      const r = rng(10);
      const p = model.loraParameters();
      for (const l of model.loraLayout()) if (l.kind === 'B') for (let i = 0; i < l.numel; i++) p[l.offset + i] = r() - 0.5;
      const adapted = (await model.forward({ ...input, returnLogits: true })).logits!.slice();
      expect(maxAbs(adapted.map((v, i) => v - base[i]!))).toBeGreaterThan(1e-3);
      const merged = join(tempDir(), 'merged');
      await mergeLoraInto(model, merged);
      const m = await loadModel(merged);
      try {
        const got = (await m.forward({ ...input, returnLogits: true })).logits!;
        expectClose(got, adapted, 'merged-LoRA logits');
      } finally {
        await m.dispose();
      }
      // Backward reaches the adapters (and only them: the base gradient buffer stays zero).
      const targets = completionTargets(inputIds, c.completion_start, c.completion_length);
      const g = new Float32Array(targets.length);
      for (let i = 0; i < g.length; i++) if (targets[i]! >= 0) g[i] = -1;
      model.zeroGrads();
      await model.forwardBatch([{ ...input, targets }], { keepForBackward: true });
      await model.backward({ gradLogprobs: g });
      expect(maxAbs(model.loraGradients())).toBeGreaterThan(0);
      expect(maxAbs(model.gradients())).toBe(0);
    } finally {
      await model.dispose();
    }
  });
});
