import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPromptDatasets } from '../../src/data/dataset.js';
import { preparePrompt, type PreparedPrompt, type PromptProcessor } from '../../src/data/prepare.js';
import type { VlmModel } from '../../src/model/vlm-model.js';
import type { PromptRow } from '../../src/data/types.js';
import { expandImageTokenIds } from '../../src/processor/chat-template.js';
import { preprocessImages } from '../../src/processor/image.js';
import { logSink, tempDir, tinyProcessor, writeJsonl, writePng } from './helpers.js';

const { dir, cleanup } = tempDir();
afterAll(cleanup);
const imgs = path.join(dir, 'imgs');
const PAD = 500;
// A loaded model is a PromptProcessor (checked by tsc): the trainer passes the model itself.
const modelIsProcessor: VlmModel extends PromptProcessor ? true : false = true;

beforeAll(async () => {
  await writePng(path.join(imgs, 'wide.png'), 100, 70, 1);
  await writePng(path.join(imgs, 'tiny.png'), 30, 20, 2);
  await writePng(path.join(imgs, 'small.png'), 56, 56, 3);
  await writePng(path.join(imgs, 'big.png'), 224, 224, 4);
});

function row(images: string[], text: string, line = 1): PromptRow {
  return {
    id: `r${line}`, source: { file: path.join(dir, 'x.jsonl'), line }, format: 'vlm-r1',
    messages: [{ role: 'user', content: [...images.map(() => ({ type: 'image' as const })), { type: 'text', text }] }],
    images: images.map((f) => ({ path: path.join(imgs, f) })), groundTruth: 'a', rewardMethod: null, dataSource: null, extra: {},
  };
}

async function ok(r: PromptRow, opts: Parameters<typeof preparePrompt>[2] = {}): Promise<PreparedPrompt> {
  const res = await preparePrompt(r, tinyProcessor(), opts);
  if (!res.ok) throw new Error(`unexpected skip: ${res.skip.message}`);
  return res.prompt;
}

describe('preparePrompt', () => {
  it('accepts a VlmModel as its processor (type-level)', () => expect(modelIsProcessor).toBe(true));

  it('matches the processor pipeline: rendered text, expanded ids, pixel values and grids under min/max pixels', async () => {
    const proc = tinyProcessor();
    const r = row(['wide.png', 'tiny.png'], 'Compare them.');
    // bad settings are the caller's error, not a row skip
    await expect(preparePrompt(r, proc, { minPixels: 2 * 3136, maxPixels: 3136 })).rejects.toThrow(/minPixels ≤ maxPixels/);
    await expect(preparePrompt(r, proc, { maxPromptLength: 0 })).rejects.toThrow(/maxPromptLength must be a positive integer/);
    const minPixels = 56 * 56, maxPixels = 56 * 84;
    const p = await ok(r, { minPixels, maxPixels });
    const ref = await preprocessImages([path.join(imgs, 'wide.png'), path.join(imgs, 'tiny.png')], { minPixels, maxPixels });
    expect(p.input.imageGridThw).toEqual(ref.imageGridThw);
    expect(p.input.pixelValues).toEqual(ref.pixelValues);
    // wide 100×70 is scaled down into maxPixels, tiny 30×20 up to at least minPixels
    expect(p.images).toEqual(ref.images.map((m) => ({ original: m.originalSize, input: m.resizedSize })));
    expect(p.images[0]!.input.width * p.images[0]!.input.height).toBeLessThanOrEqual(maxPixels);
    expect(p.images[1]!.input.width * p.images[1]!.input.height).toBeGreaterThanOrEqual(minPixels);
    const text = proc.chatTemplate.render(p.messages, { addGenerationPrompt: true });
    expect(p.text).toBe(text);
    const ids = expandImageTokenIds(proc.tokenizer.encode(text), ref.imageGridThw, PAD, 2);
    expect(Array.from(p.input.inputIds)).toEqual(ids);
    expect(p.promptLength).toBe(ids.length);
    const tokens = ref.images.reduce((n, m) => n + m.numImageTokens, 0);
    expect(p.input.inputIds.filter((v) => v === PAD).length).toBe(tokens);
    expect(p.row).toBe(r);
  });

  it('counts the length after image expansion: a short text with a big image is over-long, the same text with a small one is not', async () => {
    const small = await ok(row(['small.png'], 'Hi'));
    const big = await ok(row(['big.png'], 'Hi'));
    expect(small.input.imageGridThw).toEqual([[1, 4, 4]]);
    expect(big.input.imageGridThw).toEqual([[1, 16, 16]]);
    expect(big.promptLength - small.promptLength).toBe(64 - 4);
    const textOnly = small.promptLength - 4 + 1; // the template's one pad token instead of the image's 4
    const max = small.promptLength;
    expect(textOnly).toBeLessThan(max);
    // exactly at the limit passes; one token less and it is skipped
    expect((await preparePrompt(row(['small.png'], 'Hi'), tinyProcessor(), { maxPromptLength: max })).ok).toBe(true);
    const under = await preparePrompt(row(['small.png'], 'Hi'), tinyProcessor(), { maxPromptLength: max - 1 });
    expect(under).toMatchObject({ ok: false, skip: { reason: 'over-long' } });
    const res = await preparePrompt(row(['big.png'], 'Hi', 7), tinyProcessor(), { maxPromptLength: max + 10 });
    expect(res.ok).toBe(false);
    const skip = (res as { ok: false; skip: { reason: string; message: string; source: { line: number } } }).skip;
    expect(skip.reason).toBe('over-long');
    expect(skip.source.line).toBe(7);
    expect(skip.message).toBe(`the prompt is ${big.promptLength} tokens after image expansion (${big.promptLength - 64} text + 64 image tokens for 1 image(s)), above maxPromptLength ${max + 10}`);
  });

  it('in a dataset, over-long rows are filtered and counted with file:line; batches keep their order', async () => {
    const file = writeJsonl(path.join(dir, 'mixed.jsonl'), [
      { image: 'small.png', problem: 'Hi', solution: '1' },
      { image: 'big.png', problem: 'Hi', solution: '2' },
      { problem: 'No img', solution: '3' },
      { image: 'small.png', problem: 'Hi again', solution: '4' },
    ]);
    const max = (await ok(row(['small.png'], 'Hi again'))).promptLength;
    const sink = logSink();
    const { train } = await loadPromptDatasets(
      { sources: [{ path: file, imageFolder: imgs }], shuffle: false, maxPromptLength: max },
      { processor: tinyProcessor(), log: sink.log },
    );
    const batch = await train.next(3);
    expect(batch.map((p) => p.row.groundTruth)).toEqual(['1', '3', '4']);
    expect(train.metrics()['data/skipped/over_long']).toBe(1);
    expect(sink.messages.some((m) => m.includes(`${file}:2 (over-long prompt): the prompt is`))).toBe(true);
    // concurrent preparation returns the same prompts, in order, as one-by-one preparation
    for (const p of batch) {
      const solo = await ok(p.row, { maxPromptLength: max });
      expect(Array.from(p.input.inputIds)).toEqual(Array.from(solo.input.inputIds));
      expect(p.input.pixelValues).toEqual(solo.input.pixelValues);
    }
    expect(batch.every((p) => p.promptLength <= max)).toBe(true);
  });
});
