/**
 * Index arrays of the vision tower, computed from the image grids (t, h, w in patches) and the config.
 *
 *  - posIds [N, 2]: (hpos, wpos) of every patch in the processor's row order (spec 3.2). Rows come in merge
 *    units: for each frame, unit row i < h/M, unit col j < w/M, then a < M, b < M: hpos = M·i + a, wpos = M·j + b
 *    (HF rot_pos_emb). The 2-D rotary angle of a patch is [hpos·inv_freq, wpos·inv_freq].
 *  - cuSeqlens: full-attention segment boundaries in patches, one segment per frame of each image
 *    (HF: repeat_interleave(h·w, t).cumsum, with a leading 0).
 *  - Qwen2.5-VL windows (spec 3.4): each frame's grid of merged tokens (h/M × w/M) is tiled row-major into
 *    windows of ws × ws merged tokens (ws = windowUnits; right/bottom windows are partial); inside a window
 *    tokens are row-major. windowIndex[k] is the original merged-token index at window-order position k
 *    (offset by the merged tokens of earlier images). cuWindowSeqlens are the window boundaries in patches
 *    (M² per token) after HF's unique_consecutive, i.e. without empty windows.
 *  - reverseIndex = argsort(windowIndex): merger output row reverseIndex[r] (window order) is merged token r
 *    in raster order. It equals windowIndex only when the permutation is its own inverse.
 */
import type { ModelConfig } from './config.js';

/** One image grid in patches: [t (frames / temporal_patch_size), h, w]. */
export type GridThw = readonly [number, number, number];

/** Grids as [[t, h, w], ...] or flattened [t0, h0, w0, t1, ...] (numbers or int64). */
export type GridInput = ReadonlyArray<readonly number[]> | ArrayLike<number> | BigInt64Array;

/**
 * Validates and normalises image grids: positive integers, h and w divisible by the merge size.
 * Throws TypeError / RangeError naming `field` and the offending grid.
 */
export function normalizeGrids(field: string, grids: GridInput, spatialMergeSize: number): GridThw[] {
  let flat: number[];
  if (grids instanceof BigInt64Array) flat = Array.from(grids, Number);
  else if (Array.isArray(grids) && grids.length > 0 && Array.isArray(grids[0])) {
    flat = [];
    (grids as ReadonlyArray<readonly number[]>).forEach((g, i) => {
      if (!Array.isArray(g) || g.length !== 3) throw new RangeError(`${field}[${i}]: expected [t, h, w], got ${JSON.stringify(g)}`);
      flat.push(...g);
    });
  } else if (grids !== null && typeof grids === 'object' && typeof (grids as ArrayLike<number>).length === 'number') {
    flat = Array.from(grids as ArrayLike<number>);
  } else {
    throw new TypeError(`${field}: expected a list of [t, h, w] grids or a flat integer array, got ${typeof grids}`);
  }
  if (flat.length % 3 !== 0) throw new RangeError(`${field}: flat grid array length ${flat.length} is not a multiple of 3`);
  const out: GridThw[] = [];
  for (let i = 0; i < flat.length; i += 3) {
    const g = [flat[i]!, flat[i + 1]!, flat[i + 2]!] as const;
    if (!g.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) {
      throw new RangeError(`${field}[${i / 3}]: grid ${JSON.stringify(g)} must be positive integers`);
    }
    if (g[1] % spatialMergeSize !== 0 || g[2] % spatialMergeSize !== 0) {
      throw new RangeError(`${field}[${i / 3}]: grid h ${g[1]} and w ${g[2]} must be divisible by spatial_merge_size ${spatialMergeSize}`);
    }
    out.push(g);
  }
  return out;
}

function checkMerge(spatialMergeSize: number): void {
  if (!Number.isSafeInteger(spatialMergeSize) || spatialMergeSize < 1) throw new RangeError(`spatialMergeSize must be a positive integer, got ${spatialMergeSize}`);
}

/** (hpos, wpos) of every patch in processor order, flattened [N, 2]. */
export function visionRotaryPosIds(grids: GridInput, spatialMergeSize: number): Int32Array {
  checkMerge(spatialMergeSize);
  const gs = normalizeGrids('grids', grids, spatialMergeSize);
  const M = spatialMergeSize;
  const n = gs.reduce((a, [t, h, w]) => a + t * h * w, 0);
  const out = new Int32Array(2 * n);
  let k = 0;
  for (const [t, h, w] of gs) {
    for (let f = 0; f < t; f++)
      for (let i = 0; i < h / M; i++)
        for (let j = 0; j < w / M; j++)
          for (let a = 0; a < M; a++)
            for (let b = 0; b < M; b++) {
              out[k++] = M * i + a;
              out[k++] = M * j + b;
            }
  }
  return out;
}

/** Full-attention boundaries in patches: [0, h·w, 2·h·w, ...] with one segment per frame of each image. */
export function visionCuSeqlens(grids: GridInput, spatialMergeSize = 1): Int32Array {
  const gs = normalizeGrids('grids', grids, spatialMergeSize);
  const cu = [0];
  for (const [t, h, w] of gs) for (let f = 0; f < t; f++) cu.push(cu[cu.length - 1]! + h * w);
  return Int32Array.from(cu);
}

/**
 * Qwen2.5-VL window permutation over merged tokens and window boundaries in patches (see file header).
 * `windowUnits` is window_size // spatial_merge_size // patch_size.
 */
export function visionWindowIndex(
  grids: GridInput,
  spatialMergeSize: number,
  windowUnits: number,
): { windowIndex: Int32Array; cuWindowSeqlens: Int32Array } {
  checkMerge(spatialMergeSize);
  if (!Number.isSafeInteger(windowUnits) || windowUnits < 1) throw new RangeError(`windowUnits must be a positive integer, got ${windowUnits}`);
  const gs = normalizeGrids('grids', grids, spatialMergeSize);
  const unit = spatialMergeSize * spatialMergeSize;
  const ws = windowUnits;
  const index: number[] = [];
  const cu = [0];
  let offset = 0;
  for (const [t, h, w] of gs) {
    const lh = h / spatialMergeSize;
    const lw = w / spatialMergeSize;
    for (let f = 0; f < t; f++)
      for (let r0 = 0; r0 < lh; r0 += ws)
        for (let c0 = 0; c0 < lw; c0 += ws) {
          // Only non-empty windows are generated, which is exactly what unique_consecutive leaves of HF's padded list.
          const rEnd = Math.min(r0 + ws, lh);
          const cEnd = Math.min(c0 + ws, lw);
          for (let r = r0; r < rEnd; r++) for (let c = c0; c < cEnd; c++) index.push(offset + f * lh * lw + r * lw + c);
          cu.push(cu[cu.length - 1]! + (rEnd - r0) * (cEnd - c0) * unit);
        }
    offset += t * lh * lw;
  }
  return { windowIndex: Int32Array.from(index), cuWindowSeqlens: Int32Array.from(cu) };
}

/** argsort of a permutation of 0..n-1 (its inverse). Throws RangeError if `perm` is not a permutation. */
export function invertPermutation(perm: ArrayLike<number>): Int32Array {
  const n = perm.length;
  const inv = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const p = perm[i]!;
    if (!Number.isInteger(p) || p < 0 || p >= n || inv[p] !== -1) throw new RangeError(`invertPermutation: element ${i} (${p}) breaks the permutation of 0..${n - 1}`);
    inv[p] = i;
  }
  return inv;
}

/** Everything the vision tower needs to run a batch of images. */
export interface VisionIndex {
  readonly grids: readonly GridThw[];
  /** Patches (rows of pixel_values): Σ t·h·w. */
  readonly numPatches: number;
  /** Merged tokens (rows of the tower output): numPatches / M². */
  readonly numTokens: number;
  /** Patch row range of image i: [imagePatchOffsets[i], imagePatchOffsets[i+1]). */
  readonly imagePatchOffsets: Int32Array;
  /** Output (merged token) row range of image i. */
  readonly imageTokenOffsets: Int32Array;
  /** max(h, w) over all grids: rows needed in the vision rotary table. */
  readonly maxGridSide: number;
  /** [numPatches, 2] (hpos, wpos), processor order. */
  readonly posIds: Int32Array;
  readonly cuSeqlens: Int32Array;
  /** Qwen2.5-VL only (null for Qwen2-VL, which has no windows). */
  readonly windowIndex: Int32Array | null;
  /** argsort(windowIndex): restores raster order after the merger. */
  readonly reverseIndex: Int32Array | null;
  readonly cuWindowSeqlens: Int32Array | null;
}

export type VisionIndexConfig = Pick<ModelConfig, 'spatialMergeSize' | 'windowed' | 'windowUnits'>;

/** Computes all vision index arrays for `grids` under `config`. */
export function buildVisionIndex(config: VisionIndexConfig, grids: GridInput): VisionIndex {
  const M = config.spatialMergeSize;
  checkMerge(M);
  const gs = normalizeGrids('grids', grids, M);
  if (gs.length === 0) throw new RangeError('grids: at least one image grid is needed');
  const imagePatchOffsets = new Int32Array(gs.length + 1);
  const imageTokenOffsets = new Int32Array(gs.length + 1);
  let maxGridSide = 0;
  gs.forEach(([t, h, w], i) => {
    imagePatchOffsets[i + 1] = imagePatchOffsets[i]! + t * h * w;
    imageTokenOffsets[i + 1] = imageTokenOffsets[i]! + (t * h * w) / (M * M);
    maxGridSide = Math.max(maxGridSide, h, w);
  });
  let windowIndex: Int32Array | null = null;
  let reverseIndex: Int32Array | null = null;
  let cuWindowSeqlens: Int32Array | null = null;
  if (config.windowed) {
    ({ windowIndex, cuWindowSeqlens } = visionWindowIndex(gs, M, config.windowUnits));
    reverseIndex = invertPermutation(windowIndex);
  }
  return {
    grids: gs,
    numPatches: imagePatchOffsets[gs.length]!,
    numTokens: imageTokenOffsets[gs.length]!,
    imagePatchOffsets,
    imageTokenOffsets,
    maxGridSide,
    posIds: visionRotaryPosIds(gs, M),
    cuSeqlens: visionCuSeqlens(gs, M),
    windowIndex,
    reverseIndex,
    cuWindowSeqlens,
  };
}
