import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPromptDatasets, type PromptDatasets } from '../../src/data/dataset.js';
import type { PromptDatasetOptions } from '../../src/data/options.js';
import { DataError } from '../../src/data/errors.js';
import { permutation } from '../../src/data/shuffle.js';
import { tempDir, tinyProcessor, writeJsonl, writePng } from './helpers.js';

const { dir, cleanup } = tempDir();
afterAll(cleanup);
const imgs = path.join(dir, 'imgs');
const N = 24;
let file = '';

beforeAll(async () => {
  await writePng(path.join(imgs, 'a.png'), 56, 56, 1);
  await writePng(path.join(imgs, 'b.png'), 84, 56, 2);
  // mostly text-only rows (fast), every 6th with an image, two rows whose image file is missing (skipped while sampling)
  const rows = Array.from({ length: N }, (_, i) => {
    const base = { id: `q${i}`, problem: `Q${i}`, solution: `<answer> ${i} </answer>` };
    if (i === 5 || i === 17) return { ...base, image: 'missing.png' };
    if (i % 6 === 0) return { ...base, image: i % 12 === 0 ? 'a.png' : 'b.png' };
    return base;
  });
  file = writeJsonl(path.join(dir, 'train.jsonl'), rows);
});

const quiet = () => ({ processor: tinyProcessor(), log: () => {} });
function load(extra: Partial<PromptDatasetOptions> = {}): Promise<PromptDatasets> {
  return loadPromptDatasets({ sources: [{ path: file, imageFolder: imgs }], checkImages: false, ...extra }, quiet());
}
const ids = (batch: { row: { id: string } }[]) => batch.map((p) => p.row.id);

describe('seeded shuffle', () => {
  it('is a permutation, fixed by (seed, epoch), different across epochs and seeds', () => {
    const p = permutation(1000, 42, 1, 0);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(permutation(1000, 42, 1, 0)).toEqual(p);
    expect(permutation(1000, 42, 1, 1)).not.toEqual(p);
    expect(permutation(1000, 43, 1, 0)).not.toEqual(p);
    expect(permutation(1000, 42, 2, 0)).not.toEqual(p);
    expect(permutation(1000, 42 + 2 ** 32, 1, 0)).not.toEqual(p);
    // known values: the order must not change between versions (resumed runs depend on it)
    expect(Array.from(permutation(10, 42, 1, 0))).toEqual([9, 6, 4, 1, 2, 5, 8, 0, 3, 7]);
    expect(Array.from(permutation(10, 42, 1, 1))).toEqual([6, 1, 2, 9, 8, 3, 7, 4, 5, 0]);
    expect(permutation(0, 1, 1, 0).length).toBe(0);
    expect(Array.from(permutation(1, 1, 1, 0))).toEqual([0]);
  });

  it('the epoch order of a dataset is the same across loads and follows the seed; shuffle off keeps file order', async () => {
    const a = (await load({ seed: 7 })).train;
    const b = (await load({ seed: 7 })).train;
    const c = (await load({ seed: 8 })).train;
    expect(a.order(0)).toEqual(b.order(0));
    expect(a.order(3)).toEqual(b.order(3));
    expect(a.order(0)).not.toEqual(c.order(0));
    expect(a.order(0)).not.toEqual(a.order(1));
    expect(Array.from((await load({ shuffle: false })).train.order(2))).toEqual(Array.from({ length: N }, (_, i) => i));
  });
});

describe('next(n) and the cursor', () => {
  it('walks the epoch order across epoch boundaries, skipping rows whose image is missing', async () => {
    const { train } = await load({ seed: 3 });
    const expected = [...train.order(0), ...train.order(1)].map((i) => `q${i}`).filter((id) => id !== 'q5' && id !== 'q17');
    const got: string[] = [];
    for (let k = 0; k < 5; k++) got.push(...ids(await train.next(7)));
    expect(got).toEqual(expected.slice(0, 35));
    expect(train.cursor.epoch).toBe(1);
    expect(train.metrics()['data/skipped/missing_image']).toBe(2);
    expect(train.metrics()['data/epoch']).toBe(1);
  });

  it('a state saved mid-run and restored in a fresh load gives exactly the same prompts in the same order', async () => {
    const first = (await load({ seed: 11 })).train;
    await first.next(5);
    await first.next(9);
    const state = JSON.parse(JSON.stringify(first.state())) as ReturnType<typeof first.state>;
    const cont = [await first.next(6), await first.next(8), await first.next(10)];

    const resumed = (await load({ seed: 11 })).train;
    resumed.restore(state);
    expect(resumed.cursor).toEqual({ epoch: state.epoch, index: state.index });
    const again = [await resumed.next(6), await resumed.next(8), await resumed.next(10)];
    expect(again.map(ids)).toEqual(cont.map(ids));
    for (let b = 0; b < cont.length; b++) {
      for (let i = 0; i < cont[b]!.length; i++) {
        expect(Array.from(again[b]![i]!.input.inputIds)).toEqual(Array.from(cont[b]![i]!.input.inputIds));
        expect(again[b]![i]!.input.pixelValues).toEqual(cont[b]![i]!.input.pixelValues);
      }
    }
    // a run that never stopped sees the same sequence
    const straight = (await load({ seed: 11 })).train;
    const all = ids([...(await straight.next(14)), ...(await straight.next(24))]);
    expect(all.slice(14)).toEqual(cont.flatMap(ids));
  });

  it('refuses a state from another seed, shuffle setting or row count', async () => {
    const { train } = await load({ seed: 1 });
    const s = train.state();
    const other = (await load({ seed: 2 })).train;
    expect(() => other.restore(s)).toThrow(DataError);
    expect(() => other.restore(s)).toThrow(/checkpoint has seed 1, this dataset 2/);
    const noShuffle = (await load({ seed: 1, shuffle: false })).train;
    expect(() => noShuffle.restore(s)).toThrow(/shuffle/);
    const split = (await load({ seed: 1, validationRatio: 0.25 })).train;
    try {
      split.restore(s);
      expect.unreachable();
    } catch (e) {
      expect((e as DataError).code).toBe('ERR_DATA_RESUME');
      expect((e as DataError).message).toContain(`numRows ${N}`);
    }
    expect(() => train.restore({ ...s, index: N + 1 })).toThrow(RangeError);
    await expect(train.next(0)).rejects.toThrow(RangeError);
  });
});

describe('validation split', () => {
  it('by ratio: disjoint, covering, stable for a seed, different for another seed; validation in file order', async () => {
    const a = await load({ seed: 5, validationRatio: 0.25 });
    const b = await load({ seed: 5, validationRatio: 0.25 });
    const c = await load({ seed: 6, validationRatio: 0.25 });
    const rowsOf = (d: PromptDatasets['train']) => Array.from({ length: d.size }, (_, i) => d.row(i).id);
    const va = rowsOf(a.validation!), ta = rowsOf(a.train);
    expect(va.length).toBe(6);
    expect(ta.length).toBe(N - 6);
    expect(va.filter((id) => ta.includes(id))).toEqual([]);
    expect([...va, ...ta].sort()).toEqual(Array.from({ length: N }, (_, i) => `q${i}`).sort());
    expect(rowsOf(b.validation!)).toEqual(va);
    expect(rowsOf(b.train)).toEqual(ta);
    expect(rowsOf(c.validation!)).not.toEqual(va);
    const num = (id: string) => Number(id.slice(1));
    expect(va.map(num)).toEqual([...va.map(num)].sort((x, y) => x - y));
    // the training order never contains a validation row
    const seen = new Set<string>();
    for (let k = 0; k < 4; k++) for (const id of ids(await a.train.next(9))) seen.add(id);
    expect([...seen].filter((id) => va.includes(id))).toEqual([]);
    // one validation pass, in file order, in batches
    const batches: string[][] = [];
    for await (const batch of a.validation!.batches(4)) batches.push(ids(batch));
    expect(batches.flat()).toEqual(va.filter((id) => id !== 'q5' && id !== 'q17'));
    expect(batches.slice(0, -1).every((x) => x.length === 4)).toBe(true);
  });

  it('from separate files, and never both ways at once', async () => {
    const vfile = writeJsonl(path.join(dir, 'val.jsonl'), [{ problem: 'V0', solution: '0' }, { problem: 'V1', solution: '1' }]);
    const { train, validation } = await loadPromptDatasets(
      { sources: [{ path: file, imageFolder: imgs }], validationSources: [vfile], checkImages: false }, quiet());
    expect(train.size).toBe(N);
    expect(validation!.size).toBe(2);
    expect(validation!.row(1).source).toEqual({ file: vfile, line: 2 });
    await expect(loadPromptDatasets({ sources: [file], validationSources: [vfile], validationRatio: 0.1 }, quiet())).rejects.toThrow(
      /Both validationSources and validationRatio/,
    );
    expect((await load()).validation).toBeNull();
  });
});
