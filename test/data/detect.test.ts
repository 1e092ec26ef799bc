import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPromptDatasets } from '../../src/data/dataset.js';
import { detectFormat } from '../../src/data/detect.js';
import { DataError } from '../../src/data/errors.js';
import { tempDir, tinyProcessor, writeJsonl, writeVerlParquet } from './helpers.js';

const { dir, cleanup } = tempDir();
afterAll(cleanup);
const quiet = { processor: tinyProcessor(), log: () => {} };

describe('format detection', () => {
  it('recognises each format from its fields', () => {
    expect(detectFormat([{ conversations: [], image: 'a' }], 'x')).toBe('vlm-r1');
    expect(detectFormat([{ prompt: [{ role: 'user', content: 'q' }], reward_model: { ground_truth: '1' } }], 'x')).toBe('verl');
    expect(detectFormat([{ problem: 'q', solution: 's' }], 'x')).toBe('r1v');
    expect(detectFormat([{ problem: 'q', answer: 's', images: [] }], 'x')).toBe('r1v');
    // the format most sampled rows fit wins (a stray row does not decide)
    expect(detectFormat([{ problem: 'q', solution: 's' }, { conversations: [] }, { conversations: [] }], 'x')).toBe('vlm-r1');
    // a plain-string prompt is not verl's message list
    expect(() => detectFormat([{ prompt: 'q', reward_model: {} }], 'x')).toThrow(DataError);
  });

  it('an unknown layout fails with the expected fields of every format and the fields found', async () => {
    const file = writeJsonl(path.join(dir, 'odd.jsonl'), [{ question: 'q', label: 'a', picture: 'p.png' }]);
    const err = await loadPromptDatasets({ sources: [file] }, quiet).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    const e = err as DataError;
    expect(e.code).toBe('ERR_DATA_FORMAT');
    expect(e.message).toContain(`Cannot tell the format of ${file}`);
    expect(e.message).toContain('"question", "label", "picture"');
    expect(e.message).toContain('vlm-r1: conversations');
    expect(e.message).toContain('verl: prompt + reward_model.ground_truth');
    expect(e.message).toContain('r1v: problem + solution');
    expect(e.remedy).toContain('"format"');
  });

  it('detects per file, and an explicit format skips detection', async () => {
    const vlm = writeJsonl(path.join(dir, 'a.jsonl'), [{ conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }] }]);
    const r1v = writeJsonl(path.join(dir, 'b.jsonl'), [{ problem: 'Q', solution: 'A' }]);
    const verl = writeVerlParquet(path.join(dir, 'c.parquet'), [
      { data_source: 'd', prompt: [{ role: 'user', content: 'Q' }], images: null, ground_truth: 'A', reward_func: 'acc', index: 5 },
    ]);
    const { train } = await loadPromptDatasets({ sources: [vlm, r1v, verl], shuffle: false }, quiet);
    expect([0, 1, 2].map((i) => train.row(i).format)).toEqual(['vlm-r1', 'r1v', 'verl']);
    // forcing the wrong format turns every row into an invalid-row skip, which is then a mostly-broken file
    const err = await loadPromptDatasets({ sources: [{ path: r1v, format: 'vlm-r1' }] }, quiet).catch((e: unknown) => e);
    expect((err as DataError).code).toBe('ERR_DATA_MOSTLY_BROKEN');
    expect((err as DataError).message).toContain(`${r1v}:1 (invalid row): "conversations" must be a list`);
    expect((err as DataError).message).toContain('(read as vlm-r1)');
  });

  it('JSON arrays are read with their item numbers; an unknown extension is refused', async () => {
    const file = path.join(dir, 'rows.json');
    writeFileSync(file, JSON.stringify([{ problem: 'Q1', solution: 'A1' }, 7, { problem: 'Q3', solution: 'A3' }]));
    const warnings: string[] = [];
    const { train } = await loadPromptDatasets({ sources: [file], shuffle: false }, { processor: tinyProcessor(), log: (m) => warnings.push(m) });
    expect(train.size).toBe(2);
    expect(train.row(1).source.line).toBe(3);
    expect(warnings.some((w) => w.includes(`${file} item 2 (malformed line): expected an object, got number`))).toBe(true);
    const csv = path.join(dir, 'rows.csv');
    writeFileSync(csv, 'a,b\n');
    await expect(loadPromptDatasets({ sources: [csv] }, quiet)).rejects.toThrow(/Unknown data file type ".csv"/);
  });
});
