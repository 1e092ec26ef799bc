/**
 * `smart_resize` of Hugging Face's Qwen2VLImageProcessor: the size an image is resized to before patchify.
 *
 * Both sides become multiples of `factor` (patch_size · merge_size = 28) and the area is kept inside
 * [minPixels, maxPixels] while the aspect ratio changes as little as possible:
 *
 *   hb = round(h / F) · F,  wb = round(w / F) · F            (Python round: half to EVEN, 70/28 = 2.5 → 2)
 *   if hb·wb > max:  β = √(h·w / max);  hb = max(F, ⌊h / β / F⌋ · F), wb likewise
 *   elif hb·wb < min: β = √(min / (h·w)); hb = ⌈h · β / F⌉ · F,       wb likewise
 *
 * All arithmetic is float64 in the same operation order as the Python source, so results match it bit
 * for bit (the 57 cases of test/fixtures/smart_resize_cases.json). The `max(F, …)` clamp in the
 * down-scale branch is the newer HF behaviour; older versions could return 0 there for extreme ratios.
 */
import { VlmGrpoError } from '../errors.js';

/** Size limits for {@link smartResize}; the defaults are HF's class defaults (56·56 and 28·28·1280). */
export interface SmartResizeOptions {
  /** Side multiple: patch_size · merge_size. Default 28. */
  factor?: number;
  /** Minimum area in pixels. Default 3136 (56·56). */
  minPixels?: number;
  /**
   * Maximum area in pixels. Default 1003520 (28·28·1280). May be fractional: qwen-vl-utils' video budget
   * (total_pixels / frames · 2) is a float and enters β = √(h·w / max) unrounded.
   */
  maxPixels?: number;
}

/** Largest accepted max(h, w) / min(h, w), as in HF (`absolute aspect ratio must be smaller than 200`). */
export const MAX_ASPECT_RATIO = 200;

/** Python's built-in round() on a float: round half to even. Exact for |x| < 2^52. */
export function roundHalfToEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f; // exact: x and f share the exponent range for |x| < 2^52
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function checkPositiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`smartResize: ${name} must be a number, got ${typeof v}`);
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`smartResize: ${name} must be a positive integer, got ${v}`);
  }
  return v;
}

/**
 * The (height, width) an image of `height × width` pixels is resized to by the Qwen2/2.5-VL processor.
 * Throws VlmGrpoError `ERR_IMAGE_ASPECT_RATIO` when max/min side > 200 and `ERR_IMAGE_TOO_SMALL` when the
 * budget leaves a side below `factor`.
 */
export function smartResize(
  height: number,
  width: number,
  options: SmartResizeOptions = {},
): { height: number; width: number } {
  checkPositiveInt('height', height);
  checkPositiveInt('width', width);
  const factor = checkPositiveInt('factor', options.factor ?? 28);
  const minPixels = options.minPixels ?? 56 * 56;
  const maxPixels = options.maxPixels ?? 28 * 28 * 1280;
  if (typeof minPixels !== 'number' || !Number.isSafeInteger(minPixels) || minPixels < 0) {
    throw new RangeError(`smartResize: minPixels must be a non-negative integer, got ${minPixels}`);
  }
  if (typeof maxPixels !== 'number') throw new TypeError(`smartResize: maxPixels must be a number, got ${typeof maxPixels}`);
  if (!Number.isFinite(maxPixels) || maxPixels < 1) throw new RangeError(`smartResize: maxPixels must be a finite number ≥ 1, got ${maxPixels}`);
  if (minPixels > maxPixels) {
    throw new RangeError(`smartResize: minPixels (${minPixels}) must not exceed maxPixels (${maxPixels})`);
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new VlmGrpoError(
      'ERR_IMAGE_ASPECT_RATIO',
      `Image of ${width}×${height} pixels has an aspect ratio of ${ratio.toFixed(1)}, above the ` +
        `${MAX_ASPECT_RATIO} that Qwen2/2.5-VL preprocessing accepts.`,
      'Crop or pad the image so that its longer side is at most 200 times its shorter side.',
    );
  }
  let hb = roundHalfToEven(height / factor) * factor;
  let wb = roundHalfToEven(width / factor) * factor;
  if (hb * wb > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hb = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wb = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hb * wb < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hb = Math.ceil((height * beta) / factor) * factor;
    wb = Math.ceil((width * beta) / factor) * factor;
  }
  if (hb < factor || wb < factor) {
    // Only reachable with minPixels below factor²: round() sent a side under factor/2 to 0.
    throw new VlmGrpoError(
      'ERR_IMAGE_TOO_SMALL',
      `Image of ${width}×${height} pixels would be resized to ${wb}×${hb} (minPixels ${minPixels}, ` +
        `factor ${factor}): a side must be at least ${factor} pixels.`,
      `Raise minPixels to at least ${factor * factor} or upscale the image.`,
    );
  }
  return { height: hb, width: wb };
}
