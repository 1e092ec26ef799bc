// M-RoPE positions with videos (HF v4 get_rope_index, spec 4.2.1): expected positions derived by hand from the
// spec's formulas (written out literally below, not computed by the code under test), for Qwen2.5-VL (tiny-a,
// tokens_per_second 2) and Qwen2-VL (tiny-q2vl). Token ids of both fixtures: vision_start 498, vision_end 499,
// image_pad 500, video_pad 501.
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { getRopeIndex, readModelConfig, type RopeIndex } from '../../src/model/index.js';
import { FIXTURES } from './fixtures.js';

const q25 = readModelConfig(join(FIXTURES, 'tiny-a'));
const q2 = readModelConfig(join(FIXTURES, 'tiny-q2vl'));
const VS = 498, VE = 499, IMG = 500, VID = 501;

function axes(r: RopeIndex, row = 0): number[][] {
  const { batchSize: B, seqLen: L } = r;
  return [0, 1, 2].map((a) => Array.from(r.positionIds.slice((a * B + row) * L, (a * B + row + 1) * L)));
}

// text(3) [vs] image grid (1,4,4): 4 pads [ve] text(1) [vs] video grid (3,2,4): 3 frame pairs × 2 pads [ve] text(2)
const ids = [7, 8, 9, VS, IMG, IMG, IMG, IMG, VE, 10, VS, VID, VID, VID, VID, VID, VID, VE, 11, 12];
const prefix = [0, 1, 2, 3]; // text and vision_start: t = h = w
// Image: base 4, merged grid 2×2 → h = 4 + row, w = 4 + col, t = 4 (one frame pair); max 5. vision_end 6, text 7,
// vision_start 8; the video's base is 9 (merged grid 1×2: h = 9, w = 9, 10).
const imageT = [4, 4, 4, 4], imageH = [4, 4, 5, 5], imageW = [4, 5, 4, 5];
const videoH = [9, 9, 9, 9, 9, 9], videoW = [9, 10, 9, 10, 9, 10];

describe('getRopeIndex with videos', () => {
  it('Qwen2.5-VL: video t = base + trunc(frame · second_per_grid_t · tokens_per_second)', () => {
    expect(q25.tokensPerSecond).toBe(2);
    // second_per_grid_t 1 (fps 2, the default): t steps by 2 → 9, 11, 13; max 13 → vision_end 14, text 15, 16.
    const r = getRopeIndex(q25, { inputIds: ids, imageGridThw: [[1, 4, 4]], videoGridThw: [[3, 2, 4]], secondPerGridTs: [1] });
    expect(axes(r)).toEqual([
      [...prefix, ...imageT, 6, 7, 8, 9, 9, 11, 11, 13, 13, 14, 15, 16],
      [...prefix, ...imageH, 6, 7, 8, ...videoH, 14, 15, 16],
      [...prefix, ...imageW, 6, 7, 8, ...videoW, 14, 15, 16],
    ]);
    expect(Array.from(r.ropeDeltas)).toEqual([17 - 20]);
    // Omitted second_per_grid_ts means 1.0 per video (HF's default).
    expect(getRopeIndex(q25, { inputIds: ids, imageGridThw: [[1, 4, 4]], videoGridThw: [[3, 2, 4]] }).positionIds).toEqual(r.positionIds);
    // 0.5 s per grid (fps 4): t = 9 + trunc(f · 0.5 · 2) = 9, 10, 11 (transformers 4.50–5.x truncated 0.5 to 0 first).
    const half = getRopeIndex(q25, { inputIds: ids, imageGridThw: [[1, 4, 4]], videoGridThw: [[3, 2, 4]], secondPerGridTs: [0.5] });
    expect(axes(half)[0]).toEqual([...prefix, ...imageT, 6, 7, 8, 9, 9, 10, 10, 11, 11, 12, 13, 14]);
    expect(Array.from(half.ropeDeltas)).toEqual([15 - 20]);
    // 0.75 s per grid: f · 1.5 → 0, 1.5, 3 truncated to 0, 1, 3.
    const frac = getRopeIndex(q25, { inputIds: ids, imageGridThw: [[1, 4, 4]], videoGridThw: [[3, 2, 4]], secondPerGridTs: [0.75] });
    expect(axes(frac)[0]).toEqual([...prefix, ...imageT, 6, 7, 8, 9, 9, 10, 10, 12, 12, 13, 14, 15]);
    expect(Array.from(frac.ropeDeltas)).toEqual([16 - 20]);
  });

  it('Qwen2-VL: video t = base + frame index (second_per_grid_ts is ignored)', () => {
    for (const spg of [undefined, [1], [0.25]]) {
      const r = getRopeIndex(q2, { inputIds: ids, imageGridThw: [[1, 4, 4]], videoGridThw: [[3, 2, 4]], ...(spg ? { secondPerGridTs: spg } : {}) });
      expect(axes(r)).toEqual([
        [...prefix, ...imageT, 6, 7, 8, 9, 9, 10, 10, 11, 11, 12, 13, 14],
        [...prefix, ...imageH, 6, 7, 8, ...videoH, 12, 13, 14],
        [...prefix, ...imageW, 6, 7, 8, ...videoW, 12, 13, 14],
      ]);
      expect(Array.from(r.ropeDeltas)).toEqual([15 - 20]);
    }
  });

  it('takes images and videos in order of appearance, each from its own grid list, across a padded batch', () => {
    // Row 0: text [vs] video (2,2,2): 2 pads [ve] [vs] image (1,2,4): 2 pads [ve] text. Row 1 (left-padded by 2):
    // [vs] video (2,2,4): 4 pads [ve] text. Videos of the batch in order: row 0's, row 1's.
    const row0 = [7, VS, VID, VID, VE, VS, IMG, IMG, VE, 8];
    const row1 = [0, 0, VS, VID, VID, VID, VID, VE, 9, 10];
    const mask = [...row0.map(() => 1), 0, 0, ...row1.slice(2).map(() => 1)];
    const input = { inputIds: [...row0, ...row1], batchSize: 2, attentionMask: mask, imageGridThw: [[1, 2, 4]], videoGridThw: [[2, 2, 2], [2, 2, 4]] };
    // Qwen2.5-VL, second_per_grid_ts [1, 0.5]: row 0 video base 2: t = 2, 4 (max 4); vision_end 5, vision_start 6;
    // image base 7: t = 7, h = 7, w = 7, 8; vision_end 9, text 10 → delta 11 − 10 = 1.
    // Row 1: vision_start 0, video base 1 (merged 1×2): t = 1, 1, 2, 2 (0.5 · 2 = 1 per frame pair), h = 1, w = 1, 2;
    // max 2 → vision_end 3, text 4, 5 → delta 6 − 10 = −4. Pads hold 1.
    const r = getRopeIndex(q25, { ...input, secondPerGridTs: [1, 0.5] });
    expect(axes(r, 0)).toEqual([
      [0, 1, 2, 4, 5, 6, 7, 7, 9, 10],
      [0, 1, 2, 2, 5, 6, 7, 7, 9, 10],
      [0, 1, 2, 2, 5, 6, 7, 8, 9, 10],
    ]);
    expect(axes(r, 1)).toEqual([
      [1, 1, 0, 1, 1, 2, 2, 3, 4, 5],
      [1, 1, 0, 1, 1, 1, 1, 3, 4, 5],
      [1, 1, 0, 1, 2, 1, 2, 3, 4, 5],
    ]);
    expect(Array.from(r.ropeDeltas)).toEqual([1, -4]);
    // Qwen2-VL: row 0 video t = 2, 3 (max 3); vision_end 4, vision_start 5; image base 6 (w 6, 7); vision_end 8,
    // text 9 → delta 0. Row 1 matches the 0.5 case above (frame index 0, 1).
    const r2 = getRopeIndex(q2, input);
    expect(axes(r2, 0)).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 6, 8, 9],
      [0, 1, 2, 2, 4, 5, 6, 6, 8, 9],
      [0, 1, 2, 2, 4, 5, 6, 7, 8, 9],
    ]);
    expect(axes(r2, 1)).toEqual(axes(r, 1));
    expect(Array.from(r2.ropeDeltas)).toEqual([0, -4]);
  });

  it('rejects videos that do not fit the grids, naming the field and numbers', () => {
    const one = [1, VS, VID, VID, VE];
    expect(() => getRopeIndex(q25, { inputIds: one, videoGridThw: [[2, 2, 2]], secondPerGridTs: [1, 1] }))
      .toThrow(/secondPerGridTs has 2 entries but videoGridThw has 1 grids/);
    expect(() => getRopeIndex(q25, { inputIds: one, videoGridThw: [[3, 2, 2]] })).toThrow(/video 1 of the batch: grid \[3, 2, 2\] needs 3 video_pad tokens .* found a run of 2/);
    expect(() => getRopeIndex(q25, { inputIds: one, videoGridThw: [[2, 2, 2], [2, 2, 2]] })).toThrow(/videoGridThw has 2 grids, but inputIds hold 1 videos/);
    expect(() => getRopeIndex(q25, { inputIds: one, imageGridThw: [[2, 2, 2]] })).toThrow(/videoGridThw has 0 grids, but inputIds row 0 holds video 1 of 1/);
    expect(() => getRopeIndex(q25, { inputIds: one, videoGridThw: [[2, 2, 2]], secondPerGridTs: [Number.NaN] })).toThrow(/secondPerGridTs\[0\] is NaN/);
  });
});
