/**
 * M-RoPE position ids of the language model: HF transformers v4 `get_rope_index` (spec 4.2.1) for images and
 * videos, per batch row with an optional attention mask, plus the decode-step positions (spec 4.2.4).
 *
 * Per row, over the tokens with mask 1 (pads removed, wherever they are):
 *  - text tokens get t = h = w = a running index;
 *  - vision items are a vision_start followed by image_pad (an image) or video_pad (a video); they are taken in
 *    order of appearance: the next item is whichever of the next image_pad / video_pad (at or after the current
 *    position, while the row still has items of that kind) comes first. An image takes the next image grid, a
 *    video the next video grid, each in order over the whole batch. With base = (max position so far + 1) + (text
 *    tokens since), the item's t·(h/M)·(w/M) tokens get, in raster order over (frame f, row, col),
 *    t = base + T(f), h = base + row, w = base + col, where
 *      - image: T = 0 for Qwen2.5-VL (frame index times second_per_grid_t = 0), T = f for Qwen2-VL;
 *      - Qwen2-VL video: T = f;
 *      - Qwen3-VL: images as Qwen2-VL; each video grid [t, h, w] is split into t one-frame grids (HF
 *        get_rope_index: the frames are separate vision_start … video_pad runs, time is in the timestamp text);
 *      - Qwen2.5-VL video: T = trunc(f · second_per_grid_t · tokens_per_second), the product in float32 as HF
 *        computes it (second_per_grid_ts is a float32 tensor; default 1.0 per video when not given).
 *        transformers 4.50–5.x cast second_per_grid_t to int64 before the product (0.5 s became 0); that was a
 *        bug, fixed upstream (PR #48669), and 4.49, vLLM and the fixed versions use the float product kept here.
 *  - text after an item continues at max(item block) + 1 (v4 rule; v5 advances by max(h, w)/M only, which
 *    differs for videos).
 * Pad slots get 1. rope_delta = max position + 1 − L, with L the padded row length.
 * A row without vision items is the text-only case: positions 0, 1, ... over the unmasked tokens (HF's
 * cumsum(mask) − 1), delta = (#unmasked) − L (when no grids are passed at all, HF's text-only branch also
 * counts the pads' fill value 1 in the max, so a padded row with one real token gets delta 2 − L).
 * Decode: the token at absolute cache index c (pads included) gets c + rope_delta on all three axes.
 */
import type { ModelConfig } from './config.js';
import { normalizeGrids, type GridInput } from './vision-index.js';

export type RopeIndexConfig = Pick<ModelConfig, 'modelType' | 'spatialMergeSize' | 'imageTokenId' | 'videoTokenId' | 'visionStartTokenId'> &
  Partial<Pick<ModelConfig, 'tokensPerSecond'>>;

/** Integer sequences: typed arrays (int64 included) or plain number arrays. */
export type IntArrayInput = ArrayLike<number> | BigInt64Array;

export interface RopeIndexInput {
  /** [batchSize, seqLen] token ids, row-major. */
  readonly inputIds: IntArrayInput;
  /** Rows in inputIds; default 1. */
  readonly batchSize?: number;
  /** [batchSize, seqLen] of 0/1 (1 = real token). Omitted: every token is real. */
  readonly attentionMask?: IntArrayInput;
  /** One [t, h, w] per image, in order over the whole batch. */
  readonly imageGridThw?: GridInput;
  /** One [t, h, w] per video, in order over the whole batch (t = frames / temporal_patch_size). */
  readonly videoGridThw?: GridInput;
  /** Qwen2.5-VL: seconds per temporal grid step of each video (temporal_patch_size / fps); default 1 each. */
  readonly secondPerGridTs?: ArrayLike<number>;
}

export interface RopeIndex {
  readonly batchSize: number;
  readonly seqLen: number;
  /** [3, batchSize, seqLen]: t, h, w position of every token (pads hold 1). */
  readonly positionIds: Int32Array;
  /** [batchSize]: max position + 1 − seqLen. */
  readonly ropeDeltas: Int32Array;
}

function toInts(field: string, a: IntArrayInput): Int32Array {
  if (a === null || typeof a !== 'object' || typeof (a as ArrayLike<number>).length !== 'number') {
    throw new TypeError(`${field}: expected an integer array, got ${a === null ? 'null' : typeof a}`);
  }
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = Number((a as ArrayLike<number | bigint>)[i]);
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) throw new RangeError(`${field}[${i}]: ${String((a as ArrayLike<unknown>)[i])} is not a 32-bit integer`);
    out[i] = v;
  }
  return out;
}

/** Computes position_ids [3, B, L] and rope_deltas [B] (HF v4 get_rope_index, images and videos). */
export function getRopeIndex(config: RopeIndexConfig, input: RopeIndexInput): RopeIndex {
  const ids = toInts('inputIds', input.inputIds);
  const B = input.batchSize ?? 1;
  if (!Number.isSafeInteger(B) || B < 1) throw new RangeError(`batchSize must be a positive integer, got ${B}`);
  if (ids.length % B !== 0 || ids.length === 0) throw new RangeError(`inputIds length ${ids.length} is not a positive multiple of batchSize ${B}`);
  const L = ids.length / B;
  let mask: Int32Array | null = null;
  if (input.attentionMask !== undefined) {
    mask = toInts('attentionMask', input.attentionMask);
    if (mask.length !== ids.length) throw new RangeError(`attentionMask length ${mask.length} != inputIds length ${ids.length} (batchSize ${B} × seqLen ${L})`);
    const bad = mask.findIndex((v) => v !== 0 && v !== 1);
    if (bad >= 0) throw new RangeError(`attentionMask[${bad}] is ${mask[bad]}; expected 0 or 1`);
  }
  const M = config.spatialMergeSize;
  const imageGrids = input.imageGridThw === undefined ? [] : normalizeGrids('imageGridThw', input.imageGridThw, M);
  const isQ2 = config.modelType === 'qwen2_vl';
  const isQ3 = config.modelType === 'qwen3_vl';
  const rawVideoGrids = input.videoGridThw === undefined ? [] : normalizeGrids('videoGridThw', input.videoGridThw, M);
  // Qwen3-VL writes every video frame as its own <vision_start><video_pad>…<vision_end> run (after a timestamp text),
  // so HF splits each video grid [t, h, w] into t grids [1, h, w]; time lives in the text, not in the t index.
  const videoGrids = isQ3 ? rawVideoGrids.flatMap(([t, h, w]) => Array.from({ length: t }, () => [1, h, w] as typeof rawVideoGrids[number])) : rawVideoGrids;
  const tokensPerSecond = config.tokensPerSecond ?? 4;  // HF Qwen2_5_VLVisionConfig class default
  if (!(tokensPerSecond > 0) || !Number.isFinite(tokensPerSecond)) throw new RangeError(`tokensPerSecond must be a positive number, got ${tokensPerSecond}`);
  let secondPerGrid: number[] | null = null;
  if (input.secondPerGridTs !== undefined && !isQ3) {
    const s = input.secondPerGridTs;
    if (s === null || typeof s !== 'object' || typeof s.length !== 'number') throw new TypeError(`secondPerGridTs: expected an array of numbers, got ${s === null ? 'null' : typeof s}`);
    secondPerGrid = Array.from(s, Number);
    if (secondPerGrid.length !== videoGrids.length) {
      throw new RangeError(`secondPerGridTs has ${secondPerGrid.length} entries but videoGridThw has ${videoGrids.length} grids (one per video)`);
    }
    const bad = secondPerGrid.findIndex((v) => !Number.isFinite(v) || v < 0);
    if (bad >= 0) throw new RangeError(`secondPerGridTs[${bad}] is ${secondPerGrid[bad]}; expected a finite number ≥ 0`);
  }
  const textBranch = input.imageGridThw === undefined && input.videoGridThw === undefined;

  const pos = new Int32Array(3 * B * L).fill(1);
  const deltas = new Int32Array(B);
  let img = 0;
  let vid = 0;
  for (let b = 0; b < B; b++) {
    const keep: number[] = [];
    for (let j = 0; j < L; j++) if (!mask || mask[b * L + j] === 1) keep.push(j);
    if (keep.length === 0) throw new RangeError(`attentionMask row ${b} has no tokens (all zeros)`);
    const row = keep.map((j) => ids[b * L + j]!);
    const n = row.length;
    let nImages = 0;
    let nVideos = 0;
    for (let j = 0; j + 1 < n; j++) {
      if (row[j] !== config.visionStartTokenId) continue;
      if (row[j + 1] === config.imageTokenId) nImages++;
      else if (row[j + 1] === config.videoTokenId) nVideos++;
    }
    // Column k of the row's unmasked tokens → (t, h, w).
    const t3 = new Int32Array(n);
    const h3 = new Int32Array(n);
    const w3 = new Int32Array(n);
    let k = 0;
    let next = 0; // max position so far + 1
    let st = 0;
    let remainImages = nImages;
    let remainVideos = nVideos;
    for (let item = 0; item < nImages + nVideos; item++) {
      const edImage = remainImages > 0 ? row.indexOf(config.imageTokenId, st) : -1;
      const edVideo = remainVideos > 0 ? row.indexOf(config.videoTokenId, st) : -1;
      const isImage = edImage >= 0 && (edVideo < 0 || edImage < edVideo);
      const ed = isImage ? edImage : edVideo;
      const kind = isImage ? 'image' : 'video';
      const padId = isImage ? config.imageTokenId : config.videoTokenId;
      const field = isImage ? 'imageGridThw' : 'videoGridThw';
      const grids = isImage ? imageGrids : videoGrids;
      const index = isImage ? img : vid;
      if (ed < 0) {
        throw new RangeError(`inputIds row ${b}: vision_start is followed by a ${kind}_pad, but no ${kind}_pad is left at or after unmasked index ${st}`);
      }
      const grid = grids[index];
      if (grid === undefined) {
        const nth = isImage ? nImages - remainImages + 1 : nVideos - remainVideos + 1;
        throw new RangeError(`${field} has ${grids.length} grids, but inputIds row ${b} holds ${kind} ${nth} of ${isImage ? nImages : nVideos} (${kind} ${index + 1} of the batch)`);
      }
      // Temporal step per frame pair: Qwen2.5-VL videos scale by second_per_grid_t · tokens_per_second.
      let step: (f: number) => number;
      if (isImage) {
        img++;
        remainImages--;
        step = isQ2 || isQ3 ? (f) => f : () => 0;
      } else {
        vid++;
        remainVideos--;
        if (isQ2 || isQ3) step = (f) => f;
        else {
          const spg = Math.fround(secondPerGrid?.[index] ?? 1);
          const tps = Math.fround(tokensPerSecond);
          step = (f) => Math.trunc(Math.fround(Math.fround(f * spg) * tps));
        }
      }
      const [gt, gh, gw] = grid;
      const lh = gh / M;
      const lw = gw / M;
      const count = gt * lh * lw;
      let run = 0;
      while (ed + run < n && row[ed + run] === padId) run++;
      if (run !== count) {
        throw new RangeError(`inputIds row ${b}, ${kind} ${index + 1} of the batch: grid [${gt}, ${gh}, ${gw}] needs ${count} ${kind}_pad tokens (t·h·w / ${M * M}), found a run of ${run} at unmasked index ${ed}`);
      }
      for (let j = 0; j < ed - st; j++, k++) t3[k] = h3[k] = w3[k] = next + j;
      const base = next + (ed - st);
      let mx = base;
      for (let f = 0; f < gt; f++) {
        const tv = base + step(f);
        for (let r = 0; r < lh; r++)
          for (let c = 0; c < lw; c++, k++) {
            t3[k] = tv;
            h3[k] = base + r;
            w3[k] = base + c;
          }
        mx = Math.max(mx, tv, base + lh - 1, base + lw - 1);
      }
      next = mx + 1;
      st = ed + count;
    }
    for (let j = 0; j < n - st; j++, k++) t3[k] = h3[k] = w3[k] = next + j;
    let mx = 0;
    for (let q = 0; q < n; q++) {
      const j = keep[q]!;
      pos[0 * B * L + b * L + j] = t3[q]!;
      pos[1 * B * L + b * L + j] = h3[q]!;
      pos[2 * B * L + b * L + j] = w3[q]!;
      mx = Math.max(mx, t3[q]!, h3[q]!, w3[q]!);
    }
    // HF's text-only branch (no image or video grids at all) takes the max over the whole row, pad slots (value 1)
    // included; it differs from the vision branch only for a row with a single real token.
    if (textBranch && n < L) mx = Math.max(mx, 1);
    deltas[b] = mx + 1 - L;
  }
  if (img !== imageGrids.length) {
    throw new RangeError(`imageGridThw has ${imageGrids.length} grids, but inputIds hold ${img} images (vision_start followed by image_pad ${config.imageTokenId})`);
  }
  if (vid !== videoGrids.length) {
    throw new RangeError(`videoGridThw has ${videoGrids.length} ${isQ3 ? 'frame grids (Qwen3-VL: one per frame)' : 'grids'}, but inputIds hold ${vid} ${isQ3 ? 'video frames' : 'videos'} (vision_start followed by video_pad ${config.videoTokenId})`);
  }
  return { batchSize: B, seqLen: L, positionIds: pos, ropeDeltas: deltas };
}

/**
 * Positions of decoded tokens: for each row, the tokens at absolute cache indices
 * cacheLength, cacheLength + 1, ..., cacheLength + numTokens − 1 (pads included in the count) get
 * index + ropeDeltas[row] on all three axes. Returns [3, B, numTokens].
 */
export function decodePositionIds(ropeDeltas: IntArrayInput, cacheLength: number, numTokens = 1): Int32Array {
  const d = toInts('ropeDeltas', ropeDeltas);
  if (!Number.isSafeInteger(cacheLength) || cacheLength < 0) throw new RangeError(`cacheLength must be a non-negative integer, got ${cacheLength}`);
  if (!Number.isSafeInteger(numTokens) || numTokens < 1) throw new RangeError(`numTokens must be a positive integer, got ${numTokens}`);
  const B = d.length;
  const out = new Int32Array(3 * B * numTokens);
  for (let a = 0; a < 3; a++)
    for (let b = 0; b < B; b++)
      for (let s = 0; s < numTokens; s++) out[(a * B + b) * numTokens + s] = cacheLength + s + d[b]!;
  return out;
}
