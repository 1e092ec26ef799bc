// The tiny Qwen2.5-VL model folder: config sizes and special ids consistent with the tokenizer, every tensor the
// config implies with HF's initialisation statistics, byte-for-byte determinism by seed, and loading through
// loadModel (same path as a Hub checkpoint) to encode a generated image and generate.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { writeCountingDataset } from '../../src/demo/synth-counting.js';
import { writeTinyModel, type TinyModelResult } from '../../src/demo/tiny-model.js';
import { buildTaskTokenizer, countingCorpus } from '../../src/demo/tokenizer.js';
import { readModelConfig } from '../../src/model/config.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { expectedWeights } from '../../src/model/weights.js';
import { loadModel, type VlmModel } from '../../src/model/vlm-model.js';
import { tempDir } from '../data/helpers.js';

const { dir: root, cleanup } = tempDir('vg-demo-model-');
let demo: TinyModelResult;
let model: VlmModel;

beforeAll(async () => {
  demo = await writeTinyModel({ outDir: path.join(root, 'demo'), seed: 7 });
  model = await loadModel(demo.dir);
});
afterAll(async () => {
  await model?.dispose();
  cleanup();
});

describe('writeTinyModel', () => {
  it('writes a qwen2_5_vl config with the demo sizes and the tokenizer’s vocabulary and special ids', () => {
    const c = readModelConfig(demo.dir);
    expect(c.modelType).toBe('qwen2_5_vl');
    expect(c.layout).toBe('flat');
    expect([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.intermediateSize]).toEqual([128, 4, 4, 2, 32, 352]);
    expect([c.visionDepth, c.visionHiddenSize, c.visionNumHeads, c.visionHeadDim, c.visionIntermediateSize]).toEqual([2, 128, 4, 32, 256]);
    expect([c.patchSize, c.spatialMergeSize, c.windowSize, c.windowUnits]).toEqual([14, 2, 56, 2]);
    expect(c.visionBlockAttention).toEqual(['window', 'full']);
    expect(c.outHiddenSize).toBe(128);
    expect(c.tieWordEmbeddings).toBe(true);
    const tok = model.tokenizer;
    expect(c.vocabSize).toBe(tok.vocabSize);
    expect(c.vocabSize).toBe(demo.vocabSize);
    expect(c.imageTokenId).toBe(tok.tokenToId('<|image_pad|>'));
    expect(c.videoTokenId).toBe(tok.tokenToId('<|video_pad|>'));
    expect(c.visionStartTokenId).toBe(tok.tokenToId('<|vision_start|>'));
    expect(c.visionEndTokenId).toBe(tok.tokenToId('<|vision_end|>'));
    expect(c.eosTokenIds).toEqual([tok.tokenToId('<|im_end|>')]);
    expect(model.generationConfig.eosTokenIds).toEqual([tok.specialTokens.imEnd]);
    expect(model.generationConfig.doSample).toBe(false);
    expect(model.chatTemplate.source).toMatch(/tokenizer_config\.json/);
    expect(model.preprocessor.maxPixels).toBeGreaterThanOrEqual(224 * 224);
    expect(model.preprocessor.minPixels).toBeLessThanOrEqual(84 * 84);
  });

  it('writes every tensor the config implies, initialised like HF: N(0, 0.02) weights, zero biases, unit norms', () => {
    const tensors = readSafetensors(path.join(demo.dir, 'model.safetensors'));
    const expected = expectedWeights(readModelConfig(demo.dir));
    expect([...tensors.keys()].sort()).toEqual(expected.map((e) => e.name).sort());
    let total = 0;
    let sum = 0;
    let sumSq = 0;
    for (const e of expected) {
      const t = tensors.get(e.name)!;
      expect(t.dtype).toBe('F32');
      expect(t.shape).toEqual(e.shape);
      const d = t.data as Float32Array;
      total += d.length;
      if (/norm[12]?\.weight$|ln_q\.weight$|layernorm\.weight$/.test(e.name)) expect(d.every((v) => v === 1), e.name).toBe(true);
      else if (e.name.endsWith('.bias')) expect(d.every((v) => v === 0), e.name).toBe(true);
      else {
        let s = 0;
        let s2 = 0;
        for (const v of d) {
          s += v;
          s2 += v * v;
        }
        const mean = s / d.length;
        const std = Math.sqrt(s2 / d.length - mean * mean);
        // n ≥ 4096 per weight here: the sample std is within ~3% of 0.02 (5σ ≈ 5.5% at n = 4096)
        expect(d.length).toBeGreaterThanOrEqual(4096);
        expect(Math.abs(std - 0.02) / 0.02, e.name).toBeLessThan(0.06);
        expect(Math.abs(mean), e.name).toBeLessThan(0.02 * 5 / Math.sqrt(d.length));
        sum += s;
        sumSq += s2;
      }
    }
    expect(total).toBe(demo.parameterCount);
    expect(demo.parameterCount).toBe(model.layout().reduce((n, l) => n + l.numel, 0));
    expect(Math.abs(sum)).toBeGreaterThan(0);
    expect(sumSq).toBeGreaterThan(0);
    console.log(`[demo model] parameters: ${demo.parameterCount} (vocabulary ${demo.vocabSize})`);
  });

  it('is deterministic by seed, and a different seed changes the weights but not the other files', async () => {
    const again = await writeTinyModel({ outDir: path.join(root, 'again'), seed: 7 });
    const other = await writeTinyModel({ outDir: path.join(root, 'other'), seed: 8 });
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'model.safetensors']) {
      expect(readFileSync(path.join(again.dir, f)).equals(readFileSync(path.join(demo.dir, f))), f).toBe(true);
      const same = readFileSync(path.join(other.dir, f)).equals(readFileSync(path.join(demo.dir, f)));
      expect(same, f).toBe(f !== 'model.safetensors');
    }
  });

  it('the test preset is smaller and uses the same tokenizer', async () => {
    const tok = buildTaskTokenizer(countingCorpus());
    const small = await writeTinyModel({ outDir: path.join(root, 'small'), preset: 'test', tokenizer: tok });
    const c = readModelConfig(small.dir);
    expect([c.hiddenSize, c.numHiddenLayers, c.visionHiddenSize]).toEqual([64, 2, 32]);
    expect(c.vocabSize).toBe(tok.vocabSize);
    expect(small.parameterCount).toBeLessThan(demo.parameterCount / 3);
  });

  it('rejects unknown presets and bad seeds', async () => {
    await expect(writeTinyModel({ outDir: path.join(root, 'bad'), preset: 'huge' as never })).rejects.toThrow(/preset/);
    await expect(writeTinyModel({ outDir: path.join(root, 'bad'), seed: -1 })).rejects.toThrow(/seed/);
  });
});

describe('loadModel on the tiny model', () => {
  it('encodes a generated image without resizing and generates; greedy decoding is repeatable', async () => {
    const data = await writeCountingDataset({ outDir: path.join(root, 'data'), train: 2, testId: 0, testOod: 0 });
    const row = JSON.parse(readFileSync(data.splits.train!.jsonl, 'utf8').split('\n')[0]!);
    const question = (row.conversations[0].value as string).replace('<image>', '').trim();
    const enc = await model.encode({
      messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }],
      images: [path.join(data.outDir, row.image)],
    });
    expect(enc.imageGridThw).toEqual([[1, 8, 8]]);
    expect(enc.images[0]).toEqual({ original: { width: 112, height: 112 }, input: { width: 112, height: 112 } });
    expect(enc.inputIds.length).toBeLessThan(50);

    const [g1] = await model.generate(enc, { maxNewTokens: 12, temperature: 0 });
    const [g2] = await model.generate(enc, { maxNewTokens: 12, temperature: 0 });
    expect(Array.from(g1!.tokens)).toEqual(Array.from(g2!.tokens));
    expect(g1!.tokens.length).toBeGreaterThan(0);
    for (const t of g1!.tokens) expect(t >= 0 && t < model.config.vocabSize).toBe(true);
    expect(typeof g1!.text).toBe('string');

    const sampled = await model.generate(enc, { maxNewTokens: 12, temperature: 1, numSamples: 4, seed: 3 });
    expect(sampled).toHaveLength(4);
    expect(new Set(sampled.map((s) => Array.from(s.tokens).join(','))).size).toBeGreaterThan(1);

    // a random init is nearly uniform over the vocabulary: log-probs of the generated tokens ≈ −log(V)
    const mean = sampled.flatMap((s) => Array.from(s.logprobs)).reduce((x, y, _, arr) => x + y / arr.length, 0);
    expect(Math.abs(mean + Math.log(model.config.vocabSize))).toBeLessThan(1);
    const out = await model.forward({ inputIds: enc.inputIds, pixelValues: enc.pixelValues, imageGridThw: enc.imageGridThw, returnLogits: true });
    expect(out.logits!.length).toBe(enc.inputIds.length * model.config.vocabSize);
    expect(out.logits!.every(Number.isFinite)).toBe(true);
  });
});
