// Videos through loadModel / VlmModel on the tiny fixtures: encode() expands video pads from the grids and carries
// second_per_grid_ts; a Qwen2-VL video equals the same tokens written as an image of that grid (same tower rows,
// same positions); packing puts every sequence's features at its own pads; Qwen2.5-VL's temporal positions follow
// second_per_grid_ts; greedy generation on a video prompt equals the argmax chain of full forwards.
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type ModelInput, type VlmModel } from '../../src/index.js';
import { preprocessVideo } from '../../src/processor/video.js';
import { tinyTokenizer, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { cleanupTempDirs, FIXTURES, rng, tempDir } from './fixtures.js';

const VS = 498, VE = 499, IMG = 500, VID = 501;
const budget = { minPixels: 3136, maxPixels: 3136 };  // 56×56 frames stay 56×56: grid [t, 4, 4], 4 tokens per frame pair
let frames: string[] = [];
let q25: VlmModel;
let q2: VlmModel;
let video: Float32Array;

beforeAll(async () => {
  const d = tempDir();
  const r = rng(71);
  frames = [];
  for (let i = 0; i < 4; i++) {
    const px = Buffer.from(Array.from({ length: 56 * 56 * 3 }, () => Math.floor(r() * 256)));
    const f = join(d, `f${i}.png`);
    writeFileSync(f, await sharp(px, { raw: { width: 56, height: 56, channels: 3 } }).png().toBuffer());
    frames.push(f);
  }
  q25 = await loadModel(join(FIXTURES, 'tiny-a'));
  q2 = await loadModel(join(FIXTURES, 'tiny-q2vl'));
  video = (await preprocessVideo(frames, budget)).pixelValuesVideos;  // [2, 4, 4]: 8 video tokens
});
afterAll(async () => {
  await q25.dispose();
  await q2.dispose();
  cleanupTempDirs();
});

// text, a video of grid [2, 4, 4] (8 pads), text
function videoIds(pad = VID): Int32Array {
  return Int32Array.from([496, 14, 13, 80, 81, VS, ...new Array<number>(8).fill(pad), VE, 60, 61, 62, 497, 13, 496, 15, 13]);
}
function videoPrompt(spg?: number[]): ModelInput {
  return { inputIds: videoIds(), pixelValuesVideos: video, videoGridThw: [[2, 4, 4]], ...(spg ? { secondPerGridTs: spg } : {}) };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('videos in the model', () => {
  it('encode() expands video and image pads from their grids and returns second_per_grid_ts', async () => {
    const d = tempDir();
    for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) copyFileSync(join(FIXTURES, 'tiny-a', f), join(d, f));
    writeTinyTokenizer(d, tinyTokenizer());
    const m = await loadModel(d);
    try {
      const enc = await m.encode({
        messages: [{ role: 'user', content: [{ type: 'video' }, { type: 'image' }, { type: 'text', text: 'hello' }] }],
        images: [join(FIXTURES, 'tiny-a', 'image1.png')],
        videos: [frames.slice(0, 3)],
        videoOptions: { ...budget, fps: 4 },
      });
      expect(enc.text).toContain('<|vision_start|><|video_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>hello');
      expect(enc.videoGridThw).toEqual([[2, 4, 4]]);         // 3 frames padded to 4
      expect(enc.secondPerGridTs).toEqual([0.5]);            // 2 / 4 fps
      expect(enc.videos).toEqual([{ original: { width: 56, height: 56 }, input: { width: 56, height: 56 }, frames: 4 }]);
      expect(Array.from(enc.inputIds).filter((t) => t === VID)).toHaveLength(8);
      expect(Array.from(enc.inputIds).filter((t) => t === IMG)).toHaveLength(12);
      const ref = await preprocessVideo(frames.slice(0, 3), { ...budget, preprocessor: m.preprocessor });
      expect(enc.pixelValuesVideos).toEqual(ref.pixelValuesVideos);
      const out = await m.forward({ ...enc, returnLogits: true });
      expect(out.logits!.every(Number.isFinite)).toBe(true);
      await expect(m.encode({ messages: [{ role: 'user', content: [{ type: 'video' }] }] })).rejects.toThrow(/1 video placeholder\(s\) but 0 video\(s\)/);
    } finally {
      await m.dispose();
    }
  });

  it('Qwen2-VL: a video prompt equals the same prompt with its video given as an image of that grid', async () => {
    const asVideo = await q2.forward({ ...videoPrompt(), returnLogits: true });
    const asImage = await q2.forward({ inputIds: videoIds(IMG), pixelValues: video, imageGridThw: [[2, 4, 4]], returnLogits: true });
    expect(maxDiff(asVideo.logits!, asImage.logits!)).toBeLessThan(1e-5);
    // Not vacuous: other video pixels change the logits.
    const other = await q2.forward({ ...videoPrompt(), pixelValuesVideos: video.map((v) => -v), returnLogits: true });
    expect(maxDiff(asVideo.logits!, other.logits!)).toBeGreaterThan(1e-3);
  });

  it('packing: a batch of a video prompt and an image prompt equals each prompt alone', async () => {
    const imagePrompt: ModelInput = {
      inputIds: Int32Array.from([496, 20, VS, ...new Array<number>(4).fill(IMG), VE, 30, 31, 497]),
      pixelValues: video.subarray(0, 16 * 1176).map((v) => v * 0.5),
      imageGridThw: [[1, 4, 4]],
    };
    for (const m of [q25, q2]) {
      const [a, b] = await m.forwardBatch([videoPrompt([0.5]), imagePrompt], { returnLogits: true });
      const va = await m.forward({ ...videoPrompt([0.5]), returnLogits: true });
      const ib = await m.forward({ ...imagePrompt, returnLogits: true });
      expect(maxDiff(a!.logits!, va.logits!)).toBeLessThan(1e-5);
      expect(maxDiff(b!.logits!, ib.logits!)).toBeLessThan(1e-5);
    }
    expect(() => q25.pack([{ ...videoPrompt(), pixelValuesVideos: video.subarray(1) }])).toThrow(/pixelValuesVideos has 37631 values, expected 37632/);
  });

  it('Qwen2.5-VL: second_per_grid_ts moves the temporal positions (default 1 per video)', async () => {
    const one = await q25.forward({ ...videoPrompt([1]), returnLogits: true });
    const dflt = await q25.forward({ ...videoPrompt(), returnLogits: true });
    const half = await q25.forward({ ...videoPrompt([0.5]), returnLogits: true });
    expect(maxDiff(one.logits!, dflt.logits!)).toBe(0);
    expect(maxDiff(one.logits!, half.logits!)).toBeGreaterThan(1e-4);
    // Qwen2-VL ignores it.
    const q2a = await q2.forward({ ...videoPrompt([1]), returnLogits: true });
    const q2b = await q2.forward({ ...videoPrompt([0.5]), returnLogits: true });
    expect(maxDiff(q2a.logits!, q2b.logits!)).toBe(0);
  });

  it('generate() on a video prompt: greedy tokens equal the argmax chain of full forwards', async () => {
    const prompt = videoPrompt([0.5]);
    const steps = 5;
    const [g] = await q25.generate(prompt, { maxNewTokens: steps, temperature: 0, stopIds: [] });
    let ids = prompt.inputIds;
    const V = q25.config.vocabSize;
    for (let step = 0; step < steps; step++) {
      const out = await q25.forward({ ...prompt, inputIds: ids, returnLogits: true });
      const last = out.logits!.subarray((ids.length - 1) * V, ids.length * V);
      let best = -1;
      for (let j = 0; j < V; j++) {
        if (j >= VS && j <= VID) continue;  // vision special tokens are never generated
        if (best < 0 || last[j]! > last[best]!) best = j;
      }
      expect(g!.tokens[step]).toBe(best);
      const next = new Int32Array(ids.length + 1);
      next.set(ids);
      next[ids.length] = best;
      ids = next;
    }
  });
});
