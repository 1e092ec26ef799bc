import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { decodePositionIds, getRopeIndex, readModelConfig, type ModelConfig, type RopeIndexConfig } from '../../src/model/index.js';
import { CONFIG_NAMES, expected, FIXTURES, inputsJson, ints, randInt, rng, tensor } from './fixtures.js';

const configs = Object.fromEntries(CONFIG_NAMES.map((n) => [n, readModelConfig(join(FIXTURES, n))])) as Record<(typeof CONFIG_NAMES)[number], ModelConfig>;

/**
 * A literal port of HF transformers v4 `Qwen2_5_VLModel.get_rope_index` / `Qwen2VLModel.get_rope_index`
 * (llm_pos_ids_list construction: arange/expand/stack blocks, st_idx = last block max + 1), images only.
 * Kept deliberately close to the Python so the implementation under test is checked against a second reading.
 */
function hfGetRopeIndex(cfg: RopeIndexConfig, ids: number[][], mask: number[][] | null, grids: number[][]): { pos: number[][][]; deltas: number[] } {
  const B = ids.length;
  const L = ids[0]!.length;
  const M = cfg.spatialMergeSize;
  const pos = [0, 1, 2].map(() => ids.map(() => new Array<number>(L).fill(1)));
  const deltas: number[] = [];
  let imageIndex = 0;
  for (let i = 0; i < B; i++) {
    const keepIdx = ids[i]!.map((_, j) => j).filter((j) => !mask || mask[i]![j] === 1);
    const inputTokens = keepIdx.map((j) => ids[i]![j]!);
    let imageNums = 0;
    inputTokens.forEach((t, j) => {
      if (t === cfg.visionStartTokenId && inputTokens[j + 1] === cfg.imageTokenId) imageNums++;
    });
    const list: number[][][] = []; // blocks of [3][n]
    const blockMax = (b: number[][]): number => Math.max(...b.flat());
    let st = 0;
    for (let k = 0; k < imageNums; k++) {
      const ed = inputTokens.indexOf(cfg.imageTokenId, st);
      const [t, h, w] = grids[imageIndex++]!;
      const [gt, gh, gw] = [t!, h! / M, w! / M];
      const textLen = ed - st;
      const stIdx = list.length > 0 ? blockMax(list[list.length - 1]!) + 1 : 0;
      list.push([0, 1, 2].map(() => Array.from({ length: textLen }, (_, q) => q + stIdx)));
      const tIndex: number[] = [];
      const hIndex: number[] = [];
      const wIndex: number[] = [];
      for (let a = 0; a < gt; a++)
        for (let b = 0; b < gh; b++)
          for (let c = 0; c < gw; c++) {
            // Qwen2.5-VL: t = a · second_per_grid_t (0 for images) · tokens_per_second; Qwen2-VL: t = a
            tIndex.push(cfg.modelType === 'qwen2_5_vl' ? a * 0 * 2 : a);
            hIndex.push(b);
            wIndex.push(c);
          }
      list.push([tIndex, hIndex, wIndex].map((r) => r.map((v) => v + textLen + stIdx)));
      st = ed + gt * gh * gw;
    }
    if (st < inputTokens.length) {
      const stIdx = list.length > 0 ? blockMax(list[list.length - 1]!) + 1 : 0;
      list.push([0, 1, 2].map(() => Array.from({ length: inputTokens.length - st }, (_, q) => q + stIdx)));
    }
    const rows = [0, 1, 2].map((a) => list.flatMap((b) => b[a]!));
    keepIdx.forEach((j, q) => {
      for (let a = 0; a < 3; a++) pos[a]![i]![j] = rows[a]![q]!;
    });
    deltas.push(Math.max(...rows.flat()) + 1 - L);
  }
  return { pos, deltas };
}

describe('M-RoPE position ids: fixtures (exact)', () => {
  for (const name of CONFIG_NAMES) {
    const cases: { id: string; grids?: number[]; mask?: boolean; batch: number }[] = [
      { id: 'single', grids: ints(tensor(name, 'single.image_grid_thw')), batch: 1 },
      { id: 'multi', grids: ints(tensor(name, 'multi.image_grid_thw')), batch: 1 },
      { id: 'batch', grids: ints(tensor(name, 'batch.image_grid_thw')), mask: true, batch: 2 },
      { id: 'batch_left', grids: (inputsJson(name).cases.batch_left.image_grid_thw as number[][]).flat(), mask: true, batch: 2 },
      { id: 'text_only', batch: 1 },
    ];
    for (const c of cases) {
      it(`${name} ${c.id}`, () => {
        const r = getRopeIndex(configs[name], {
          inputIds: tensor(name, `${c.id}.input_ids`).data as BigInt64Array,
          batchSize: c.batch,
          ...(c.mask ? { attentionMask: tensor(name, `${c.id}.attention_mask`).data as BigInt64Array } : {}),
          ...(c.grids ? { imageGridThw: c.grids } : {}),
        });
        const want = tensor(name, `${c.id}.position_ids`);
        expect([3, r.batchSize, r.seqLen]).toEqual(want.shape);
        expect(Array.from(r.positionIds)).toEqual(ints(want));
        expect(Array.from(r.ropeDeltas)).toEqual(ints(tensor(name, `${c.id}.rope_deltas`)));
      });
    }
  }

  it('right- and left-padded rows get the unpadded positions and the same deltas', () => {
    for (const name of CONFIG_NAMES) {
      const single = ints(tensor(name, 'single.position_ids'));
      const right = ints(tensor(name, 'batch.position_ids'));
      const left = ints(tensor(name, 'batch_left.position_ids'));
      // row 1 of both batches is the unpadded `single` prompt (length 46 = L)
      for (let a = 0; a < 3; a++) {
        expect(right.slice(a * 92 + 46, a * 92 + 92)).toEqual(single.slice(a * 46, a * 46 + 46));
        expect(left.slice(a * 92 + 46, a * 92 + 92)).toEqual(single.slice(a * 46, a * 46 + 46));
        // row 0 (25 real tokens): right padding puts them first, left padding last
        expect(right.slice(a * 92, a * 92 + 25)).toEqual(left.slice(a * 92 + 21, a * 92 + 46));
      }
      expect(expected(name).has('batch_left.rope_deltas')).toBe(true);
    }
  });
});

describe('M-RoPE position ids: rules', () => {
  const cfg = configs['tiny-a'];

  it('worked example of spec 4.2.3 (grid (1,4,6), 31 tokens, delta −3, first decoded position 28)', () => {
    const ids = [496, 9, 13, 40, 41, 42, 43, 44, 45, 46, 497, 13, 496, 14, 498, ...new Array<number>(6).fill(500), 499, 60, 61, 62, 63, 497, 13, 496, 15, 13];
    expect(ids.length).toBe(31);
    const r = getRopeIndex(cfg, { inputIds: ids, imageGridThw: [[1, 4, 6]] });
    const at = (j: number): number[] => [0, 1, 2].map((a) => r.positionIds[a * 31 + j]!);
    for (let j = 0; j < 15; j++) expect(at(j)).toEqual([j, j, j]);
    expect([15, 16, 17, 18, 19, 20].map(at)).toEqual([
      [15, 15, 15],
      [15, 15, 16],
      [15, 15, 17],
      [15, 16, 15],
      [15, 16, 16],
      [15, 16, 17],
    ]);
    expect(at(21)).toEqual([18, 18, 18]);
    for (let j = 22; j < 31; j++) expect(at(j)).toEqual([j - 3, j - 3, j - 3]);
    expect(Array.from(r.ropeDeltas)).toEqual([-3]);
    expect(Array.from(decodePositionIds(r.ropeDeltas, 31, 2))).toEqual([28, 29, 28, 29, 28, 29]);
  });

  it('decode positions continue each left-padded row at its max + 1', () => {
    for (const name of CONFIG_NAMES) {
      const ids = tensor(name, 'generate_batch.input_ids');
      const mask = tensor(name, 'generate_batch.attention_mask');
      const grids = (inputsJson(name).cases.generate_batch.image_grid_thw as number[][]).flat();
      const r = getRopeIndex(configs[name], { inputIds: ids.data as BigInt64Array, attentionMask: mask.data as BigInt64Array, batchSize: 2, imageGridThw: grids });
      const L = r.seqLen;
      const steps = 6;
      const dec = decodePositionIds(r.ropeDeltas, L, steps);
      for (let b = 0; b < 2; b++) {
        let mx = 0;
        for (let a = 0; a < 3; a++) for (let j = 0; j < L; j++) if (ints(mask)[b * L + j] === 1) mx = Math.max(mx, r.positionIds[(a * 2 + b) * L + j]!);
        for (let a = 0; a < 3; a++) for (let s = 0; s < steps; s++) expect(dec[(a * 2 + b) * steps + s]).toBe(mx + 1 + s);
      }
    }
  });

  it('Qwen2-VL numbers frames of a multi-frame grid on t; Qwen2.5-VL images keep t = base', () => {
    // text(2) [vs] pads×2 (grid (2,2,2): 2 frames × 1 token) [ve] text(1)
    const ids = [7, 8, 498, 500, 500, 499, 9];
    const q25 = getRopeIndex(cfg, { inputIds: ids, imageGridThw: [[2, 2, 2]] });
    const q2 = getRopeIndex(configs['tiny-q2vl'], { inputIds: ids, imageGridThw: [[2, 2, 2]] });
    const axes = (r: typeof q2): number[][] => [0, 1, 2].map((a) => Array.from(r.positionIds.slice(a * 7, a * 7 + 7)));
    expect(axes(q25)).toEqual([
      [0, 1, 2, 3, 3, 4, 5],
      [0, 1, 2, 3, 3, 4, 5],
      [0, 1, 2, 3, 3, 4, 5],
    ]);
    expect(axes(q2)).toEqual([
      [0, 1, 2, 3, 4, 5, 6],
      [0, 1, 2, 3, 3, 5, 6],
      [0, 1, 2, 3, 3, 5, 6],
    ]);
    expect(Array.from(q25.ropeDeltas)).toEqual([-1]);
    expect(Array.from(q2.ropeDeltas)).toEqual([0]);
  });

  it('matches a literal port of HF get_rope_index on random padded batches with several images per row', () => {
    for (const [ci, name] of CONFIG_NAMES.entries()) {
      const c = configs[name];
      const r = rng(100 + ci);
      for (let trial = 0; trial < 40; trial++) {
        const B = randInt(r, 1, 4);
        const rows: number[][] = [];
        const grids: number[][] = [];
        for (let b = 0; b < B; b++) {
          const row: number[] = [];
          const nImg = randInt(r, 0, 3);
          for (let k = 0; k < nImg; k++) {
            for (let q = randInt(r, 0, 5); q > 0; q--) row.push(randInt(r, 0, 490));
            const g = [randInt(r, 1, 2), 2 * randInt(r, 1, 4), 2 * randInt(r, 1, 4)];
            grids.push(g);
            row.push(c.visionStartTokenId, ...new Array<number>((g[0]! * g[1]! * g[2]!) / 4).fill(c.imageTokenId), c.visionEndTokenId);
          }
          for (let q = randInt(r, 0, 6); q > 0; q--) row.push(randInt(r, 0, 490));
          if (row.length === 0) row.push(5);
          rows.push(row);
        }
        const L = Math.max(...rows.map((x) => x.length)) + randInt(r, 0, 3);
        const left = r() < 0.5;
        const ids: number[][] = [];
        const mask: number[][] = [];
        for (const row of rows) {
          const pad = L - row.length;
          ids.push(left ? [...new Array<number>(pad).fill(495), ...row] : [...row, ...new Array<number>(pad).fill(495)]);
          mask.push(left ? [...new Array<number>(pad).fill(0), ...row.map(() => 1)] : [...row.map(() => 1), ...new Array<number>(pad).fill(0)]);
        }
        const ref = hfGetRopeIndex(c, ids, mask, grids);
        const got = getRopeIndex(c, { inputIds: ids.flat(), attentionMask: mask.flat(), batchSize: B, imageGridThw: grids });
        expect(Array.from(got.positionIds)).toEqual(ref.pos.flat(2));
        expect(Array.from(got.ropeDeltas)).toEqual(ref.deltas);
      }
    }
  });

  it('text only: arange without a mask, cumsum(mask) − 1 with one', () => {
    const r = getRopeIndex(cfg, { inputIds: [1, 2, 3, 4, 5, 6], batchSize: 2, attentionMask: [0, 1, 1, 1, 1, 0] });
    expect(Array.from(r.positionIds.slice(0, 6))).toEqual([1, 0, 1, 0, 1, 1]);
    expect(Array.from(r.ropeDeltas)).toEqual([-1, -1]);
    // HF quirk kept: without grids, the pads' fill value 1 counts in the max (one real token → delta 2 − L)
    expect(Array.from(getRopeIndex(cfg, { inputIds: [495, 7], attentionMask: [0, 1] }).ropeDeltas)).toEqual([0]);
    expect(Array.from(getRopeIndex(cfg, { inputIds: [495, 7], attentionMask: [0, 1], imageGridThw: [] }).ropeDeltas)).toEqual([-1]);
    const n = getRopeIndex(cfg, { inputIds: [1, 2, 3] });
    expect(Array.from(n.positionIds)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect(Array.from(n.ropeDeltas)).toEqual([0]);
  });

  it('rejects inputs that do not fit together, naming the field and numbers', () => {
    const img = [498, 500, 500, 500, 500, 499];
    expect(() => getRopeIndex(cfg, { inputIds: img })).toThrow(/imageGridThw has 0 grids, but inputIds row 0 holds image 1 of 1/);
    expect(() => getRopeIndex(cfg, { inputIds: img, imageGridThw: [[1, 4, 4], [1, 2, 2]] })).toThrow(/imageGridThw has 2 grids, but inputIds hold 1 images/);
    expect(() => getRopeIndex(cfg, { inputIds: img, imageGridThw: [[1, 2, 2]] })).toThrow(/grid \[1, 2, 2\] needs 1 image_pad tokens .* found a run of 4/);
    expect(() => getRopeIndex(cfg, { inputIds: img, imageGridThw: [[1, 3, 4]] })).toThrow(/imageGridThw\[0\]: grid h 3 and w 4 must be divisible by spatial_merge_size 2/);
    expect(() => getRopeIndex(cfg, { inputIds: [1, 498, 501, 499] })).toThrow(/videoGridThw has 0 grids, but inputIds row 0 holds video 1 of 1/);
    expect(() => getRopeIndex(cfg, { inputIds: [1, 2, 3], batchSize: 2 })).toThrow(/length 3 is not a positive multiple of batchSize 2/);
    expect(() => getRopeIndex(cfg, { inputIds: [1, 2], attentionMask: [1] })).toThrow(/attentionMask length 1 != inputIds length 2/);
    expect(() => getRopeIndex(cfg, { inputIds: [1, 2], attentionMask: [1, 2] })).toThrow(/attentionMask\[1\] is 2/);
    expect(() => getRopeIndex(cfg, { inputIds: [1, 2, 3, 4], batchSize: 2, attentionMask: [1, 1, 0, 0] })).toThrow(/row 1 has no tokens/);
    expect(() => getRopeIndex(cfg, { inputIds: [1, 2.5] })).toThrow(/inputIds\[1\]: 2.5 is not a 32-bit integer/);
    expect(() => getRopeIndex(cfg, { inputIds: null as unknown as number[] })).toThrow(TypeError);
    expect(() => decodePositionIds([0], -1)).toThrow(/cacheLength/);
  });
});
