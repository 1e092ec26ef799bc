import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPromptDatasets, type PromptDataset } from '../../src/data/dataset.js';
import { parquetRowCount } from '../../src/data/parquet.js';
import type { PromptRow } from '../../src/data/types.js';
import { logSink, pngBytes, tempDir, tinyProcessor, writeJsonl, writePng, writeR1vParquet, writeVerlParquet } from './helpers.js';

const { dir, cleanup } = tempDir();
afterAll(cleanup);
const imgs = path.join(dir, 'imgs');
const elsewhere = path.join(dir, 'elsewhere', 'abs.png');
const VISION = '<|vision_start|><|image_pad|><|vision_end|>';

beforeAll(async () => {
  await writePng(path.join(imgs, 'a.png'), 56, 56, 1);
  await writePng(path.join(imgs, 'b.png'), 84, 56, 2);
  await writePng(path.join(imgs, 'sub', 'c.png'), 56, 84, 3);
  await writePng(elsewhere, 56, 56, 4);
});

function rows(ds: PromptDataset): PromptRow[] {
  return Array.from({ length: ds.size }, (_, i) => ds.row(i));
}

async function load(sources: Parameters<typeof loadPromptDatasets>[0]['sources'], extra: Record<string, unknown> = {}) {
  const sink = logSink();
  const { train } = await loadPromptDatasets({ sources, shuffle: false, ...extra }, { processor: tinyProcessor(), log: sink.log });
  return { train, messages: sink.messages };
}

describe('VLM-R1 JSONL', () => {
  it('reads single-image, multi-image, placeholder-less and text-only rows; resolves paths; skips a placeholder mismatch', async () => {
    const file = writeJsonl(path.join(dir, 'vlm', 'train.jsonl'), [
      { id: 'r1', image: 'a.png', conversations: [{ from: 'human', value: '<image>How many?' }, { from: 'gpt', value: '3' }], accu_reward_method: 'mcq' },
      { id: 'r2', image: ['a.png', 'sub/c.png'], conversations: [{ from: 'human', value: 'Left <image> right <image> same?' }, { from: 'gpt', value: 'yes' }] },
      { image: 'b.png', conversations: [{ from: 'human', value: 'Describe.' }, { from: 'gpt', value: 4.5 }] },
      { conversations: [{ from: 'system', value: 'Be brief.' }, { from: 'human', value: 'What is 2+2?' }, { from: 'gpt', value: '4' }], tag: { a: 1 } },
      { image: 'a.png', conversations: [{ from: 'human', value: '<image><image>Two?' }, { from: 'gpt', value: 'x' }] },
      { image: elsewhere, conversations: [{ from: 'human', value: '<image>Abs?' }, { from: 'gpt', value: 'ok' }] },
    ]);
    const { train, messages } = await load([{ path: file, imageFolder: imgs, rewardMethod: 'default' }]);
    const r = rows(train);
    expect(r.map((x) => x.id)).toEqual(['r1', 'r2', 'train.jsonl:3', 'train.jsonl:4', 'train.jsonl:6']);
    expect(r.every((x) => x.format === 'vlm-r1')).toBe(true);
    // single image at its placeholder, GT = gpt value as given, per-row method wins over the source default
    expect(r[0]!.messages).toEqual([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many?' }] }]);
    expect(r[0]!.images).toEqual([{ path: path.join(imgs, 'a.png') }]);
    expect(r[0]!.groundTruth).toBe('3');
    expect(r[0]!.rewardMethod).toBe('mcq');
    expect(r[0]!.source).toEqual({ file, line: 1 });
    expect(r[0]!.extra).toEqual({ id: 'r1', accu_reward_method: 'mcq' });
    // two images in placeholder order, relative to the image folder
    expect(r[1]!.messages[0]!.content).toEqual([
      { type: 'text', text: 'Left ' }, { type: 'image' }, { type: 'text', text: ' right ' }, { type: 'image' }, { type: 'text', text: ' same?' },
    ]);
    expect(r[1]!.images).toEqual([{ path: path.join(imgs, 'a.png') }, { path: path.join(imgs, 'sub', 'c.png') }]);
    expect(r[1]!.rewardMethod).toBe('default');
    // no placeholder: the image goes before the text; a numeric answer stays a number
    expect(r[2]!.messages[0]!.content).toEqual([{ type: 'image' }, { type: 'text', text: 'Describe.' }]);
    expect(r[2]!.groundTruth).toBe(4.5);
    // text-only with a system turn; other columns go to extra
    expect(r[3]!.images).toEqual([]);
    expect(r[3]!.messages).toEqual([
      { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
      { role: 'user', content: [{ type: 'text', text: 'What is 2+2?' }] },
    ]);
    expect(r[3]!.extra).toEqual({ tag: { a: 1 } });
    // absolute paths are kept
    expect(r[4]!.images).toEqual([{ path: elsewhere }]);
    // the mismatch row is skipped with file:line and counted
    const warn = messages.find((m) => m.includes('skipped'));
    expect(warn).toContain(`${file}:5 (invalid row)`);
    expect(warn).toContain('2 <image> placeholder(s) but the row has 1 image(s)');
    expect(train.metrics()['data/skipped/invalid']).toBe(1);

    // the prepared multi-image prompt has the vision tokens where the placeholders were
    const [p1, p2] = await train.next(2);
    expect(p2!.text).toContain(`Left ${VISION} right ${VISION} same?`);
    expect(p2!.input.imageGridThw).toEqual([[1, 4, 4], [1, 6, 4]]);
    expect(p1!.text).toBe(`<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n${VISION}How many?<|im_end|>\n<|im_start|>assistant\n`);
  });
});

describe('verl / Ocean-R1 Parquet', () => {
  it('reads images as {bytes} and {path}, multi-image, text-only rows, ground truth, reward_func, data_source', async () => {
    const pa = await pngBytes(56, 56, 11);
    const pb = await pngBytes(84, 84, 12);
    const file = writeVerlParquet(path.join(dir, 'verl', 'train.parquet'), [
      { data_source: 'geoqa', prompt: [{ role: 'user', content: '<image>Find x.' }], images: [{ bytes: pa, path: null }], ground_truth: '3', reward_func: 'acc', index: 0 },
      {
        data_source: 'refcoco',
        prompt: [{ role: 'system', content: 'Sys.' }, { role: 'user', content: '<image>and<image>' }],
        images: [{ bytes: pb, path: null }, { bytes: null, path: 'a.png' }],
        ground_truth: '[1,2,3,4]',
        reward_func: 'iou',
        index: 1,
      },
      { data_source: 'text', prompt: [{ role: 'user', content: 'What is 1+1?' }], images: null, ground_truth: '2', reward_func: 'acc', index: 2 },
      { data_source: 'text', prompt: [{ role: 'user', content: 'And 2+2?' }], images: [], ground_truth: '4', reward_func: 'acc', index: 3 },
    ]);
    expect(await parquetRowCount(file)).toBe(4);
    const { train } = await load([{ path: file, imageFolder: imgs }]);
    const r = rows(train);
    expect(r.map((x) => [x.id, x.format, x.groundTruth, x.rewardMethod, x.dataSource])).toEqual([
      ['0', 'verl', '3', 'acc', 'geoqa'],
      ['1', 'verl', '[1,2,3,4]', 'iou', 'refcoco'],
      ['2', 'verl', '2', 'acc', 'text'],
      ['3', 'verl', '4', 'acc', 'text'],
    ]);
    expect(r[0]!.images).toHaveLength(1);
    expect(Array.from((r[0]!.images[0] as { bytes: Uint8Array }).bytes)).toEqual(Array.from(pa));
    expect(r[1]!.messages).toEqual([
      { role: 'system', content: [{ type: 'text', text: 'Sys.' }] },
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'and' }, { type: 'image' }] },
    ]);
    expect(Array.from((r[1]!.images[0] as { bytes: Uint8Array }).bytes)).toEqual(Array.from(pb));
    expect(r[1]!.images[1]).toEqual({ path: path.join(imgs, 'a.png') });
    expect(r[2]!.images).toEqual([]);
    expect(r[3]!.images).toEqual([]);
    expect(r[0]!.source).toEqual({ file, line: 1 });
    expect(r[1]!.extra).toEqual({ data_source: 'refcoco', ability: 'math', reward_model: { style: 'rule', ground_truth: '[1,2,3,4]' }, extra_info: { index: 1, reward_func: 'iou' } });
    // text-only and image rows mixed in one batch
    const batch = await train.next(4);
    expect(batch.map((p) => p.input.imageGridThw.length)).toEqual([1, 2, 0, 0]);
    expect(batch[2]!.input.pixelValues.length).toBe(0);
    expect(batch[1]!.input.imageGridThw).toEqual([[1, 6, 6], [1, 4, 4]]);
    expect(batch[1]!.text).toContain(`<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\n${VISION}and${VISION}<|im_end|>`);
  });
});

describe('R1-V rows', () => {
  it('Parquet with the HF Image struct, a text-only row mixed in; images go before the text', async () => {
    const pa = await pngBytes(56, 56, 21);
    const file = writeR1vParquet(path.join(dir, 'r1v', 'train.parquet'), [
      { image: { bytes: pa, path: 'ignored.png' }, problem: 'How many cubes?', solution: '<answer> 3 </answer>', reward_func: 'acc' },
      { image: null, problem: 'What is 3*3?', solution: '<answer> 9 </answer>', reward_func: null },
      { image: { bytes: null, path: 'b.png' }, problem: 'Count.', solution: '<answer> 2 </answer>', reward_func: 'acc' },
    ]);
    const { train } = await load([{ path: file, imageFolder: imgs }]);
    const r = rows(train);
    expect(r.map((x) => x.format)).toEqual(['r1v', 'r1v', 'r1v']);
    expect(r[0]!.messages).toEqual([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many cubes?' }] }]);
    expect(Array.from((r[0]!.images[0] as { bytes: Uint8Array }).bytes)).toEqual(Array.from(pa));
    expect(r[0]!.groundTruth).toBe('<answer> 3 </answer>');
    expect(r[0]!.rewardMethod).toBe('acc');
    expect(r[0]!.extra).toEqual({ reward_func: 'acc' });
    expect(r[1]!.images).toEqual([]);
    expect(r[1]!.rewardMethod).toBeNull();
    expect(r[2]!.images).toEqual([{ path: path.join(imgs, 'b.png') }]);
    const batch = await train.next(3);
    expect(batch.map((p) => p.images.length)).toEqual([1, 0, 1]);
    expect(batch[2]!.images[0]).toEqual({ original: { width: 84, height: 56 }, input: { width: 84, height: 56 } });
  });

  it('JSONL with paths, has_image false, multiple images and <image> placeholders in the problem', async () => {
    const file = writeJsonl(path.join(dir, 'r1v', 'train.jsonl'), [
      { image: 'a.png', problem: 'Q1', solution: '<answer> 1 </answer>', reward_func: 'acc' },
      { image: 'a.png', has_image: false, problem: 'Q2 text only', solution: '<answer> 2 </answer>' },
      { images: ['a.png', 'b.png'], problem: 'First <image> then <image>?', solution: 'yes', data_source: 'pairs' },
    ]);
    const { train } = await load([{ path: file, imageFolder: imgs }]);
    const r = rows(train);
    expect(r[0]!.messages[0]!.content).toEqual([{ type: 'image' }, { type: 'text', text: 'Q1' }]);
    expect(r[1]!.images).toEqual([]);
    expect(r[1]!.messages[0]!.content).toEqual([{ type: 'text', text: 'Q2 text only' }]);
    expect(r[2]!.messages[0]!.content).toEqual([
      { type: 'text', text: 'First ' }, { type: 'image' }, { type: 'text', text: ' then ' }, { type: 'image' }, { type: 'text', text: '?' },
    ]);
    expect(r[2]!.dataSource).toBe('pairs');
    expect(r[2]!.groundTruth).toBe('yes');
  });
});

describe('several sources', () => {
  it('each file keeps its own image folder, format and default reward method', async () => {
    const other = path.join(dir, 'other-imgs');
    await writePng(path.join(other, 'a.png'), 84, 84, 31);
    const f1 = writeJsonl(path.join(dir, 'multi', 'one.jsonl'), [
      { image: 'a.png', conversations: [{ from: 'human', value: '<image>A?' }, { from: 'gpt', value: 'a' }] },
    ]);
    const f2 = writeJsonl(path.join(dir, 'multi', 'two.jsonl'), [
      { image: 'a.png', conversations: [{ from: 'human', value: '<image>B?' }, { from: 'gpt', value: 'b' }] },
    ]);
    const f3 = writeJsonl(path.join(dir, 'multi', 'three.jsonl'), [{ image: 'a.png', problem: 'C?', solution: 'c' }]);
    const { train } = await load([
      { path: f1, imageFolder: imgs, rewardMethod: 'mcq' },
      { path: f2, imageFolder: other, rewardMethod: 'yes_no' },
      { path: f3, imageFolder: other },
    ]);
    const r = rows(train);
    expect(r.map((x) => [x.source.file, x.format, x.rewardMethod, (x.images[0] as { path: string }).path])).toEqual([
      [f1, 'vlm-r1', 'mcq', path.join(imgs, 'a.png')],
      [f2, 'vlm-r1', 'yes_no', path.join(other, 'a.png')],
      [f3, 'r1v', null, path.join(other, 'a.png')],
    ]);
    const batch = await train.next(3);
    expect(batch.map((p) => p.images[0]!.original.width)).toEqual([56, 84, 84]);
  });
});
