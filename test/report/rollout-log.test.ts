import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ReportError, RolloutLog, type RolloutInput } from '../../src/report/index.js';
import { makeRollouts, rng } from './synthetic.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-rollouts-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function writePng(path: string, width: number, height: number): Promise<void> {
  const r = rng(width * 31 + height);
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.floor(r() * 256);
  await sharp(px, { raw: { width, height, channels: 3 } }).png().toFile(path);
}

describe('RolloutLog', () => {
  it('round-trips unicode text and per-reward columns through our reader', async () => {
    const log = new RolloutLog(dir);
    const recs = makeRollouts(12, 3, 4, rng(1), ['imgs/a.png', '/abs/b.jpg']);
    recs[0] = { ...recs[0] as RolloutInput, completion: 'Ünïcödé ✓ 🚀 — 中文 <b>&amp;</b>\n\tend', prompt: '' };
    recs[1] = { ...recs[1] as RolloutInput, rewards: { accuracy: 1, format: null, iou: 0.25 }, images: [] };
    const path = await log.write(12, recs);
    expect(path).toBe(join(dir, 'rollouts', 'step-000012.parquet'));
    const back = await RolloutLog.readStep(dir, 12);
    expect(back).toHaveLength(recs.length);
    back.forEach((row, i) => {
      const want = recs[i] as RolloutInput;
      const rewards = { accuracy: want.rewards.accuracy ?? null, format: want.rewards.format ?? null, iou: want.rewards.iou ?? null };
      expect(row).toEqual({ ...want, step: 12, rewards });
    });
  });

  it('is readable with hyparquet directly, one column per reward function', async () => {
    const recs = makeRollouts(3, 2, 3, rng(2), ['x.png']);
    await new RolloutLog(dir).write(3, recs);
    const file = await asyncBufferFromFile(join(dir, 'rollouts', 'step-000003.parquet'));
    const rows = await parquetReadObjects({ file });
    expect(rows).toHaveLength(6);
    expect(Object.keys(rows[0] as object)).toEqual([
      'step', 'promptId', 'groupIndex', 'sampleIndex', 'prompt', 'completion', 'reward', 'reward_accuracy', 'reward_format',
      'advantage', 'length', 'truncated', 'finishReason', 'images',
    ]);
    rows.forEach((row, i) => {
      const want = recs[i] as RolloutInput;
      expect(row.step).toBe(3);
      expect(row.completion).toBe(want.completion);
      expect(row.prompt).toBe(want.prompt);
      expect(row.reward_accuracy).toBe(want.rewards.accuracy);
      expect(row.reward_format).toBe(want.rewards.format);
      expect(row.advantage).toBe(want.advantage);
      expect(row.truncated).toBe(want.truncated);
      expect(row.images).toEqual(['x.png']);
    });
    const meta = await parquetMetadataAsync(file);
    const kv = meta.key_value_metadata?.find((e) => e.key === 'vlm-grpo.rollouts');
    expect(JSON.parse(kv?.value ?? '{}')).toEqual({ version: 1, step: 3, rewardNames: ['accuracy', 'format'] });
  });

  it('stores JPEG thumbnails made from the image files, and warns for a missing image', async () => {
    mkdirSync(join(dir, 'imgs'));
    await writePng(join(dir, 'imgs', 'wide.png'), 300, 100);
    const warnings: string[] = [];
    const log = new RolloutLog(join(dir, 'run'), { thumbnails: { maxSize: 64 }, imageRoot: dir, onWarning: (w) => warnings.push(w) });
    const recs = makeRollouts(1, 1, 3, rng(3), ['imgs/wide.png', 'imgs/missing.png']);
    await log.write(1, recs);
    const back = await RolloutLog.readStep(join(dir, 'run'), 1);
    for (const row of back) {
      expect(row.thumbnails).toHaveLength(2);
      const [jpeg, missing] = row.thumbnails as Uint8Array[];
      expect([jpeg?.[0], jpeg?.[1]]).toEqual([0xff, 0xd8]); // JPEG SOI marker
      const meta = await sharp(jpeg as Uint8Array).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 64, 21]);
      expect(missing).toHaveLength(0);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/missing\.png/);
    // hyparquet users read the binary column with utf8: false.
    const rows = await parquetReadObjects({ file: await asyncBufferFromFile(log.stepPath(1)), columns: ['thumbnails'], utf8: false });
    expect((rows[0]?.thumbnails as Uint8Array[])[0]).toBeInstanceOf(Uint8Array);
    // Thumbnails can be skipped on read.
    expect((await RolloutLog.readStep(join(dir, 'run'), 1, { thumbnails: false }))[0]?.thumbnails).toBeUndefined();
  });

  it('reads a step range and row ranges, lists steps, and leaves no temp files', async () => {
    const log = new RolloutLog(dir);
    const r = rng(4);
    for (const step of [1, 2, 5, 10, 100]) await log.write(step, makeRollouts(step, 2, 2, r));
    expect(RolloutLog.listSteps(dir)).toEqual([1, 2, 5, 10, 100]);
    const mid = await RolloutLog.read(dir, { fromStep: 2, toStep: 10 });
    expect([...new Set(mid.map((x) => x.step))]).toEqual([2, 5, 10]);
    expect(mid).toHaveLength(12);
    expect(await RolloutLog.countRows(dir, 5)).toBe(4);
    const part = await RolloutLog.readStep(dir, 5, { rowStart: 1, rowEnd: 3 });
    expect(part.map((x) => [x.groupIndex, x.sampleIndex])).toEqual([[0, 1], [1, 0]]);
    expect(readdirSync(join(dir, 'rollouts')).filter((f) => f.includes('.tmp'))).toEqual([]);
    // Rewriting a step replaces it atomically.
    await log.write(5, makeRollouts(5, 1, 1, r));
    expect(await RolloutLog.countRows(dir, 5)).toBe(1);
    await expect(RolloutLog.readStep(dir, 6)).rejects.toThrow(ReportError);
  });

  it('writes and reads an empty step', async () => {
    await new RolloutLog(dir).write(7, []);
    expect(await RolloutLog.readStep(dir, 7)).toEqual([]);
  });

  it('rejects bad records naming the field, and a damaged file with a ReportError', async () => {
    const log = new RolloutLog(dir);
    const good = makeRollouts(1, 1, 1, rng(5))[0] as RolloutInput;
    await expect(log.write(1, [{ ...good, completion: 3 as unknown as string }])).rejects.toThrow(/records\[0\]\.completion must be a string/);
    await expect(log.write(1, [good, { ...good, length: -1 }])).rejects.toThrow(/records\[1\]\.length/);
    await expect(log.write(1, [{ ...good, thumbnails: [new Uint8Array(1)] }])).rejects.toThrow(/thumbnails has 1 entries but images has 0/);
    await expect(log.write(-1, [good])).rejects.toThrow(RangeError);
    expect(existsSync(log.stepPath(1))).toBe(false);
    writeFileSync(log.stepPath(2), 'not parquet at all');
    await expect(RolloutLog.readStep(dir, 2)).rejects.toThrow(ReportError);
    await expect(RolloutLog.countRows(dir, 2)).rejects.toThrow(/cannot read .*step-000002\.parquet/);
  });
});
