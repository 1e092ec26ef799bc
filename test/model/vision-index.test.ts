import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  buildVisionIndex,
  invertPermutation,
  normalizeGrids,
  readModelConfig,
  visionCuSeqlens,
  visionRotaryPosIds,
  visionWindowIndex,
} from '../../src/model/index.js';
import { FIXTURES, ints, randInt, rng, tensor } from './fixtures.js';

const cfgA = readModelConfig(join(FIXTURES, 'tiny-a'));
const cfgQ2 = readModelConfig(join(FIXTURES, 'tiny-q2vl'));

/**
 * HF `get_window_index`, transcribed op by op: index = arange(t·lh·lw).reshape(t, lh, lw); pad bottom/right by
 * (ws − lh % ws, ws − lw % ws) with −100; reshape (t, nh, ws, nw, ws) → permute(0,1,3,2,4) → (t, nh·nw, ws, ws);
 * seqlens = count(≠ −100); keep entries ≠ −100; cu = cumsum(seqlens)·M² + last; then unique_consecutive.
 */
function hfWindowIndex(grids: number[][], M: number, ws: number): { index: number[]; cu: number[] } {
  const index: number[] = [];
  let cu: number[] = [0];
  let offset = 0;
  for (const [t, h, w] of grids) {
    const lh = h! / M;
    const lw = w! / M;
    const padH = ws - (lh % ws);
    const padW = ws - (lw % ws);
    const PH = lh + padH;
    const PW = lw + padW;
    const padded: number[] = [];
    for (let f = 0; f < t!; f++) for (let r = 0; r < PH; r++) for (let c = 0; c < PW; c++) padded.push(r < lh && c < lw ? f * lh * lw + r * lw + c : -100);
    const nh = PH / ws;
    const nw = PW / ws;
    const seqlens: number[] = [];
    for (let f = 0; f < t!; f++)
      for (let a = 0; a < nh; a++)
        for (let b = 0; b < nw; b++) {
          let count = 0;
          for (let i = 0; i < ws; i++)
            for (let j = 0; j < ws; j++) {
              const v = padded[f * PH * PW + (a * ws + i) * PW + (b * ws + j)]!;
              if (v !== -100) {
                index.push(v + offset);
                count++;
              }
            }
          seqlens.push(count);
        }
    const last = cu[cu.length - 1]!;
    let run = 0;
    for (const s of seqlens) {
      run += s;
      cu.push(run * M * M + last);
    }
    offset += t! * lh * lw;
  }
  cu = cu.filter((v, i) => i === 0 || v !== cu[i - 1]);
  return { index, cu };
}

/** HF rot_pos_emb: hpos = arange(h)[:, None].expand(h, w).reshape(h/M, M, w/M, M).permute(0, 2, 1, 3).flatten(). */
function hfPosIds(grids: number[][], M: number): number[] {
  const out: number[] = [];
  for (const [t, h, w] of grids) {
    const hp: number[] = [];
    const wp: number[] = [];
    // element (i0, j0, i1, j1) of the permuted view is (row, col) = (i0·M + i1, j0·M + j1)
    for (let i0 = 0; i0 < h! / M; i0++)
      for (let j0 = 0; j0 < w! / M; j0++)
        for (let i1 = 0; i1 < M; i1++)
          for (let j1 = 0; j1 < M; j1++) {
            hp.push(i0 * M + i1);
            wp.push(j0 * M + j1);
          }
    for (let f = 0; f < t!; f++) for (let k = 0; k < hp.length; k++) out.push(hp[k]!, wp[k]!);
  }
  return out;
}

describe('vision index: fixtures (exact)', () => {
  it('tiny-a single image: pos_ids, window_index, cu_window_seqlens, cu_seqlens', () => {
    const grid = ints(tensor('tiny-a', 'single.image_grid_thw'));
    const v = buildVisionIndex(cfgA, grid);
    expect(Array.from(v.posIds)).toEqual(ints(tensor('tiny-a', 'single.debug.vision.pos_ids')));
    expect(Array.from(v.windowIndex!)).toEqual(ints(tensor('tiny-a', 'single.debug.vision.window_index')));
    expect(Array.from(v.cuWindowSeqlens!)).toEqual(ints(tensor('tiny-a', 'single.debug.vision.cu_window_seqlens')));
    expect(Array.from(v.cuSeqlens)).toEqual(ints(tensor('tiny-a', 'single.debug.vision.cu_seqlens')));
    expect(Array.from(v.cuWindowSeqlens!)).toEqual([0, 16, 32, 40, 48]); // README: window seqlens [16, 16, 8, 8]
    expect(v.numPatches).toBe(48);
    expect(v.numTokens).toBe(12);
    expect(v.maxGridSide).toBe(8);
  });

  it('tiny-q2vl single image: pos_ids and cu_seqlens; no windows', () => {
    const v = buildVisionIndex(cfgQ2, ints(tensor('tiny-q2vl', 'single.image_grid_thw')));
    expect(Array.from(v.posIds)).toEqual(ints(tensor('tiny-q2vl', 'single.debug.vision.pos_ids')));
    expect(Array.from(v.cuSeqlens)).toEqual(ints(tensor('tiny-q2vl', 'single.debug.vision.cu_seqlens')));
    expect(v.windowIndex).toBeNull();
    expect(v.reverseIndex).toBeNull();
    expect(v.cuWindowSeqlens).toBeNull();
  });

  it('multi-image case: per-image offsets, concatenated pos ids, continuing windows', () => {
    const grids = ints(tensor('tiny-a', 'multi.image_grid_thw')); // [1,6,8], [1,4,8]
    const v = buildVisionIndex(cfgA, grids);
    const a = buildVisionIndex(cfgA, grids.slice(0, 3));
    const b = buildVisionIndex(cfgA, grids.slice(3));
    expect(v.numPatches).toBe(80);
    expect(Array.from(v.imagePatchOffsets)).toEqual([0, 48, 80]);
    expect(Array.from(v.imageTokenOffsets)).toEqual([0, 12, 20]);
    expect(Array.from(v.cuSeqlens)).toEqual([0, 48, 80]);
    expect(Array.from(v.posIds)).toEqual([...a.posIds, ...b.posIds]);
    expect(Array.from(v.windowIndex!)).toEqual([...a.windowIndex!, ...Array.from(b.windowIndex!, (x) => x + 12)]);
    expect(Array.from(v.cuWindowSeqlens!)).toEqual([...a.cuWindowSeqlens!, ...Array.from(b.cuWindowSeqlens!.slice(1), (x) => x + 48)]);
    // windows never straddle images: every image boundary is a window boundary
    expect(Array.from(v.cuWindowSeqlens!)).toEqual(expect.arrayContaining(Array.from(v.cuSeqlens)));
    // merged tokens of image k stay inside image k after the permutation
    for (let k = 0; k < 20; k++) expect(v.windowIndex![k]! < 12).toBe(k < 12);
    expect(Array.from(invertPermutation(v.reverseIndex!))).toEqual(Array.from(v.windowIndex!));
    // the multi case's embeddings are the two single-image embeddings stacked: per-image offsets line up
    expect(tensor('tiny-a', 'multi.image_embeds').shape).toEqual([v.numTokens, 64]);
  });
});

describe('vision index: rules', () => {
  it('spec 3.2 example: grid (1,4,4) patch order', () => {
    const want = [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 0], [2, 1], [3, 0], [3, 1], [2, 2], [2, 3], [3, 2], [3, 3]];
    expect(Array.from(visionRotaryPosIds([[1, 4, 4]], 2))).toEqual(want.flat());
  });

  it('spec appendix A.2 examples (grids (1,16,16) and (1,12,20), window 4 units)', () => {
    const a = visionWindowIndex([[1, 16, 16]], 2, 4);
    const row = (s: number): number[] => [s, s + 1, s + 2, s + 3];
    expect(Array.from(a.windowIndex)).toEqual([
      ...[0, 8, 16, 24].flatMap(row),
      ...[4, 12, 20, 28].flatMap(row),
      ...[32, 40, 48, 56].flatMap(row),
      ...[36, 44, 52, 60].flatMap(row),
    ]);
    expect(Array.from(a.cuWindowSeqlens)).toEqual([0, 64, 128, 192, 256]);
    const b = visionWindowIndex([[1, 12, 20]], 2, 4);
    expect(Array.from(b.windowIndex)).toEqual([
      0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33,
      4, 5, 6, 7, 14, 15, 16, 17, 24, 25, 26, 27, 34, 35, 36, 37,
      8, 9, 18, 19, 28, 29, 38, 39,
      40, 41, 42, 43, 50, 51, 52, 53, 44, 45, 46, 47, 54, 55, 56, 57, 48, 49, 58, 59,
    ]);
    expect(Array.from(b.cuWindowSeqlens)).toEqual([0, 64, 128, 160, 192, 224, 240]);
  });

  it('a permutation that is not its own inverse (tiny-b image1 grid (1,14,18), window 112 px)', () => {
    const tinyB = { spatialMergeSize: 2, windowed: true, windowUnits: Math.floor(112 / 2 / 14) };
    const v = buildVisionIndex(tinyB, [[1, 14, 18]]);
    // README: window seqlens (patches) for tiny-b image1 are [64, 64, 16, 48, 48, 12]
    expect(Array.from(v.cuWindowSeqlens!)).toEqual([0, 64, 128, 144, 192, 240, 252]);
    const w = v.windowIndex!;
    const inv = v.reverseIndex!;
    expect(Array.from(inv)).not.toEqual(Array.from(w));
    for (let k = 0; k < w.length; k++) {
      expect(inv[w[k]!]).toBe(k); // argsort: gather by windowIndex, then by reverseIndex, is the identity
      expect(w[inv[k]!]).toBe(k);
    }
    // merged token r (raster order) sits at window position inv[r]: its window holds r's 7×9-grid row/col
    const lw = 9;
    for (let r = 0; r < w.length; r++) {
      const win = v.cuWindowSeqlens!.findIndex((c) => c > inv[r]! * 4) - 1;
      const [row, col] = [Math.floor(r / lw), r % lw];
      expect(win).toBe(Math.floor(row / 4) * 3 + Math.floor(col / 4));
    }
  });

  it('matches HF get_window_index and rot_pos_emb transcriptions on random multi-image grids', () => {
    const r = rng(7);
    for (let trial = 0; trial < 60; trial++) {
      const M = randInt(r, 1, 3);
      const ws = randInt(r, 1, 4);
      const grids = Array.from({ length: randInt(r, 1, 3) }, () => [randInt(r, 1, 2), M * randInt(r, 1, 9), M * randInt(r, 1, 9)]);
      const ref = hfWindowIndex(grids, M, ws);
      const got = visionWindowIndex(grids, M, ws);
      expect(Array.from(got.windowIndex)).toEqual(ref.index);
      expect(Array.from(got.cuWindowSeqlens)).toEqual(ref.cu);
      expect(Array.from(visionRotaryPosIds(grids, M))).toEqual(hfPosIds(grids, M));
      const cu = [0];
      for (const [t, h, w] of grids) for (let f = 0; f < t!; f++) cu.push(cu[cu.length - 1]! + h! * w!);
      expect(Array.from(visionCuSeqlens(grids, M))).toEqual(cu);
    }
  });

  it('accepts flat and int64 grids and rejects bad ones naming the grid', () => {
    expect(normalizeGrids('g', BigInt64Array.of(1n, 4n, 6n), 2)).toEqual([[1, 4, 6]]);
    expect(normalizeGrids('g', [1, 4, 6, 1, 2, 2], 2)).toEqual([[1, 4, 6], [1, 2, 2]]);
    expect(() => normalizeGrids('g', [1, 4], 2)).toThrow(/flat grid array length 2 is not a multiple of 3/);
    expect(() => normalizeGrids('g', [[1, 4, 5]], 2)).toThrow(/g\[0\]: grid h 4 and w 5 must be divisible by spatial_merge_size 2/);
    expect(() => normalizeGrids('g', [[1, 4, 4], [0, 2, 2]], 2)).toThrow(/g\[1\]: grid \[0,2,2\] must be positive integers/);
    expect(() => normalizeGrids('g', [[1, 4]], 2)).toThrow(/g\[0\]: expected \[t, h, w\]/);
    expect(() => buildVisionIndex(cfgA, [])).toThrow(/at least one image grid/);
    expect(() => visionWindowIndex([[1, 4, 4]], 2, 0)).toThrow(/windowUnits must be a positive integer/);
    expect(() => invertPermutation([0, 2, 2])).toThrow(/element 2 \(2\) breaks the permutation/);
  });
});
