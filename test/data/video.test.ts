// Video rows in the data pipeline: VLM-R1 JSONL `"video"` (frame list or frame directory) with `<video>`
// placeholders and verl `videos` / `{"type": "video"}` parts load, prepare into video pads + patch rows, count their
// video tokens against maxPromptLength, survive the Arrow table, and a missing frame skips the row with a warning
// naming the file and line.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPromptDatasets } from '../../src/data/dataset.js';
import { normaliseVerl } from '../../src/data/formats/verl.js';
import { normaliseVlmR1 } from '../../src/data/formats/vlm-r1.js';
import { preparePrompt, type PreparedPrompt, type PromptProcessor } from '../../src/data/prepare.js';
import { readRow, rowsToTable } from '../../src/data/table.js';
import { logSink, pngBytes, tempDir, tinyProcessor, writeJsonl, writePng } from './helpers.js';

const { dir, cleanup } = tempDir('vg-data-video-');
afterAll(cleanup);
const frames = path.join(dir, 'clips', 'c1');
let file = '';
const VIDEO_PAD = 501;
const IMAGE_PAD = 500;
// 56×56 frames at a 3136-pixel budget: grid [2, 4, 4] for 3 or 4 frames → 8 video tokens.
const video = { minPixels: 3136, maxPixels: 3136 };

function processor(): PromptProcessor {
  const p = tinyProcessor({ minPixels: 3136, maxPixels: 3136 });
  return { ...p, config: { ...p.config, videoTokenId: VIDEO_PAD } };
}

const conv = (q: string, a = 'A') => [{ from: 'human', value: q }, { from: 'gpt', value: a }];

beforeAll(async () => {
  for (let i = 1; i <= 4; i++) await writePng(path.join(frames, `${String(i).padStart(2, '0')}.png`), 56, 56, i);
  file = writeJsonl(path.join(dir, 'train.jsonl'), [
    { id: 'v1', video: ['clips/c1/01.png', 'clips/c1/02.png', 'clips/c1/03.png'], conversations: conv('<video>What moves?') },
    { id: 't2', conversations: conv('Say hi') },
    { id: 'v3', video: ['clips/c1/01.png', 'clips/c1/missing.png'], conversations: conv('<video>Broken?') },
    { id: 'v4', video: 'clips/c1', conversations: conv('Describe <video> please') },
    { id: 'v5', image: 'clips/c1/01.png', video: ['clips/c1/01.png', 'clips/c1/02.png'], conversations: conv('<image> then <video>?') },
  ]);
});

async function allPrompts(options: Record<string, unknown> = {}): Promise<{ prompts: PreparedPrompt[]; messages: string[] }> {
  const sink = logSink();
  const { train } = await loadPromptDatasets({ sources: [file], shuffle: false, video, ...options }, { processor: processor(), log: sink.log });
  const prompts: PreparedPrompt[] = [];
  for await (const b of train.batches(10)) prompts.push(...b);
  return { prompts, messages: sink.messages };
}

const count = (ids: Int32Array, t: number) => ids.filter((v) => v === t).length;

describe('video rows (VLM-R1 JSONL)', () => {
  it('a frame-list video row and a text row load; a missing frame is skipped naming the file and line', async () => {
    const { prompts, messages } = await allPrompts();
    expect(prompts.map((p) => p.row.id)).toEqual(['v1', 't2', 'v4', 'v5']);
    const warn = messages.find((m) => m.includes('missing.png'));
    expect(warn, messages.join('\n')).toBeDefined();
    expect(warn).toContain(`${file}:3`);
    expect(warn).toMatch(/video 1 of 1/);

    const [v1, t2, v4, v5] = prompts as [PreparedPrompt, PreparedPrompt, PreparedPrompt, PreparedPrompt];
    expect(v1.text).toContain('<|vision_start|><|video_pad|><|vision_end|>What moves?');
    expect(count(v1.input.inputIds, VIDEO_PAD)).toBe(8);
    expect(v1.input.videoGridThw).toEqual([[2, 4, 4]]);          // 3 frames padded to 4
    expect(v1.input.secondPerGridTs).toEqual([1]);
    expect(v1.input.pixelValuesVideos!.length).toBe(32 * 1176);
    expect(v1.videos).toEqual([{ original: { width: 56, height: 56 }, input: { width: 56, height: 56 }, frames: 4 }]);
    expect(v1.promptLength).toBe(v1.input.inputIds.length);
    expect(t2.input.videoGridThw).toBeUndefined();
    // The directory holds 4 frames (sorted by name): 2 frame pairs, and its first three equal v1's frames.
    expect(v4.input.videoGridThw).toEqual([[2, 4, 4]]);
    expect(v4.input.pixelValuesVideos!.subarray(0, 16 * 1176)).toEqual(v1.input.pixelValuesVideos!.subarray(0, 16 * 1176));
    // Image and video in one prompt, each expanded from its own grid.
    expect(count(v5.input.inputIds, IMAGE_PAD)).toBe(4);
    expect(count(v5.input.inputIds, VIDEO_PAD)).toBe(4);
    expect(v5.input.videoGridThw).toEqual([[1, 4, 4]]);
  });

  it('maxPromptLength counts video tokens', async () => {
    const { prompts } = await allPrompts();
    const v1 = prompts[0]!;
    const sink = logSink();
    const { train } = await loadPromptDatasets({ sources: [file], shuffle: false, video, maxPromptLength: v1.promptLength - 1, maxBadFraction: 1 }, { processor: processor(), log: sink.log });
    const kept: string[] = [];
    for await (const b of train.batches(10)) kept.push(...b.map((p) => p.row.id));
    expect(kept).not.toContain('v1');
    expect(kept).toContain('t2');
    const msg = sink.messages.find((m) => m.includes(`${file}:1`));
    expect(msg).toMatch(new RegExp(`the prompt is ${v1.promptLength} tokens after image expansion \\(${v1.promptLength - 8} text \\+ 0 image tokens for 0 image\\(s\\) \\+ 8 video tokens for 1 video\\(s\\)\\)`));
  });

  it('video sampling options reach the processor (fps sets second_per_grid_t) and unknown keys are named', async () => {
    const { prompts } = await allPrompts({ video: { ...video, fps: 4 } });
    expect(prompts[0]!.input.secondPerGridTs).toEqual([0.5]);
    await expect(loadPromptDatasets({ sources: [file], video: { fsp: 2 } as never }, { processor: processor(), log: () => {} }))
      .rejects.toThrow(/Unknown dataset option "fsp" in video[\s\S]*Known video options: fps/);
  });
});

describe('video rows (verl) and the Arrow table', () => {
  const ctx = () => ({ source: { file: path.join(dir, 'x.parquet'), line: 7 }, imageFolder: dir, defaultRewardMethod: null });

  it('verl `videos` with <video> placeholders or {"type": "video"} parts', async () => {
    const a = normaliseVerl({ prompt: [{ role: 'user', content: '<video>What happens?' }], videos: [['clips/c1/01.png', 'clips/c1/02.png']], reward_model: { ground_truth: 'x' } }, ctx());
    expect(a.messages[0]!.content).toEqual([{ type: 'video' }, { type: 'text', text: 'What happens?' }]);
    expect(a.videos).toEqual([{ frames: [{ path: path.join(frames, '01.png') }, { path: path.join(frames, '02.png') }] }]);
    const b = normaliseVerl({
      prompt: [{ role: 'user', content: [{ type: 'text', text: 'Look: ' }, { type: 'video', video: 'clips/c1' }] }],
      videos: [{ video: 'clips/c1' }],
      reward_model: { ground_truth: 'x' },
    }, ctx());
    expect(b.messages[0]!.content).toEqual([{ type: 'text', text: 'Look: ' }, { type: 'video' }]);
    expect(b.videos).toEqual([{ path: frames }]);
    const pr = await preparePrompt(b, processor(), { video });
    expect(pr.ok).toBe(true);
    if (pr.ok) expect(pr.prompt.input.videoGridThw).toEqual([[2, 4, 4]]);
    // Count mismatch and a missing directory are row problems.
    expect(() => normaliseVerl({ prompt: [{ role: 'user', content: '<video><video>Q' }], videos: ['a.mp4'], reward_model: { ground_truth: 'x' } }, ctx()))
      .toThrow(/2 <video> placeholder\(s\) but the row has 1 video\(s\)/);
    const gone = normaliseVerl({ prompt: [{ role: 'user', content: '<video>Q' }], videos: ['nowhere'], reward_model: { ground_truth: 'x' } }, ctx());
    const skip = await preparePrompt(gone, processor(), { video });
    expect(skip.ok).toBe(false);
    if (!skip.ok) {
      expect(skip.skip.reason).toBe('missing-image');
      expect(skip.skip.message).toContain(path.join(dir, 'nowhere'));
    }
  });

  it('VLM-R1 rows without a <video> placeholder get the video before the text; videos survive the table', async () => {
    const row = normaliseVlmR1({ id: 'n', video: ['clips/c1/01.png', { bytes: await pngBytes(56, 56, 9) }], conversations: conv('What is it?') }, ctx());
    expect(row.messages[0]!.content).toEqual([{ type: 'video' }, { type: 'text', text: 'What is it?' }]);
    const text = normaliseVlmR1({ id: 't', conversations: conv('Hi') }, ctx());
    const dirRow = normaliseVlmR1({ id: 'd', videos: ['clips/c1', ['clips/c1/02.png']], conversations: conv('<video> vs <video>') }, ctx());
    const back = [row, text, dirRow].map((_, i) => readRow(rowsToTable([row, text, dirRow]), i));
    expect(back[0]!.videos![0]).toMatchObject({ frames: [{ path: path.join(frames, '01.png') }, { bytes: expect.any(Uint8Array) }] });
    expect(back[1]!.videos).toBeUndefined();
    expect(back[2]!.videos).toEqual([{ path: frames }, { frames: [{ path: path.join(frames, '02.png') }] }]);
  });
});
