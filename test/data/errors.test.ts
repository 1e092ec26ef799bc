import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPromptDatasets } from '../../src/data/dataset.js';
import { DataError } from '../../src/data/errors.js';
import { logSink, pngBytes, tempDir, tinyProcessor, writeJsonl, writePng, writeVerlParquet } from './helpers.js';

const { dir, cleanup } = tempDir();
afterAll(cleanup);
const imgs = path.join(dir, 'imgs');
let truncated: Uint8Array;

beforeAll(async () => {
  await writePng(path.join(imgs, 'ok.png'), 56, 56, 1);
  const full = await pngBytes(56, 56, 2);
  truncated = full.slice(0, 60); // header intact, pixel data cut off
  writeFileSync(path.join(imgs, 'corrupt.png'), truncated);
  writeFileSync(path.join(imgs, 'garbage.png'), Buffer.from('this is not an image at all'));
});

const ok = (i: number) => ({ image: 'ok.png', problem: `Q${i}`, solution: `${i}` });

async function load(rows: unknown[], name: string, extra: Record<string, unknown> = {}) {
  const file = writeJsonl(path.join(dir, name), rows);
  const sink = logSink();
  const promise = loadPromptDatasets({ sources: [{ path: file, imageFolder: imgs }], shuffle: false, ...extra }, { processor: tinyProcessor(), log: sink.log });
  return { file, sink, promise };
}

describe('bad rows are skipped with a warning naming the file and line, and counted', () => {
  it('a malformed JSONL line', async () => {
    const { file, sink, promise } = await load([ok(0), '{"image": "ok.png", "problem": "Q1", ', ok(2), '[1, 2]'], 'malformed.jsonl');
    const { train } = await promise;
    expect(train.size).toBe(2);
    expect(train.metrics()['data/skipped/malformed']).toBe(2);
    const w = sink.messages.filter((m) => m.includes('skipped'));
    expect(w[0]).toMatch(new RegExp(`^\\[data:train\\] skipped ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2 \\(malformed line\\): not valid JSON`));
    expect(w[1]).toContain(`${file}:4 (malformed line): expected a JSON object per line, got an array`);
    expect(sink.messages.some((m) => m.includes('2 of 4 rows usable'))).toBe(true);
  });

  it('a missing image: at load when checked, while sampling when not', async () => {
    const rows = [ok(0), { image: 'nope.png', problem: 'Q1', solution: '1' }, ok(2)];
    const checked = await load(rows, 'missing.jsonl');
    const { train } = await checked.promise;
    expect(train.size).toBe(2);
    expect(train.metrics()['data/skipped/missing_image']).toBe(1);
    expect(checked.sink.messages.some((m) => m.includes(`${checked.file}:2 (missing image): image 1 of 1 not found: ${path.join(imgs, 'nope.png')}`))).toBe(true);

    const lazy = await load(rows, 'missing-lazy.jsonl', { checkImages: false });
    const t2 = (await lazy.promise).train;
    expect(t2.size).toBe(3);
    expect(t2.metrics()['data/skipped/missing_image']).toBe(0);
    const batch = await t2.next(2);
    expect(batch.map((p) => p.row.source.line)).toEqual([1, 3]);
    expect(t2.metrics()['data/skipped/missing_image']).toBe(1);
    expect(lazy.sink.messages.some((m) => m.includes(`${lazy.file}:2 (missing image): image 1 of 1 (${path.join(imgs, 'nope.png')}) not found`))).toBe(true);
  });

  it('an undecodable image file or image bytes', async () => {
    const { file, sink, promise } = await load(
      [ok(0), { image: 'corrupt.png', problem: 'Q1', solution: '1' }, { image: 'garbage.png', problem: 'Q2', solution: '2' }, ok(3), ok(4)],
      'corrupt.jsonl',
    );
    const { train } = await promise;
    const batch = await train.next(3);
    expect(batch.map((p) => p.row.source.line)).toEqual([1, 4, 5]);
    expect(train.metrics()['data/skipped/undecodable_image']).toBe(2);
    expect(train.metrics()['data/skipped_total']).toBe(2);
    expect(sink.messages.some((m) => m.includes(`${file}:2 (undecodable image): image 1 of 1 (${path.join(imgs, 'corrupt.png')}): Cannot decode image`))).toBe(true);
    expect(sink.messages.some((m) => m.includes(`${file}:3 (undecodable image)`))).toBe(true);

    const good = await pngBytes(56, 56, 3);
    const pq = writeVerlParquet(path.join(dir, 'bytes.parquet'), [
      { data_source: 'd', prompt: [{ role: 'user', content: '<image>A' }], images: [{ bytes: good, path: null }], ground_truth: '1', reward_func: 'acc', index: 0 },
      { data_source: 'd', prompt: [{ role: 'user', content: '<image>B' }], images: [{ bytes: truncated, path: null }], ground_truth: '2', reward_func: 'acc', index: 1 },
      { data_source: 'd', prompt: [{ role: 'user', content: '<image>C' }], images: [{ bytes: good, path: null }], ground_truth: '3', reward_func: 'acc', index: 2 },
    ]);
    const s2 = logSink();
    const { train: t2 } = await loadPromptDatasets({ sources: [pq], shuffle: false }, { processor: tinyProcessor(), log: s2.log });
    expect((await t2.next(2)).map((p) => p.row.groundTruth)).toEqual(['1', '3']);
    expect(s2.messages.some((m) => m.includes(`${pq} row 2 (undecodable image): image 1 of 1 (${truncated.byteLength} bytes)`))).toBe(true);
    // a known-bad row is not retried (or re-counted) in later epochs
    await t2.next(5);
    expect(t2.metrics()['data/skipped/undecodable_image']).toBe(1);
  });
});

describe('a mostly broken dataset stops with an error', () => {
  it('at load: more than maxBadFraction malformed lines (and not at or below it)', async () => {
    const bad = (n: number) => Array.from({ length: n }, () => '{oops');
    const fine = await load([...Array.from({ length: 5 }, (_, i) => ok(i)), ...bad(5)], 'half.jsonl');
    expect((await fine.promise).train.size).toBe(5);
    const broken = await load([...Array.from({ length: 4 }, (_, i) => ok(i)), ...bad(6)], 'broken.jsonl');
    const err = (await broken.promise.catch((e: unknown) => e)) as DataError;
    expect(err).toBeInstanceOf(DataError);
    expect(err.code).toBe('ERR_DATA_MOSTLY_BROKEN');
    expect(err.message).toContain('6 of 10 rows are unusable (60.0%, above maxBadFraction 0.5)');
    expect(err.message).toContain('Skipped: 6 malformed line');
    expect(err.message).toContain(`${broken.file}:5 (malformed line)`);
    expect(err.remedy).toContain('maxBadFraction');
    // the threshold is configurable
    const lenient = await load([...Array.from({ length: 4 }, (_, i) => ok(i)), ...bad(6)], 'lenient.jsonl', { maxBadFraction: 0.7 });
    expect((await lenient.promise).train.size).toBe(4);
  });

  it('while sampling: most images undecodable', async () => {
    const rows = Array.from({ length: 10 }, (_, i) => (i % 5 === 0 ? ok(i) : { image: 'garbage.png', problem: `Q${i}`, solution: `${i}` }));
    const { promise } = await load(rows, 'lazy-broken.jsonl');
    const { train } = await promise;
    // rows 1 and 6 are good; finding them passes over 4 bad rows (not yet more than half of the 10)
    expect((await train.next(2)).map((p) => p.row.source.line)).toEqual([1, 6]);
    expect(train.cursor).toEqual({ epoch: 0, index: 6 });
    const err = (await train.next(2).catch((e: unknown) => e)) as DataError;
    expect(err).toBeInstanceOf(DataError);
    expect(err.code).toBe('ERR_DATA_MOSTLY_BROKEN');
    expect(err.message).toContain('6 undecodable image');
    expect(err.message).toContain('lazy-broken.jsonl:2 (undecodable image)');
    expect(train.cursor).toEqual({ epoch: 0, index: 6 }); // a failed call does not move the cursor

    const { promise: p2 } = await load(rows, 'lazy-lenient.jsonl', { maxBadFraction: 0.9 });
    const t2 = (await p2).train;
    expect((await t2.next(2)).map((p) => p.row.source.line)).toEqual([1, 6]);

    const { promise: p3 } = await load(rows.map((r, i) => (i % 5 === 0 ? { ...(r as object), image: 'garbage.png' } : r)), 'all-bad.jsonl', { maxBadFraction: 1 });
    const t3 = (await p3).train;
    await expect(t3.next(1)).rejects.toThrow(/Every one of the 10 rows of the train split failed to prepare/);
  });
});

describe('the bad share is estimated once enough rows were tried', () => {
  it('64 rows, 3 of 4 with a broken image: stops after 32 rows tried, long before half of all rows failed', async () => {
    const rows = Array.from({ length: 64 }, (_, i) => (i % 4 === 0 ? ok(i) : { image: 'garbage.png', problem: `Q${i}`, solution: `${i}` }));
    const { promise } = await load(rows, 'estimate.jsonl', { maxWarnings: 0 });
    const { train } = await promise;
    let served = 0;
    let err: unknown;
    for (let k = 0; k < 16 && err === undefined; k++) {
      try {
        served += (await train.next(1)).length;
      } catch (e) {
        err = e;
      }
    }
    expect(served).toBe(8);
    expect((err as DataError).code).toBe('ERR_DATA_MOSTLY_BROKEN');
    expect((err as DataError).message).toContain('estimated from 32 rows tried so far');
    expect((err as DataError).message).toContain('24 of 32 rows are unusable (75.0%');
  });
});

describe('options', () => {
  const ctx = { processor: tinyProcessor(), log: () => {} };
  it('unknown keys get a suggestion; bad values name the field', async () => {
    await expect(loadPromptDatasets({ sources: ['x.jsonl'], promptTemplte: 'r1' } as never, ctx)).rejects.toThrow(
      /Unknown dataset option "promptTemplte" \(did you mean "promptTemplate"\?\)/,
    );
    await expect(loadPromptDatasets({ sources: [{ path: 'x.jsonl', imageFolders: 'i' }] } as never, ctx)).rejects.toThrow(/did you mean "imageFolder"/);
    await expect(loadPromptDatasets({ sources: ['x.jsonl'], maxBadFraction: 2 }, ctx)).rejects.toThrow(/maxBadFraction/);
    await expect(loadPromptDatasets({ sources: ['x.jsonl'], minPixels: 5000, maxPixels: 4000 }, ctx)).rejects.toThrow(/minPixels \(5000\) is larger/);
    await expect(loadPromptDatasets({ sources: ['x.jsonl'], promptTemplate: 'r2' }, ctx)).rejects.toThrow(/Did you mean "r1"/);
    await expect(loadPromptDatasets({ sources: [] }, ctx)).rejects.toThrow(DataError);
    await expect(loadPromptDatasets({ sources: [path.join(dir, 'absent.jsonl')] }, ctx)).rejects.toThrow(/Data file not found/);
  });
});
