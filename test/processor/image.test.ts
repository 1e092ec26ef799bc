import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { VlmGrpoError } from '../../src/errors.js';
import {
  decodeImage,
  patchifyImage,
  preprocessImage,
  preprocessImages,
  preprocessRgbImage,
  resizeBicubicPil,
  type RgbImage,
} from '../../src/processor/image.js';
import { loadPreprocessorConfig } from '../../src/processor/preprocessor-config.js';
import { getTensor, readSafetensors, readSafetensorsMetadata } from '../helpers/read-safetensors.js';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
// Budget of the fixture checkpoints' preprocessor_config.json.
const HUB = { minPixels: 3136, maxPixels: 12845056 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function countDiffs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function grid(t: { data: unknown }): number[] {
  return Array.from(t.data as BigInt64Array, Number);
}

/** Seeded uniform [0, 1) generator (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomRgb(width: number, height: number, seed: number): RgbImage {
  const r = rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
  return { data, width, height };
}

/** TypeScript twin of `procedural` in test/fixtures/processor/make_pil_cases.py (must stay identical). */
function proceduralImage(w: number, h: number, channels: number): Uint8Array {
  const out = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) {
        const tex = (x * 37 + y * 91 + c * 53 + ((x * y * 7 + c) % 29) * 11) % 256;
        const checker = (Math.floor(x / 5) + Math.floor(y / 5) + c) % 2 === 0 ? 0 : 255;
        const ramp = (Math.floor((x * 255) / Math.max(w - 1, 1)) + c * 40) % 256;
        let v = x < Math.floor(w / 2) ? checker : tex;
        if (y >= Math.floor((2 * h) / 3)) v = ramp;
        out[(y * w + x) * channels + c] = v;
      }
    }
  }
  return out;
}

/** Minimal 16-bit RGB PNG encoder (sample i of the HWC image is value(i)). */
function encodePng16(width: number, height: number, value: (i: number) => number): Buffer {
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 6);
    for (let k = 0; k < width * 3; k++) row.writeUInt16BE(value(y * width * 3 + k), 1 + k * 2);
    rows.push(row);
  }
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([16, 2, 0, 0, 0], 8); // bit depth 16, colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe.each(['tiny-a', 'tiny-q2vl'])('fixture %s (HF slow processor, Pillow bicubic)', (cfgName) => {
  const dir = path.join(FIXTURES, cfgName);
  const expected = readSafetensors(path.join(dir, 'expected.safetensors'));

  it('image1 (no resize): pixel_values match exactly', async () => {
    const cfg = await loadPreprocessorConfig(dir);
    const img = await preprocessImage(path.join(dir, 'image1.png'), cfg);
    expect(img.imageGridThw).toEqual(grid(getTensor(expected, 'image1.image_grid_thw')));
    expect(img.originalSize).toEqual({ width: 112, height: 84 });
    expect(img.resizedSize).toEqual({ width: 112, height: 84 });
    expect(img.numImageTokens).toBe(12);
    const ref = getTensor(expected, 'image1.pixel_values');
    expect(ref.shape).toEqual([48, 1176]);
    expect(maxAbsDiff(img.pixelValues, ref.data as Float32Array)).toBe(0);
  });

  it('image2 (resize 70×100 → 56×112): decode, resize and pixel_values match exactly', async () => {
    const cfg = await loadPreprocessorConfig(dir);
    const decoded = await decodeImage(path.join(dir, 'image2.png'));
    expect(countDiffs(decoded.data, getTensor(expected, 'resize.original_u8').data as Uint8Array)).toBe(0);
    const resized = resizeBicubicPil(decoded, 112, 56);
    expect(countDiffs(resized.data, getTensor(expected, 'resize.resized_u8').data as Uint8Array)).toBe(0);
    const img = await preprocessImage(path.join(dir, 'image2.png'), cfg);
    expect(img.imageGridThw).toEqual(grid(getTensor(expected, 'resize.image_grid_thw')));
    expect(img.originalSize).toEqual({ width: 100, height: 70 });
    expect(img.resizedSize).toEqual({ width: 112, height: 56 });
    expect(img.numImageTokens).toBe(8);
    // Tolerance from test/fixtures/README.md §5 is 1e-6; we reproduce HF's op order, so it is exact.
    expect(maxAbsDiff(img.pixelValues, getTensor(expected, 'resize.pixel_values').data as Float32Array)).toBe(0);
  });

  it('rescale/normalise/patchify of the stored resized_u8 matches resize.pixel_values', () => {
    const u8 = getTensor(expected, 'resize.resized_u8');
    const out = patchifyImage({ data: u8.data as Uint8Array, width: 112, height: 56 });
    expect(out.imageGridThw).toEqual([1, 4, 8]);
    expect(maxAbsDiff(out.pixelValues, getTensor(expected, 'resize.pixel_values').data as Float32Array)).toBe(0);
  });

  it('several images concatenate in order (multi.pixel_values)', async () => {
    const batch = await preprocessImages([path.join(dir, 'image1.png'), path.join(dir, 'image2.png')], HUB);
    expect(batch.imageGridThw).toEqual([
      [1, 6, 8],
      [1, 4, 8],
    ]);
    expect(batch.imageGridThw.flat()).toEqual(grid(getTensor(expected, 'multi.image_grid_thw')));
    expect(batch.images.map((m) => m.numImageTokens)).toEqual([12, 8]);
    expect(maxAbsDiff(batch.pixelValues, getTensor(expected, 'multi.pixel_values').data as Float32Array)).toBe(0);
    // batch.* stores [image2; image1]: the order of appearance across the flattened batch.
    const swapped = await preprocessImages([path.join(dir, 'image2.png'), path.join(dir, 'image1.png')], HUB);
    expect(maxAbsDiff(swapped.pixelValues, getTensor(expected, 'batch.pixel_values').data as Float32Array)).toBe(0);
  });
});

describe('resizeBicubicPil against Pillow (test/fixtures/processor/pil_cases.safetensors)', () => {
  const file = path.join(FIXTURES, 'processor', 'pil_cases.safetensors');
  const oracle = readSafetensors(file);
  const header = JSON.parse(readSafetensorsMetadata(file).cases ?? '[]') as Array<[number, number, number, number]>;

  it.each(header.map((c, i) => [i, ...c]))('case %i: %i×%i → %i×%i is bit-identical', (i, w, h, ow, oh) => {
    const src = { data: proceduralImage(w, h, 3), width: w, height: h };
    const out = resizeBicubicPil(src, ow, oh);
    const ref = getTensor(oracle, `resize.${i}`);
    expect(ref.shape).toEqual([oh, ow, 3]);
    expect(countDiffs(out.data, ref.data as Uint8Array)).toBe(0);
    if (ow === w && oh === h) expect(out.data).not.toBe(src.data); // a copy, like PIL
  });

  it('flattens alpha on white exactly like PIL paste(mask=alpha)', async () => {
    const w = 23;
    const h = 17;
    const rgba = proceduralImage(w, h, 4);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgba[(y * w + x) * 4 + 3] = (x * 17 + y * 29) % 256;
    const png = await sharp(Buffer.from(rgba), { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
    const decoded = await decodeImage(png);
    expect(countDiffs(decoded.data, getTensor(oracle, 'flatten.out').data as Uint8Array)).toBe(0);
    // doConvertRgb false drops alpha instead (PIL convert("RGB")).
    const dropped = await decodeImage(png, { flattenAlpha: false });
    for (let i = 0; i < w * h; i++) {
      expect([dropped.data[i * 3], dropped.data[i * 3 + 1], dropped.data[i * 3 + 2]]).toEqual([
        rgba[i * 4],
        rgba[i * 4 + 1],
        rgba[i * 4 + 2],
      ]);
    }
  });

  it('decodes a Pillow-written 4:2:0 JPEG to the same pixels as Pillow', async () => {
    const jpeg = getTensor(oracle, 'jpeg.bytes').data as Uint8Array;
    const decoded = await decodeImage(jpeg);
    expect([decoded.width, decoded.height]).toEqual([64, 48]);
    expect(countDiffs(decoded.data, getTensor(oracle, 'jpeg.decoded').data as Uint8Array)).toBe(0);
  });

  it('resizes a 1080p-class image in reasonable time', () => {
    const src = randomRgb(1920, 1080, 7);
    const t0 = performance.now();
    const out = resizeBicubicPil(src, 1932, 1092);
    const ms = performance.now() - t0;
    expect(out.data.length).toBe(1932 * 1092 * 3);
    expect(ms).toBeLessThan(5000);
  });
});

describe('patchify layout against a plain reference (spec 2.7)', () => {
  // Reference: pixel_values[r, col] = Fr[tt][c][(M·i + a)·P + py][(M·j + b)·P + px] with
  // r = ((i·Wm + j)·M + a)·M + b and col = ((c·T + tt)·P + py)·P + px; each value normalised on its own.
  function reference(img: RgbImage, P: number, M: number, T: number, mean: number[], std: number[], rescale: number): Float32Array {
    const gh = img.height / P;
    const gw = img.width / P;
    const cols = 3 * T * P * P;
    const out = new Float32Array(gh * gw * cols);
    for (let i = 0; i < gh / M; i++)
      for (let j = 0; j < gw / M; j++)
        for (let a = 0; a < M; a++)
          for (let b = 0; b < M; b++) {
            const r = ((i * (gw / M) + j) * M + a) * M + b;
            for (let c = 0; c < 3; c++)
              for (let tt = 0; tt < T; tt++)
                for (let py = 0; py < P; py++)
                  for (let px = 0; px < P; px++) {
                    const y = (M * i + a) * P + py;
                    const x = (M * j + b) * P + px;
                    const u8 = img.data[(y * img.width + x) * 3 + c]!;
                    const v = Math.fround(u8 * rescale);
                    const n = Math.fround(Math.fround(v - Math.fround(mean[c]!)) / Math.fround(std[c]!));
                    out[r * cols + ((c * T + tt) * P + py) * P + px] = n;
                  }
          }
    return out;
  }

  it('Qwen geometry (P 14, M 2, T 2) on random pixels', () => {
    const img = randomRgb(84, 56, 11);
    const mean = [0.48145466, 0.4578275, 0.40821073];
    const std = [0.26862954, 0.26130258, 0.27577711];
    const got = patchifyImage(img);
    expect(got.imageGridThw).toEqual([1, 4, 6]);
    expect(maxAbsDiff(got.pixelValues, reference(img, 14, 2, 2, mean, std, 1 / 255))).toBe(0);
    // Spot values from the spec: u8 0 → ≈ −1.7923 (R), u8 255 → ≈ 2.1459 (B).
    const black = patchifyImage({ data: new Uint8Array(28 * 28 * 3), width: 28, height: 28 });
    expect(black.pixelValues[0]).toBeCloseTo(-1.7923, 4);
    const white = patchifyImage({ data: new Uint8Array(28 * 28 * 3).fill(255), width: 28, height: 28 });
    expect(white.pixelValues[white.pixelValues.length - 1]).toBeCloseTo(2.1459, 4);
  });

  it('other geometry (P 4, M 3, T 3) and custom mean/std', () => {
    const img = randomRgb(24, 36, 12);
    const mean = [0.1, 0.2, 0.3];
    const std = [0.5, 0.25, 2];
    const got = patchifyImage(img, { patchSize: 4, mergeSize: 3, temporalPatchSize: 3, imageMean: [0.1, 0.2, 0.3], imageStd: [0.5, 0.25, 2] });
    expect(got.imageGridThw).toEqual([1, 9, 6]);
    expect(maxAbsDiff(got.pixelValues, reference(img, 4, 3, 3, mean, std, 1 / 255))).toBe(0);
  });

  it('rejects sizes that are not multiples of patch·merge', () => {
    expect(() => patchifyImage(randomRgb(30, 28, 1))).toThrow(/30×28 is not a multiple of patchSize·mergeSize = 28/);
    expect(() => patchifyImage({ data: new Uint8Array(5), width: 28, height: 28 })).toThrow(RangeError);
  });
});

describe('preprocessImage options and formats', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'vg-proc-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('min/max pixels drive smart_resize and the grid', async () => {
    const png = await sharp(Buffer.from(proceduralImage(300, 200, 3)), { raw: { width: 300, height: 200, channels: 3 } })
      .png()
      .toBuffer();
    const small = await preprocessImage(png, { minPixels: 3136, maxPixels: 28 * 28 * 16 });
    // smart_resize(200, 300, max 12544): 196·308 > 12544, β = √(60000/12544) ≈ 2.187,
    // ⌊200/β/28⌋·28 = 84, ⌊300/β/28⌋·28 = 112.
    expect(small.resizedSize).toEqual({ width: 112, height: 84 });
    expect(small.imageGridThw).toEqual([1, 6, 8]);
    expect(small.pixelValues.length).toBe(48 * 1176);
    const big = await preprocessImage(png, { minPixels: 200704, maxPixels: 1003520 });
    expect(big.resizedSize.width * big.resizedSize.height).toBeGreaterThanOrEqual(200704);
    expect(big.numImageTokens).toBe((big.imageGridThw[1] * big.imageGridThw[2]) / 4);
    // preprocessRgbImage on the decoded pixels gives the same result.
    const decoded = await decodeImage(png);
    const again = preprocessRgbImage(decoded, { minPixels: 3136, maxPixels: 28 * 28 * 16 });
    expect(maxAbsDiff(again.pixelValues, small.pixelValues)).toBe(0);
  });

  it('decodes JPEG, WebP, GIF, TIFF, grey and 16-bit PNG to RGB; applies EXIF orientation', async () => {
    const raw = Buffer.from(proceduralImage(40, 30, 3));
    const base = sharp(raw, { raw: { width: 40, height: 30, channels: 3 } });
    for (const enc of [base.clone().jpeg(), base.clone().webp(), base.clone().gif(), base.clone().tiff()]) {
      const d = await decodeImage(await enc.toBuffer());
      expect([d.width, d.height, d.data.length]).toEqual([40, 30, 40 * 30 * 3]);
    }
    const lossless = await decodeImage(await base.clone().webp({ lossless: true }).toBuffer());
    expect(countDiffs(lossless.data, raw)).toBe(0);
    const greyRaw = Buffer.from([0, 50, 100, 150, 200, 250]);
    const grey = await decodeImage(await sharp(greyRaw, { raw: { width: 3, height: 2, channels: 1 } }).png().toBuffer());
    expect(Array.from(grey.data)).toEqual([...greyRaw].flatMap((v) => [v, v, v]));
    // Low byte = noise: PIL keeps the high byte of 16-bit samples; so must we.
    const png16 = encodePng16(40, 30, (i) => raw[i]! * 256 + ((i * 37) % 256));
    expect((await sharp(png16).metadata()).depth).toBe('ushort');
    expect(countDiffs((await decodeImage(png16)).data, raw)).toBe(0);
    // Orientation 6 (rotate 90° clockwise to display): the decoded image is 30 wide, 40 high.
    const rotated = await base.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const r = await preprocessImage(rotated, HUB);
    expect(r.originalSize).toEqual({ width: 30, height: 40 });
  });

  it('do_resize false keeps the size and refuses non-multiples', async () => {
    const ok = preprocessRgbImage(randomRgb(56, 28, 3), { doResize: false, minPixels: 0 });
    expect(ok.imageGridThw).toEqual([1, 2, 4]);
    expect(() => preprocessRgbImage(randomRgb(60, 28, 3), { doResize: false })).toThrow(/not a multiple of 28/);
  });

  it('bad inputs throw VlmGrpoError naming the file and the fix', async () => {
    const missing = path.join(tmp, 'nope.png');
    await expect(preprocessImage(missing)).rejects.toMatchObject({
      code: 'ERR_IMAGE_NOT_FOUND',
      message: expect.stringContaining(missing),
    });
    const textFile = path.join(tmp, 'notes.png');
    writeFileSync(textFile, 'this is not an image\n');
    const e1 = await preprocessImage(textFile).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(VlmGrpoError);
    expect((e1 as VlmGrpoError).code).toBe('ERR_IMAGE_DECODE');
    expect((e1 as VlmGrpoError).message).toContain(textFile);
    expect((e1 as VlmGrpoError).remedy).toMatch(/re-encode/);
    // A truncated PNG (header intact, data cut off).
    const good = await sharp(Buffer.from(proceduralImage(64, 64, 3)), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    const truncated = path.join(tmp, 'truncated.png');
    writeFileSync(truncated, good.subarray(0, Math.floor(good.length / 2)));
    await expect(preprocessImage(truncated)).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringContaining(truncated) });
    // Corrupt bytes given as a buffer, with a name for the message.
    const corrupt = Buffer.from(good);
    for (let i = 40; i < corrupt.length; i += 7) corrupt[i] = corrupt[i]! ^ 0x5a;
    await expect(preprocessImage(corrupt, { name: 'row 17' })).rejects.toMatchObject({
      code: 'ERR_IMAGE_DECODE',
      message: expect.stringContaining('row 17'),
    });
    await expect(preprocessImage(Buffer.alloc(0))).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringContaining('empty') });
    await expect(preprocessImage(tmp)).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE', message: expect.stringContaining('not a file') });
    await expect(preprocessImage(42 as unknown as string)).rejects.toBeInstanceOf(TypeError);
    // Extreme aspect ratio is a VlmGrpoError too.
    const strip = await sharp(Buffer.alloc(300 * 1 * 3, 128), { raw: { width: 300, height: 1, channels: 3 } }).png().toBuffer();
    await expect(preprocessImage(strip)).rejects.toMatchObject({ code: 'ERR_IMAGE_ASPECT_RATIO' });
  });

  it('validates options', async () => {
    const img = randomRgb(28, 28, 5);
    expect(() => preprocessRgbImage(img, { imageMean: [0.5, 0.5] as unknown as [number, number, number] })).toThrow(/imageMean must be 3 finite numbers/);
    expect(() => preprocessRgbImage(img, { patchSize: 0 })).toThrow(/patchSize must be an integer ≥ 1, got 0/);
    expect(() => preprocessRgbImage(img, { imageStd: [1, 0, 1] })).toThrow(/imageStd must not contain 0/);
  });
});
