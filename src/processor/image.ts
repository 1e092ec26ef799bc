/**
 * Image preprocessing for Qwen2-VL / Qwen2.5-VL, matching HF's slow (PIL) Qwen2VLImageProcessor:
 *
 *   decode (sharp; EXIF orientation applied, any format sharp reads, 8-bit sRGB)
 *   → RGB: alpha flattened on white with PIL's paste() arithmetic (qwen-vl-utils `to_rgb`)
 *   → smart_resize (factor patch·merge, min/max pixels) → PIL BICUBIC resize (reimplemented here bit for bit)
 *   → x = float32(u8 · rescale in float64) → (x − mean) / std in float32
 *   → frame repeated temporal_patch_size times → patchify to [gt·gh·gw, 3·T·P·P].
 *
 * Why not sharp's resize: none of libvips' kernels (nearest … lanczos3, mks2021) reproduces Pillow's
 * (antialiased a = −0.5 cubic, 22-bit fixed point, uint8 rounding between the horizontal and the vertical
 * pass). On the fixture image2 (noise-like, 70×100 → 56×112) every sharp kernel differs from Pillow's
 * output on ~97% of the values, by up to 53–64 levels. Pillow's algorithm (libImaging/Resample.c) is
 * small, so {@link resizeBicubicPil} reproduces it bit for bit; sharp still decodes and converts colour.
 *
 * Decoding matches Pillow on the formats tested (PNG 8/16-bit — 16-bit keeps the high byte like PIL —,
 * a Pillow-written 4:2:0 JPEG). EXIF orientation is applied as transformers' load_image does
 * (qwen-vl-utils does not), so boxes refer to the image as displayed.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { VlmGrpoError } from '../errors.js';
import { defaultPreprocessorConfig, type PreprocessorConfig } from './preprocessor-config.js';
import { smartResize } from './smart-resize.js';

/** A file path, or the encoded bytes of an image (PNG, JPEG, WebP, GIF, TIFF, AVIF/HEIF, SVG, …). */
export type ImageInput = string | Uint8Array;

/** Grid of one image in patches: [t, h, w] = [1, resizedHeight / patch, resizedWidth / patch]. */
export type ImageGridThw = [number, number, number];

/** Width and height in pixels. */
export interface ImageSize {
  width: number;
  height: number;
}

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC). */
export interface RgbImage extends ImageSize {
  data: Uint8Array;
}

/** Preprocessing settings for {@link preprocessImage}: any {@link PreprocessorConfig} field plus a label. */
export interface PreprocessImageOptions extends Partial<PreprocessorConfig> {
  /** Name used for byte inputs in error messages (e.g. the dataset row); paths name themselves. */
  name?: string;
}

/** Output of {@link preprocessImage}. */
export interface PreprocessedImage {
  /** [gt·gh·gw, 3·temporalPatchSize·patch·patch] row-major, rows in merge-window order (spec 2.7). */
  pixelValues: Float32Array;
  /** [t, h, w] in patches. */
  imageGridThw: ImageGridThw;
  /** Size after decoding and EXIF orientation, before resizing. */
  originalSize: ImageSize;
  /** Size the model sees (smart_resize output); boxes in model coordinates refer to this size. */
  resizedSize: ImageSize;
  /** Number of `<|image_pad|>` tokens this image expands to: t·h·w / mergeSize². */
  numImageTokens: number;
}

/** Output of {@link preprocessImages}: all images' rows concatenated in input order. */
export interface PreprocessedImages {
  pixelValues: Float32Array;
  /** One grid per image, in input order. */
  imageGridThw: ImageGridThw[];
  /** Per-image metadata (everything of {@link PreprocessedImage} except the pixels). */
  images: Array<Omit<PreprocessedImage, 'pixelValues'>>;
}

function describe(input: ImageInput, name: string | undefined): string {
  if (typeof input === 'string') return path.resolve(input);
  return name !== undefined ? `${name} (${input.byteLength} bytes)` : `image buffer (${input.byteLength} bytes)`;
}

const DECODE_REMEDY =
  'Make sure it is a complete image in a format sharp reads (JPEG, PNG, WebP, GIF, TIFF, AVIF/HEIF, SVG); ' +
  're-encode it (e.g. as PNG) or remove it from the dataset.';

/**
 * Decode an image file or buffer to 8-bit RGB. EXIF orientation is applied (as transformers'
 * `load_image` does with `exif_transpose`). Alpha is flattened on white with PIL's integer blend
 * (`(c·a + 255·(255 − a) + 128)` divided by 255 with PIL's rounding), or dropped when
 * `flattenAlpha` is false. Throws VlmGrpoError `ERR_IMAGE_NOT_FOUND` / `ERR_IMAGE_DECODE`.
 */
export async function decodeImage(
  input: ImageInput,
  options: { name?: string; flattenAlpha?: boolean } = {},
): Promise<RgbImage> {
  const label = describe(input, options.name);
  if (typeof input === 'string') {
    const st = await stat(input).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) {
      if (st.code === 'ENOENT' || st.code === 'ENOTDIR') {
        throw new VlmGrpoError(
          'ERR_IMAGE_NOT_FOUND',
          `Image file not found: ${label}`,
          `Check the path; relative paths resolve against the working directory (${process.cwd()}).`,
          { cause: st },
        );
      }
      throw new VlmGrpoError('ERR_IMAGE_DECODE', `Cannot read image ${label}: ${st.message}`,
        'Check the file permissions.', { cause: st });
    }
    if (!st.isFile()) {
      throw new VlmGrpoError('ERR_IMAGE_DECODE', `Image path is not a file: ${label}`,
        'Pass the path of an image file, not a directory.');
    }
  } else if (!(input instanceof Uint8Array)) {
    throw new TypeError(`decodeImage: input must be a file path (string) or image bytes (Uint8Array/Buffer), got ${typeof input}`);
  } else if (input.byteLength === 0) {
    throw new VlmGrpoError('ERR_IMAGE_DECODE', `Cannot decode ${label}: the buffer is empty.`, DECODE_REMEDY);
  }
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // toColourspace('srgb') gives 8-bit sRGB with 3 bands, plus a 4th for alpha (grey, CMYK, 16-bit
    // and palette inputs all land here).
    decoded = await sharp(input).autoOrient().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new VlmGrpoError('ERR_IMAGE_DECODE', `Cannot decode image ${label}: ${(err as Error).message}`,
      DECODE_REMEDY, { cause: err });
  }
  const { data, info } = decoded;
  const { width, height, channels } = info;
  const px = width * height;
  if (channels === 3) return { data: new Uint8Array(data.buffer, data.byteOffset, px * 3), width, height };
  if (channels !== 4) {
    throw new VlmGrpoError('ERR_IMAGE_DECODE', `Cannot decode image ${label}: got ${channels} channels after conversion to sRGB.`,
      DECODE_REMEDY);
  }
  const rgb = new Uint8Array(px * 3);
  if (options.flattenAlpha === false) {
    for (let i = 0; i < px; i++) {
      rgb[i * 3] = data[i * 4]!;
      rgb[i * 3 + 1] = data[i * 4 + 1]!;
      rgb[i * 3 + 2] = data[i * 4 + 2]!;
    }
  } else {
    flattenAlphaOnWhite(data, rgb, px);
  }
  return { data: rgb, width, height };
}

/**
 * RGBA → RGB over a white background, exactly as PIL's `Image.new("RGB", size, white).paste(img,
 * mask=alpha)`: out = DIV255(255·(255 − a) + c·a) with DIV255(v) = ((v + 128) + ((v + 128) >> 8)) >> 8.
 */
export function flattenAlphaOnWhite(rgba: Uint8Array, out: Uint8Array, pixels: number): void {
  for (let i = 0; i < pixels; i++) {
    const a = rgba[i * 4 + 3]!;
    const inv = 255 * (255 - a);
    for (let c = 0; c < 3; c++) {
      const t = inv + rgba[i * 4 + c]! * a + 128;
      out[i * 3 + c] = ((t >> 8) + t) >> 8;
    }
  }
}

// ---- Pillow BICUBIC resampling (libImaging/Resample.c, 8 bits per channel) -------------------------

const PRECISION_BITS = 22; // 32 - 8 - 2
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Pillow's bicubic_filter (a = −0.5, support 2). */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  ksize: number;
  /** xmin per output index */
  start: Int32Array;
  /** number of taps per output index */
  count: Int32Array;
  /** fixed-point weights, [outSize][ksize] */
  k: Int32Array;
}

/**
 * precompute_coeffs + normalize_coeffs_8bpc for box [0, inSize): same float64 operations in the same
 * order (multiply by 1/filterscale, truncating int casts) so every weight is bit-identical.
 */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 2.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = 0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? w[x]! / ww : w[x]!;
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { ksize, start, count, k };
}

/**
 * Pillow's clip8 on an int32 accumulator: arithmetic shift by PRECISION_BITS, clamped to [0, 255].
 * Int32 accumulation is exact: Pillow's own sums are C ints and never overflow (|Σ| < 2^31 for u8 pixels
 * and bicubic weights, whose positive part sums to < 1.2), and `| 0` keeps V8 on integer arithmetic.
 */
function clip8(v: number): number {
  if (v <= 0) return 0;
  const s = v >> PRECISION_BITS;
  return s > 255 ? 255 : s;
}

/** Horizontal pass (ImagingResampleHorizontal_8bpc) on an RGB image of `height` rows. */
function resampleHorizontal(src: Uint8Array, inW: number, height: number, outW: number): Uint8Array {
  const { ksize, start, count, k } = precomputeCoeffs(inW, outW);
  const out = new Uint8Array(outW * height * 3);
  for (let y = 0; y < height; y++) {
    const rowIn = y * inW * 3;
    let o = y * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const n = count[xx]!;
      const kb = xx * ksize;
      let p = rowIn + start[xx]! * 3;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let x = 0; x < n; x++, p += 3) {
        const kv = k[kb + x]!;
        s0 = (s0 + src[p]! * kv) | 0;
        s1 = (s1 + src[p + 1]! * kv) | 0;
        s2 = (s2 + src[p + 2]! * kv) | 0;
      }
      out[o++] = clip8(s0);
      out[o++] = clip8(s1);
      out[o++] = clip8(s2);
    }
  }
  return out;
}

/** Vertical pass (ImagingResampleVertical_8bpc); `rowLen` = width · 3 bytes. */
function resampleVertical(src: Uint8Array, rowLen: number, inH: number, outH: number): Uint8Array {
  const { ksize, start, count, k } = precomputeCoeffs(inH, outH);
  const out = new Uint8Array(outH * rowLen);
  const acc = new Int32Array(rowLen);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = start[yy]!;
    const n = count[yy]!;
    const kb = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const kv = k[kb + y]!;
      const row = (ymin + y) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] = (acc[i]! + src[row + i]! * kv) | 0;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * Resize an 8-bit RGB (HWC) image like Pillow's `Image.resize((outWidth, outHeight), BICUBIC,
 * reducing_gap=None)`: antialiased bicubic (support scaled by the downscale factor), horizontal pass
 * first with its result rounded to uint8, then the vertical pass; a pass is skipped when that side is
 * unchanged, and the same size returns a copy.
 */
export function resizeBicubicPil(src: RgbImage, outWidth: number, outHeight: number): RgbImage {
  const { width: inW, height: inH, data } = src;
  for (const [n, v] of [['outWidth', outWidth], ['outHeight', outHeight], ['width', inW], ['height', inH]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`resizeBicubicPil: ${n} must be a positive integer, got ${v}`);
  }
  if (data.length !== inW * inH * 3) {
    throw new RangeError(`resizeBicubicPil: data has ${data.length} bytes, expected ${inW}·${inH}·3 = ${inW * inH * 3}`);
  }
  let cur = data;
  if (outWidth !== inW) cur = resampleHorizontal(cur, inW, inH, outWidth);
  if (outHeight !== inH) cur = resampleVertical(cur, outWidth * 3, inH, outHeight);
  return { data: cur === data ? data.slice() : cur, width: outWidth, height: outHeight };
}

// ---- rescale, normalise, patchify --------------------------------------------------------------------

/**
 * The float32 value of each uint8 level per channel, computed as HF's numpy path does:
 * float32(u8 · rescale) with the product in float64, then (x − mean) / std with float32 operands and
 * float32 rounding after each operation. A table makes that exact order cheap.
 */
function channelTables(cfg: PreprocessorConfig): Float32Array[] {
  const tables: Float32Array[] = [];
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.imageMean[c]!);
    const std = Math.fround(cfg.imageStd[c]!);
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      let x = cfg.doRescale ? Math.fround(v * cfg.rescaleFactor) : v;
      if (cfg.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      t[v] = x;
    }
    tables.push(t);
  }
  return tables;
}

/**
 * Rescale, normalise and patchify an RGB image whose sides are multiples of patchSize·mergeSize.
 * Row r = ((i·Wm + j)·M + a)·M + b holds patch (row 2i+a, col 2j+b) for M = 2; columns are
 * [channel][frame][py][px] with the single frame repeated temporalPatchSize times (spec 2.7).
 */
export function patchifyImage(
  image: RgbImage,
  config: Partial<PreprocessorConfig> = {},
): { pixelValues: Float32Array; imageGridThw: ImageGridThw } {
  const cfg = resolveConfig(config);
  const { width: W, height: H, data } = image;
  const P = cfg.patchSize;
  const M = cfg.mergeSize;
  const T = cfg.temporalPatchSize;
  if (data.length !== W * H * 3) {
    throw new RangeError(`patchifyImage: data has ${data.length} bytes, expected ${W}·${H}·3 = ${W * H * 3}`);
  }
  if (W % (P * M) !== 0 || H % (P * M) !== 0) {
    throw new RangeError(
      `patchifyImage: image ${W}×${H} is not a multiple of patchSize·mergeSize = ${P * M} on both sides`,
    );
  }
  const gh = H / P;
  const gw = W / P;
  const Hm = gh / M;
  const Wm = gw / M;
  const PP = P * P;
  const cols = 3 * T * PP;
  const out = new Float32Array(gh * gw * cols);
  const tables = channelTables(cfg);
  let r = 0;
  for (let i = 0; i < Hm; i++) {
    for (let j = 0; j < Wm; j++) {
      for (let a = 0; a < M; a++) {
        for (let b = 0; b < M; b++, r++) {
          const y0 = (i * M + a) * P;
          const x0 = (j * M + b) * P;
          const rowBase = r * cols;
          for (let c = 0; c < 3; c++) {
            const table = tables[c]!;
            const base = rowBase + c * T * PP;
            for (let py = 0; py < P; py++) {
              let src = ((y0 + py) * W + x0) * 3 + c;
              const dst = base + py * P;
              for (let px = 0; px < P; px++, src += 3) out[dst + px] = table[data[src]!]!;
            }
            for (let t = 1; t < T; t++) out.copyWithin(base + t * PP, base, base + PP);
          }
        }
      }
    }
  }
  return { pixelValues: out, imageGridThw: [1, gh, gw] };
}

function checkInt(name: string, v: number, min: number): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new RangeError(`preprocessImage: ${name} must be an integer ≥ ${min}, got ${v}`);
  }
}

function resolveConfig(options: Partial<PreprocessorConfig>): PreprocessorConfig {
  const cfg = defaultPreprocessorConfig();
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && key in cfg) (cfg as unknown as Record<string, unknown>)[key] = value;
  }
  checkInt('patchSize', cfg.patchSize, 1);
  checkInt('mergeSize', cfg.mergeSize, 1);
  checkInt('temporalPatchSize', cfg.temporalPatchSize, 1);
  checkInt('minPixels', cfg.minPixels, 0);
  checkInt('maxPixels', cfg.maxPixels, 1);
  for (const key of ['imageMean', 'imageStd'] as const) {
    const v = cfg[key];
    if (!Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new RangeError(`preprocessImage: ${key} must be 3 finite numbers (R, G, B), got ${JSON.stringify(v)}`);
    }
  }
  if (cfg.imageStd.some((s) => s === 0)) throw new RangeError(`preprocessImage: imageStd must not contain 0`);
  if (!(cfg.rescaleFactor > 0) || !Number.isFinite(cfg.rescaleFactor)) {
    throw new RangeError(`preprocessImage: rescaleFactor must be a positive finite number, got ${cfg.rescaleFactor}`);
  }
  return cfg;
}

/**
 * Resize (smart_resize + Pillow bicubic), rescale, normalise and patchify an already decoded RGB image.
 * Use this for pixels you already hold; {@link preprocessImage} decodes files and buffers first.
 */
export function preprocessRgbImage(image: RgbImage, options: PreprocessImageOptions = {}): PreprocessedImage {
  const cfg = resolveConfig(options);
  const factor = cfg.patchSize * cfg.mergeSize;
  let target: ImageSize = { width: image.width, height: image.height };
  if (cfg.doResize) {
    const s = smartResize(image.height, image.width, { factor, minPixels: cfg.minPixels, maxPixels: cfg.maxPixels });
    target = { width: s.width, height: s.height };
  } else if (image.width % factor !== 0 || image.height % factor !== 0) {
    throw new VlmGrpoError(
      'ERR_IMAGE_SIZE',
      `Image ${options.name ?? ''} of ${image.width}×${image.height} pixels is not a multiple of ${factor} and ` +
        'resizing is disabled (do_resize false).',
      `Enable do_resize or resize the image to multiples of ${factor} yourself.`,
    );
  }
  const resized =
    target.width === image.width && target.height === image.height
      ? image
      : resizeBicubicPil(image, target.width, target.height);
  const { pixelValues, imageGridThw } = patchifyImage(resized, cfg);
  return {
    pixelValues,
    imageGridThw,
    originalSize: { width: image.width, height: image.height },
    resizedSize: target,
    numImageTokens: (imageGridThw[0] * imageGridThw[1] * imageGridThw[2]) / (cfg.mergeSize * cfg.mergeSize),
  };
}

/**
 * Decode and preprocess one image for Qwen2/2.5-VL.
 *
 * ```ts
 * const img = await preprocessImage('cat.jpg', { minPixels: 3136, maxPixels: 1003520 });
 * img.pixelValues;   // Float32Array [patches · 1176]
 * img.imageGridThw;  // [1, h, w]
 * ```
 * Options are {@link PreprocessorConfig} fields (defaults: HF class defaults); pass a loaded
 * preprocessor_config.json spread with overrides to follow a checkpoint.
 */
export async function preprocessImage(input: ImageInput, options: PreprocessImageOptions = {}): Promise<PreprocessedImage> {
  const cfg = resolveConfig(options);
  const decodeOpts: { name?: string; flattenAlpha: boolean } = { flattenAlpha: cfg.doConvertRgb };
  if (options.name !== undefined) decodeOpts.name = options.name;
  const rgb = await decodeImage(input, decodeOpts);
  const named: PreprocessImageOptions = { ...cfg };
  named.name = describe(input, options.name);
  return preprocessRgbImage(rgb, named);
}

/**
 * Preprocess several images (e.g. all images of one prompt or of a batch, in order of appearance)
 * and concatenate their rows, as HF's processor does: `pixelValues` has no batch axis and
 * `imageGridThw[k]` says how many rows belong to image k.
 */
export async function preprocessImages(
  inputs: readonly ImageInput[],
  options: PreprocessImageOptions = {},
): Promise<PreprocessedImages> {
  if (!Array.isArray(inputs)) throw new TypeError('preprocessImages: inputs must be an array of paths or buffers');
  const results = await Promise.all(inputs.map((input) => preprocessImage(input, options)));
  let total = 0;
  for (const r of results) total += r.pixelValues.length;
  const pixelValues = new Float32Array(total);
  let offset = 0;
  const images: Array<Omit<PreprocessedImage, 'pixelValues'>> = [];
  for (const r of results) {
    pixelValues.set(r.pixelValues, offset);
    offset += r.pixelValues.length;
    const { pixelValues: _pv, ...meta } = r;
    images.push(meta);
  }
  return { pixelValues, imageGridThw: images.map((m) => m.imageGridThw), images };
}
