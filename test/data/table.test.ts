import { describe, expect, it } from 'vitest';
import { concatTables, readRow, readRows, rowsToTable, sliceTable } from '../../src/data/table.js';
import type { PromptRow } from '../../src/data/types.js';
import { noise } from './helpers.js';

function sampleRows(): PromptRow[] {
  return [
    {
      id: 'a', source: { file: '/d/a.parquet', line: 1 }, format: 'verl',
      messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Q é ✓' }] }],
      images: [{ bytes: noise(37, 1) }], groundTruth: { box: [1, 2, 3, 4] }, rewardMethod: 'iou', dataSource: 'refcoco',
      extra: { extra_info: { index: 0, nested: [1, 'two', null] } },
    },
    {
      id: 'b', source: { file: '/d/b.jsonl', line: 9 }, format: 'vlm-r1',
      messages: [{ role: 'system', content: [{ type: 'text', text: 's' }] }, { role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image' }, { type: 'image' }] }],
      images: [{ path: '/imgs/1.png' }, { bytes: noise(5, 2) }], groundTruth: 3, rewardMethod: null, dataSource: null, extra: {},
    },
    {
      id: 'c', source: { file: '/d/b.jsonl', line: 10 }, format: 'r1v',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'text only' }] }],
      images: [], groundTruth: null, rewardMethod: 'acc', dataSource: null, extra: { has_image: false },
    },
  ];
}

function comparable(r: PromptRow): unknown {
  return { ...r, images: r.images.map((i) => ('bytes' in i ? { bytes: Array.from(i.bytes) } : i)) };
}

describe('prompt rows as an Arrow table', () => {
  it('round-trips every field, image bytes and JSON columns included', () => {
    const rows = sampleRows();
    const table = rowsToTable(rows);
    expect(table.numRows).toBe(3);
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual([
      'id:Utf8', 'file:Utf8', 'line:Int32', 'format:Utf8', 'messages:Utf8', 'images:List<Struct<{path:Utf8, bytes:Binary}>>',
      'videos:List<Struct<{path:Utf8, frames:List<Struct<{path:Utf8, bytes:Binary}>>}>>',
      'ground_truth:Utf8', 'reward_method:Utf8', 'data_source:Utf8', 'extra:Utf8',
    ]);
    expect(readRows(table).map(comparable)).toEqual(rows.map(comparable));
    expect(readRow(table, 1).images[1]).toBeInstanceOf(Object);
    expect(() => readRow(table, 3)).toThrow(/outside the table's 3 rows/);
  });

  it('slices share buffers, concatenation keeps order, an empty table is valid', () => {
    const rows = sampleRows();
    const t = rowsToTable(rows);
    expect(readRows(sliceTable(t, 1, 3)).map((r) => r.id)).toEqual(['b', 'c']);
    const both = concatTables([t, rowsToTable(rows.slice(0, 1))]);
    expect(readRows(both).map((r) => r.id)).toEqual(['a', 'b', 'c', 'a']);
    expect(Array.from((readRow(both, 3).images[0] as { bytes: Uint8Array }).bytes)).toEqual(Array.from(noise(37, 1)));
    const empty = rowsToTable([]);
    expect(empty.numRows).toBe(0);
    expect(concatTables([]).numRows).toBe(0);
    expect(readRows(concatTables([empty, t])).length).toBe(3);
  });
});
