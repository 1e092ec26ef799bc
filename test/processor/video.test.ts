// Video preprocessing (src/processor/video.ts): qwen-vl-utils frame sampling counts and indices, the video pixel
// budget and smart_resize, padding by repeating the last frame, the patch layout (2 identical frames == the image
// path; 2 different frames: hand-computed element positions of the temporal dimension), second_per_grid_t, frame
// directories, ffmpeg-decoded files (when ffmpeg is installed) and the errors a user meets.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { VlmGrpoError } from '../../src/errors.js';
import { patchifyImage, type RgbImage } from '../../src/processor/image.js';
import { CLIP_MEAN, CLIP_STD } from '../../src/processor/preprocessor-config.js';
import { smartResize } from '../../src/processor/smart-resize.js';
import {
  decodeVideo,
  loadVideoPreprocessorConfig,
  patchifyVideo,
  preprocessVideo,
  preprocessVideoFrames,
  preprocessVideos,
  sampleFrameIndices,
  smartNframes,
  videoGridFor,
  videoPixelBudget,
  VIDEO_MAX_PIXELS,
  VIDEO_MIN_PIXELS,
  VIDEO_TOTAL_PIXELS,
} from '../../src/processor/video.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'vg-video-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Seeded random RGB image (mulberry32), so failures reproduce. */
function randomImage(width: number, height: number, seed: number): RgbImage {
  let s = (Number(process.env.VG_TEST_SEED ?? 777) ^ Math.imul(seed, 0x9e3779b9)) >>> 0;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = ((t ^ (t >>> 14)) >>> 0) & 255;
  }
  return { width, height, data };
}

async function png(img: RgbImage): Promise<Buffer> {
  return sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
}

/** HF normalisation of one uint8 level: float32((v·(1/255) − mean) / std) with float32 rounding per step. */
function norm(v: number, c: number): number {
  const x = Math.fround(v * (1 / 255));
  return Math.fround(Math.fround(x - Math.fround(CLIP_MEAN[c]!)) / Math.fround(CLIP_STD[c]!));
}

describe('frame sampling (qwen-vl-utils smart_nframes)', () => {
  it('counts frames from duration · fps, clamped to [minFrames, maxFrames] and the video, floored to even', () => {
    expect(smartNframes(100, 25)).toBe(8);                 // 4 s · 2 fps
    expect(smartNframes(10, 30)).toBe(4);                  // 0.67 raised to min_frames 4
    expect(smartNframes(3, 30)).toBe(2);                   // min_frames 4 capped by the 3 frames, floored to 2
    expect(smartNframes(5000, 30)).toBe(332);              // 333.3 floored to even
    expect(smartNframes(5000, 30, { maxFrames: 101 })).toBe(100);
    expect(smartNframes(100, 25, { fps: 0.25, minFrames: 5 })).toBe(6);   // min_frames rounded up to 6
    expect(smartNframes(100, 25, { fps: 1 })).toBe(4);
    expect(() => smartNframes(1, 30)).toThrow(/1 frame\(s\); sampling needs between 2 and 1 frames, got 0/);
  });

  it('picks round(linspace(0, total − 1, n)) with ties to even, like torch', () => {
    expect(sampleFrameIndices(10, 4)).toEqual([0, 3, 6, 9]);
    expect(sampleFrameIndices(10, 6)).toEqual([0, 2, 4, 5, 7, 9]);   // 0, 1.8, 3.6, 5.4, 7.2, 9
    expect(sampleFrameIndices(6, 3)).toEqual([0, 2, 5]);             // 2.5 rounds to 2
    expect(sampleFrameIndices(20, 4)).toEqual([0, 6, 13, 19]);       // 6.33, 12.67
  });
});

describe('video pixel budget and smart_resize', () => {
  it('follows fetch_video: max(min(VIDEO_MAX, total / frames · 2), int(min · 1.05)), capped by maxPixels', () => {
    expect(VIDEO_MIN_PIXELS).toBe(100352);
    expect(VIDEO_MAX_PIXELS).toBe(602112);
    expect(VIDEO_TOTAL_PIXELS).toBe(90316800);
    expect(videoPixelBudget(8)).toEqual({ minPixels: 100352, maxPixels: 602112 });
    expect(videoPixelBudget(8, { totalPixels: 1_000_000 })).toEqual({ minPixels: 100352, maxPixels: 250000 });
    expect(videoPixelBudget(8, { totalPixels: 100_000 })).toEqual({ minPixels: 100352, maxPixels: 105369 });
    expect(videoPixelBudget(8, { totalPixels: 1_000_000, maxPixels: 200_000 }).maxPixels).toBe(200000);
    expect(videoPixelBudget(6, { totalPixels: 1_000_003 }).maxPixels).toBeCloseTo(333334.3333, 3);
    // video_preprocessor_config.json limits replace VIDEO_MIN/MAX_PIXELS.
    expect(videoPixelBudget(8, { videoProcessor: { minPixels: 3136, maxPixels: 200704 } })).toEqual({ minPixels: 3136, maxPixels: 200704 });
  });

  it('resizes every frame to the first frame\'s smart_resize size under that budget', () => {
    // 640×480, 8 frames: 476×644 (17 and 23 units of 28) fits [100352, 602112]: grid [4, 34, 46].
    expect(videoGridFor(8, { width: 640, height: 480 })).toEqual({ grid: [4, 34, 46], resized: { width: 644, height: 476 }, numFrames: 8 });
    // 7 frames pad to 8; a small frame is scaled up to the video minimum: β = √(100352 / 3000) = 5.7837,
    // ⌈50β / 28⌉ = 11, ⌈60β / 28⌉ = 13 → 364×308.
    expect(videoGridFor(7, { width: 60, height: 50 })).toEqual({ grid: [4, 22, 26], resized: { width: 364, height: 308 }, numFrames: 8 });
    // A tight total budget shrinks frames: 1920×1080 with total 2,000,000 over 16 frames → max 250000 → 644×364.
    const g = videoGridFor(16, { width: 1920, height: 1080 }, { totalPixels: 2_000_000 });
    expect(g.resized).toEqual({ width: 644, height: 364 });
    expect(g.resized.width * g.resized.height).toBeLessThanOrEqual(250000);
    // smart_resize takes the fractional cap as is: β uses 333334.33…, not a rounded value.
    expect(smartResize(500, 700, { minPixels: 100352, maxPixels: 1_000_003 / 3 })).toEqual({ height: 476, width: 672 });
  });
});

describe('patch layout', () => {
  const cfg = { patchSize: 14, mergeSize: 2, temporalPatchSize: 2 };

  it('two identical frames give exactly the image path (a still image is a 2-frame video)', () => {
    const img = randomImage(56, 84, 1);
    const v = patchifyVideo([img, img], cfg);
    const i = patchifyImage(img, cfg);
    expect(v.videoGridThw).toEqual(i.imageGridThw);
    expect(v.pixelValues).toEqual(i.pixelValues);
  });

  it('two different frames: element (row, channel, frame, py, px) holds that frame\'s pixel, hand-indexed', () => {
    // 56 wide × 28 high: gh 2, gw 4 → merged 1×2; rows: j = 0 (a, b in 0..1), then j = 1. Row r → patch
    // (row 2i + a, col 2j + b) with i = 0, j = r >> 2, a = (r >> 1) & 1, b = r & 1.
    const A = randomImage(56, 28, 2);
    const B = randomImage(56, 28, 3);
    const { pixelValues, videoGridThw } = patchifyVideo([A, B], cfg);
    expect(videoGridThw).toEqual([1, 2, 4]);
    expect(pixelValues.length).toBe(8 * 1176);
    const cases: [number, number, number, number, number][] = [
      [0, 0, 0, 0, 0], [0, 2, 1, 13, 13], [1, 1, 0, 5, 7], [1, 1, 1, 5, 7], [3, 0, 1, 0, 13], [4, 2, 0, 9, 2], [7, 1, 1, 13, 0], [6, 2, 1, 3, 11],
    ];
    for (const [r, c, k, py, px] of cases) {
      const j = r >> 2, a = (r >> 1) & 1, b = r & 1;
      const y = 14 * a + py, x = 14 * (2 * j + b) + px;
      const frame = k === 0 ? A : B;
      const col = ((c * 2 + k) * 14 + py) * 14 + px;
      expect(pixelValues[r * 1176 + col], `row ${r} c ${c} frame ${k} (${py}, ${px})`).toBe(norm(frame.data[(y * 56 + x) * 3 + c]!, c));
    }
    // The frame-0 and frame-1 halves differ (the frames are random), so the two slots are really separate.
    expect(pixelValues.subarray(0, 196)).not.toEqual(pixelValues.subarray(196, 392));
  });

  it('pads an odd frame count with the last frame and stacks frame pairs along t', () => {
    const f = [0, 1, 2].map((s) => randomImage(56, 56, 10 + s));
    const v = preprocessVideoFrames({ frames: f, sampleFps: 2, label: 't' }, { minPixels: 3136, maxPixels: 3136 });
    expect(v.videoGridThw).toEqual([2, 4, 4]);
    expect(v.numFrames).toBe(4);
    expect(v.numVideoTokens).toBe(8);
    expect(v.resizedSize).toEqual({ width: 56, height: 56 });
    const rows = 16 * 1176;
    expect(v.pixelValuesVideos.subarray(0, rows)).toEqual(patchifyVideo([f[0]!, f[1]!], cfg).pixelValues);
    expect(v.pixelValuesVideos.subarray(rows)).toEqual(patchifyImage(f[2]!, cfg).pixelValues);   // frames 2, 2
    expect(() => patchifyVideo([f[0]!], cfg)).toThrow(/got 1 frames; need a positive multiple of temporalPatchSize 2/);
  });
});

describe('decoding frames and files', () => {
  it('frame lists and directories (sorted by name, non-images ignored); second_per_grid_t = 2 / fps', async () => {
    const dir = tempDir();
    const frames = [0, 1, 2, 3].map((s) => randomImage(56, 56, 20 + s));
    const names = ['f10.png', 'f02.png', 'f03.png', 'f01.png'];   // name order: f01, f02, f03, f10
    for (const [k, n] of names.entries()) writeFileSync(path.join(dir, n), await png(frames[k]!));
    writeFileSync(path.join(dir, 'notes.txt'), 'not a frame');
    const fromDir = await decodeVideo(dir);
    expect(fromDir.frames.map((f) => Buffer.from(f.data))).toEqual([3, 1, 2, 0].map((k) => Buffer.from(frames[k]!.data)));
    expect(fromDir.sampleFps).toBe(2);
    const list = [3, 1, 2, 0].map((k) => path.join(dir, names[k]!));
    const budget = { minPixels: 3136, maxPixels: 3136 };
    const a = await preprocessVideo(dir, budget);
    const b = await preprocessVideo(list, budget);
    expect(a.pixelValuesVideos).toEqual(b.pixelValuesVideos);
    expect(a.secondPerGridT).toBe(1);
    expect((await preprocessVideo(list, { ...budget, fps: 4 })).secondPerGridT).toBe(0.5);
    expect((await preprocessVideo(list, { ...budget, fps: 1 })).secondPerGridT).toBe(2);
    // Buffers work too; more frames than maxFrames are subsampled evenly and the rate scales down.
    const capped = await decodeVideo(list.map((p) => p), { maxFrames: 2 });
    expect(capped.frames.length).toBe(2);
    expect(capped.sampleFps).toBe(1);
    const all = await preprocessVideos([list, dir], budget);
    expect(all.videoGridThw).toEqual([[2, 4, 4], [2, 4, 4]]);
    expect(all.secondPerGridTs).toEqual([1, 1]);
    expect(all.pixelValuesVideos.length).toBe(2 * 32 * 1176);
  });

  it('names what is missing or broken', async () => {
    const dir = tempDir();
    await expect(decodeVideo(path.join(dir, 'nope.mp4'))).rejects.toMatchObject({ code: 'ERR_VIDEO_NOT_FOUND' });
    await expect(decodeVideo([path.join(dir, 'f1.png')])).rejects.toMatchObject({ code: 'ERR_IMAGE_NOT_FOUND' });
    await expect(decodeVideo([])).rejects.toMatchObject({ code: 'ERR_VIDEO_DECODE' });
    mkdirSync(path.join(dir, 'empty'));
    await expect(decodeVideo(path.join(dir, 'empty'))).rejects.toThrow(/holds no image files/);
    await expect(decodeVideo([Buffer.from('junk')])).rejects.toMatchObject({ code: 'ERR_IMAGE_DECODE' });
    await expect(decodeVideo(dir, { fps: 0 })).rejects.toThrow(/fps must be a positive number, got 0/);
  });

  it('a video file without ffmpeg: an error naming the file and saying to install ffmpeg or pass extracted frames', async () => {
    const file = path.join(tempDir(), 'clip.mp4');
    writeFileSync(file, Buffer.alloc(16));
    const err = await decodeVideo(file, { ffmpegPath: path.join(tempDir(), 'no-such-ffmpeg') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VlmGrpoError);
    expect((err as VlmGrpoError).code).toBe('ERR_VIDEO_DECODER_MISSING');
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/install ffmpeg .*or pass extracted frames/);
  });

  const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0 && spawnSync('ffprobe', ['-version']).status === 0;
  it.skipIf(!hasFfmpeg)('decodes a video file with ffmpeg: smart_nframes count, linspace frame indices, sampled fps', async () => {
    // 20 lossless frames at 10 fps, frame i filled with level 10·i: 2 s · 2 fps = 4 frames, indices 0, 6, 13, 19.
    const dir = tempDir();
    for (let i = 0; i < 20; i++) {
      const img = { width: 56, height: 56, data: new Uint8Array(56 * 56 * 3).fill(10 * i) };
      writeFileSync(path.join(dir, `f${String(i).padStart(3, '0')}.png`), await png(img));
    }
    const file = path.join(dir, 'clip.mkv');
    const enc = spawnSync('ffmpeg', ['-v', 'error', '-framerate', '10', '-i', path.join(dir, 'f%03d.png'), '-c:v', 'png', file]);
    expect(enc.status, String(enc.stderr)).toBe(0);
    const v = await decodeVideo(file);
    expect(v.frames.map((f) => f.data[0])).toEqual([0, 60, 130, 190]);
    expect(v.sampleFps).toBe(2);   // 4 / 20 · 10
    const p = await preprocessVideo(file, { minPixels: 3136, maxPixels: 3136 });
    expect(p.videoGridThw).toEqual([2, 4, 4]);
    expect(p.secondPerGridT).toBe(1);
    const broken = path.join(dir, 'broken.mkv');
    writeFileSync(broken, Buffer.from('not a video at all'));
    await expect(decodeVideo(broken)).rejects.toMatchObject({ code: 'ERR_VIDEO_DECODE' });
  });

  it('reads video_preprocessor_config.json pixel limits (min/max_pixels or size), {} without the file', async () => {
    const dir = tempDir();
    expect(await loadVideoPreprocessorConfig(dir)).toEqual({});
    writeFileSync(path.join(dir, 'video_preprocessor_config.json'), JSON.stringify({ size: { shortest_edge: 3136, longest_edge: 200704 }, fps: 2 }));
    expect(await loadVideoPreprocessorConfig(dir)).toEqual({ minPixels: 3136, maxPixels: 200704 });
    writeFileSync(path.join(dir, 'video_preprocessor_config.json'), JSON.stringify({ min_pixels: 6272, max_pixels: 'big' }));
    await expect(loadVideoPreprocessorConfig(dir)).rejects.toThrow(/video_preprocessor_config.json: field "max_pixels"/);
  });
});
