// loadModel / VlmModel behaviour beyond the fixtures: generation properties (greedy = argmax chain of full
// forwards, seeded sampling, log-probs equal a forward recompute, batch independence), encode() with a
// tokenizer and images, bf16 checkpoints, the event loop staying free, dispose, and bad folders.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type ModelInput, type VlmModel } from '../../src/index.js';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.js';
import { tinyTokenizer, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { cleanupTempDirs, FIXTURES, inputsJson, ints, tempDir, tensor } from './fixtures.js';

const dir = join(FIXTURES, 'tiny-a');
let model: VlmModel;
let prompt: ModelInput;

beforeAll(async () => {
  model = await loadModel(dir);
  const c = inputsJson('tiny-a').cases.generate;
  prompt = {
    inputIds: Int32Array.from(ints(tensor('tiny-a', 'generate.input_ids'))),
    pixelValues: tensor('tiny-a', 'single.pixel_values').data as Float32Array,
    imageGridThw: [[1, c.image_grid_thw[0][1], c.image_grid_thw[0][2]]],
  };
});
afterAll(async () => {
  await model.dispose();
  cleanupTempDirs();
});

function concat(a: Int32Array, b: ArrayLike<number>): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(Array.from(b), a.length);
  return out;
}

describe('generation', () => {
  it('greedy output equals the argmax chain of repeated full forwards', async () => {
    const [g] = await model.generate(prompt, { maxNewTokens: 5, temperature: 0, stopIds: [] });
    let ids = prompt.inputIds;
    const V = model.config.vocabSize;
    for (let step = 0; step < 5; step++) {
      const out = await model.forward({ ...prompt, inputIds: ids, returnLogits: true });
      const last = out.logits!.subarray((ids.length - 1) * V, ids.length * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (last[j]! > last[best]!) best = j;
      expect(g!.tokens[step]).toBe(best);
      ids = concat(ids, [best]);
    }
  });

  it('sampling is reproducible by seed, differs across seeds, and its log-probs equal a forward recompute', async () => {
    const opts = { maxNewTokens: 6, temperature: 1.3, topP: 0.95, numSamples: 4, stopIds: [] as number[] };
    const a = await model.generate(prompt, { ...opts, seed: 7 });
    const b = await model.generate(prompt, { ...opts, seed: 7 });
    const c = await model.generate(prompt, { ...opts, seed: 8 });
    expect(a.map((x) => Array.from(x.tokens))).toEqual(b.map((x) => Array.from(x.tokens)));
    expect(a.map((x) => Array.from(x.tokens))).not.toEqual(c.map((x) => Array.from(x.tokens)));
    expect(new Set(a.map((x) => x.tokens.join(','))).size).toBeGreaterThan(1);  // samples of one prompt differ
    for (const s of a) {
      const ids = concat(prompt.inputIds, s.tokens);
      const targets = new Int32Array(ids.length).fill(-1);
      for (let j = 0; j < s.tokens.length; j++) targets[prompt.inputIds.length - 1 + j] = s.tokens[j]!;
      const out = await model.forward({ ...prompt, inputIds: ids, targets, temperature: 1.3 });
      for (let j = 0; j < s.tokens.length; j++) {
        expect(Math.abs(out.logprobs![prompt.inputIds.length - 1 + j]! - s.logprobs[j]!)).toBeLessThan(1e-4);
      }
    }
  });

  it("a sample does not depend on the other prompts in the batch", async () => {
    const other: ModelInput = { inputIds: Int32Array.from([496, 14, 13, 80, 81, 497, 13, 496, 15, 13]) };
    const opts = { maxNewTokens: 5, temperature: 1, numSamples: 2, seed: 3, stopIds: [] as number[] };
    const alone = await model.generate(prompt, { ...opts, sequenceIdBase: 2 });
    const batched = await model.generate([other, prompt], opts);  // prompt 1 -> sequence ids 2, 3
    expect(batched.slice(2).map((x) => Array.from(x.tokens))).toEqual(alone.map((x) => Array.from(x.tokens)));
    expect(batched.map((x) => x.prompt)).toEqual([0, 0, 1, 1]);
  });

  it('never samples vision special tokens', async () => {
    const gens = await model.generate(prompt, { maxNewTokens: 12, temperature: 3, numSamples: 8, seed: 1, stopIds: [] });
    for (const g of gens) for (const t of g.tokens) expect([498, 499, 500, 501]).not.toContain(t);
  });

  it('keeps the event loop free while it works', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = Date.now();
    await model.generate(prompt, { maxNewTokens: 64, temperature: 1, numSamples: 16, seed: 2, stopIds: [] });
    const ms = Date.now() - t0;
    clearInterval(timer);
    // A blocked loop would tick ~0 times; allow for a loaded machine.
    expect(ticks).toBeGreaterThan(Math.min(10, ms / 20));
  });

  it('text without a tokenizer is a clear error', async () => {
    const [g] = await model.generate(prompt, { maxNewTokens: 2, temperature: 0 });
    expect(() => g!.text).toThrow(/tokenizer\.json/);
    await expect(model.encode({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toThrow(/tokenizer\.json/);
  });
});

describe('model folders', () => {
  it('encode() renders the chat template, expands image pads from the grid, and decodes text', async () => {
    const d = tempDir();
    for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) copyFileSync(join(dir, f), join(d, f));
    writeTinyTokenizer(d, tinyTokenizer());
    const m = await loadModel(d);
    try {
      const enc = await m.encode({
        messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'hello world' }] }],
        images: [join(dir, 'image1.png')],
      });
      expect(enc.imageGridThw).toEqual([[1, 6, 8]]);
      expect(enc.pixelValues).toEqual(tensor('tiny-a', 'image1.pixel_values').data);
      expect(Array.from(enc.inputIds).filter((t) => t === 500)).toHaveLength(12);
      expect(enc.text).toContain('<|im_start|>assistant\n');
      const gens = await m.generate(enc, { maxNewTokens: 4, temperature: 0, stopIds: [] });
      expect(typeof gens[0]!.text).toBe('string');
    } finally {
      await m.dispose();
    }
  });

  it('a bf16 checkpoint loads and gives logits within bf16 rounding of the fp32 model', async () => {
    const d = tempDir();
    for (const f of ['config.json', 'preprocessor_config.json']) copyFileSync(join(dir, f), join(d, f));
    const src = readSafetensors(join(dir, 'model.safetensors'));
    const out: Record<string, { dtype: 'BF16'; shape: readonly number[]; data: Float32Array }> = {};
    for (const [k, t] of src) out[k] = { dtype: 'BF16', shape: t.shape, data: t.data as Float32Array };
    writeSafetensors(join(d, 'model.safetensors'), out);
    const m = await loadModel(d);
    try {
      const a = await model.forward({ ...prompt, returnLogits: true });
      const b = await m.forward({ ...prompt, returnLogits: true });
      let worst = 0, scale = 0;
      for (let i = 0; i < a.logits!.length; i++) {
        worst = Math.max(worst, Math.abs(a.logits![i]! - b.logits![i]!));
        scale = Math.max(scale, Math.abs(a.logits![i]!));
      }
      expect(worst).toBeGreaterThan(0);         // it really was rounded
      expect(worst).toBeLessThan(0.05 * scale);  // and still the same model
    } finally {
      await m.dispose();
    }
  });

  it('a folder that is not a model, and a truncated weights file, fail naming the file', async () => {
    await expect(loadModel(tempDir())).rejects.toThrow(/config\.json/);
    const d = tempDir();
    copyFileSync(join(dir, 'config.json'), join(d, 'config.json'));
    const bytes = readFileSync(join(dir, 'model.safetensors'));
    writeFileSync(join(d, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
    await expect(loadModel(d)).rejects.toThrow(/model\.safetensors[\s\S]*(truncated|missing|ends)/i);
  });

  it('dispose is idempotent, later calls fail clearly, and parameter views stay readable', async () => {
    const m = await loadModel(dir);
    const params = m.parameters();
    const first = params[0];
    await m.dispose();
    await m.dispose();
    expect(params[0]).toBe(first);  // the view keeps the native memory alive
    await expect(m.forward({ inputIds: Int32Array.from([1, 2, 3]) })).rejects.toThrow(/disposed/);
    expect(() => m.parameters()).toThrow(/disposed/);
  });
});
