/**
 * Video preprocessing for Qwen2-VL / Qwen2.5-VL, following qwen-vl-utils `fetch_video` (the Qwen reference
 * pipeline) and HF's Qwen2-VL video processing:
 *
 *   frames → [sample] → smart_resize with the video pixel budget → Pillow bicubic per frame
 *   → pad by repeating the last frame to a multiple of temporal_patch_size (T)
 *   → rescale / normalise like images → patchify to [gt·gh·gw, 3·T·P·P], gt = frames / T.
 *
 * A video is given as
 *  (a) a list of frame images (paths or encoded bytes), as VLM-R1 / qwen-vl-utils accept `"video": [frames]`;
 *  (b) a directory of frame images (files with an image extension, sorted by name);
 *  (c) a video file, decoded with the `ffmpeg` / `ffprobe` command-line tools when they are on PATH.
 *
 * Frame sampling (qwen-vl-utils `smart_nframes`, Qwen2.5-VL version):
 *  - video files: with `total` decoded frames at `videoFps`, n = total / videoFps · fps, clamped to
 *    [ceil2(minFrames), floor2(min(maxFrames, total))] and to total, floored to an even count; the frames
 *    round(linspace(0, total − 1, n)) are taken, and the sampled rate is n / total · videoFps;
 *  - frame lists and directories: every frame is used (their rate is `fps`, default 2), as qwen-vl-utils does;
 *    beyond `maxFrames` they are subsampled the same way (our guard against huge folders; the rate scales down).
 * second_per_grid_t = temporal_patch_size / sampled rate (1.0 at the default 2 fps). It only moves Qwen2.5-VL's
 * temporal M-RoPE index (src/model/rope-index.ts).
 *
 * Pixel budget per frame (qwen-vl-utils): minPixels (VIDEO_MIN_PIXELS = 128·28·28) and
 * maxPixels = min(user maxPixels, max(min(VIDEO_MAX_PIXELS = 768·28·28, totalPixels / frames · 2),
 * trunc(minPixels · 1.05))), with totalPixels = VIDEO_TOTAL_PIXELS = trunc(128000·28·28·0.9) by default and
 * `frames` the count after padding. A checkpoint's video_preprocessor_config.json min/max pixels replace the two
 * VIDEO_* defaults ({@link loadVideoPreprocessorConfig}). One target size (from the first frame) applies to every
 * frame. The same budget is used for all three input forms (qwen-vl-utils resizes frame lists with the image
 * budget first; HF's video processor then applies the video budget, which is what the model finally sees).
 *
 * Differences from the Python pipeline, by design: frames are resized with Pillow's uint8 bicubic (as images are,
 * image.ts), where qwen-vl-utils resizes decoded video files with torchvision's antialiased bicubic on float
 * tensors (same kernel, no uint8 rounding: values differ by at most about one level); colour conversion of video
 * files is ffmpeg's (decord and torchvision also decode with ffmpeg).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { VlmGrpoError } from '../errors.js';
import { decodeImage, patchifyImage, resizeBicubicPil, type ImageInput, type ImageSize, type RgbImage } from './image.js';
import { defaultPreprocessorConfig, type PreprocessorConfig } from './preprocessor-config.js';
import { smartResize } from './smart-resize.js';

/** qwen-vl-utils VIDEO_MIN_PIXELS: 128·28·28. */
export const VIDEO_MIN_PIXELS = 128 * 28 * 28;
/** qwen-vl-utils VIDEO_MAX_PIXELS: 768·28·28 (per frame). */
export const VIDEO_MAX_PIXELS = 768 * 28 * 28;
/** qwen-vl-utils (Qwen2.5-VL) VIDEO_TOTAL_PIXELS: int(128000·28·28·0.9), the whole video's budget. */
export const VIDEO_TOTAL_PIXELS = Math.trunc(128000 * 28 * 28 * 0.9);
/** qwen-vl-utils FPS, FPS_MIN_FRAMES, FPS_MAX_FRAMES, FRAME_FACTOR. */
export const VIDEO_FPS = 2;
export const VIDEO_MIN_FRAMES = 4;
export const VIDEO_MAX_FRAMES = 768;
const FRAME_FACTOR = 2;

/** Extensions taken from a frame directory (case-insensitive). */
export const FRAME_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.avif'];

/** A video: a list of frames (paths or encoded images), a directory of frames, or a video file path. */
export type VideoInput = string | readonly ImageInput[];

/** Frame sampling and pixel budget of a video (all optional; defaults are qwen-vl-utils'). */
export interface VideoSamplingOptions {
  /** Frames per second to sample a video file at; for frame lists, the rate they were extracted at. Default 2. */
  fps?: number;
  /** Fewest frames sampled from a video file (rounded up to even). Default 4. */
  minFrames?: number;
  /** Most frames used (rounded down to even). Default 768. */
  maxFrames?: number;
  /** Minimum area of a frame after resize. Default VIDEO_MIN_PIXELS (or video_preprocessor_config.json's). */
  minPixels?: number;
  /** Cap on the area of a frame after resize (the computed budget still applies). */
  maxPixels?: number;
  /** Budget of the whole video: frames · area ≲ totalPixels · 2. Default VIDEO_TOTAL_PIXELS. */
  totalPixels?: number;
}

/** Everything {@link preprocessVideo} takes. */
export interface PreprocessVideoOptions extends VideoSamplingOptions {
  /** Patch, merge, temporal patch and normalisation settings (an image preprocessor config); its pixel limits are not used. */
  preprocessor?: Partial<PreprocessorConfig>;
  /** The checkpoint's video processor pixel limits (video_preprocessor_config.json), replacing VIDEO_MIN/MAX_PIXELS. */
  videoProcessor?: VideoProcessorConfig;
  /** Name used in error messages (e.g. the dataset row); paths name themselves. */
  name?: string;
  /** ffmpeg executable (default "ffmpeg" on PATH); ffprobe is looked up beside it. */
  ffmpegPath?: string;
}

/** A video's frames after decoding and sampling, before resize and padding. */
export interface DecodedVideo {
  frames: RgbImage[];
  /** Frames per second of `frames` (the sampled rate). */
  sampleFps: number;
  /** Source time in seconds of each frame (source frame index / source fps), for Qwen3-VL timestamps; default i / sampleFps. */
  frameTimes?: number[];
  /** What the frames came from, for messages. */
  label: string;
}

/** Output of {@link preprocessVideo}. */
export interface PreprocessedVideo {
  /** [gt·gh·gw, 3·T·P·P] row-major, rows (frame pair, merge-window order), columns (channel, frame, py, px). */
  pixelValuesVideos: Float32Array;
  /** [t, h, w] in patches: t = frames / temporal_patch_size. */
  videoGridThw: [number, number, number];
  /** temporal_patch_size / sampled fps. */
  secondPerGridT: number;
  /** Frames after sampling and padding. */
  numFrames: number;
  /** Source time in seconds of each of the numFrames frames (padding repeats the last), for Qwen3-VL timestamps. */
  frameTimes: number[];
  /** Frame size before and after resizing. */
  originalSize: ImageSize;
  resizedSize: ImageSize;
  /** `<|video_pad|>` tokens: t·h·w / mergeSize². */
  numVideoTokens: number;
}

/** Several videos' rows concatenated in input order, as HF's processor returns them. */
export interface PreprocessedVideos {
  pixelValuesVideos: Float32Array;
  videoGridThw: [number, number, number][];
  secondPerGridTs: number[];
  videos: Array<Omit<PreprocessedVideo, 'pixelValuesVideos'>>;
}

/** Pixel limits of video_preprocessor_config.json (undefined: qwen-vl-utils' defaults). */
export interface VideoProcessorConfig {
  minPixels?: number;
  maxPixels?: number;
}

function positive(name: string, v: number | undefined, integer: boolean): void {
  if (v === undefined) return;
  if (typeof v !== 'number') throw new TypeError(`preprocessVideo: ${name} must be a number, got ${typeof v}`);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isSafeInteger(v))) {
    throw new RangeError(`preprocessVideo: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  }
}

/** Sampling settings with qwen-vl-utils' defaults filled in; maxPixels stays the user's cap (if any). */
export type ResolvedVideoOptions = Required<Omit<VideoSamplingOptions, 'maxPixels'>> & { maxPixels: number | undefined };

/** Validated sampling settings with qwen-vl-utils' defaults filled in. */
export function resolveVideoOptions(o: PreprocessVideoOptions = {}): ResolvedVideoOptions {
  positive('fps', o.fps, false);
  positive('minFrames', o.minFrames, true);
  positive('maxFrames', o.maxFrames, true);
  positive('minPixels', o.minPixels, true);
  positive('maxPixels', o.maxPixels, true);
  positive('totalPixels', o.totalPixels, true);
  const vp = o.videoProcessor ?? {};
  positive('videoProcessor.minPixels', vp.minPixels, true);
  positive('videoProcessor.maxPixels', vp.maxPixels, true);
  const r: ResolvedVideoOptions = {
    fps: o.fps ?? VIDEO_FPS,
    minFrames: o.minFrames ?? VIDEO_MIN_FRAMES,
    maxFrames: o.maxFrames ?? VIDEO_MAX_FRAMES,
    minPixels: o.minPixels ?? vp.minPixels ?? VIDEO_MIN_PIXELS,
    maxPixels: o.maxPixels,
    totalPixels: o.totalPixels ?? VIDEO_TOTAL_PIXELS,
  };
  if (r.maxFrames < FRAME_FACTOR) throw new RangeError(`preprocessVideo: maxFrames must be at least ${FRAME_FACTOR}, got ${r.maxFrames}`);
  return r;
}

const ceilBy = (n: number, f: number): number => Math.ceil(n / f) * f;
const floorBy = (n: number, f: number): number => Math.floor(n / f) * f;

/**
 * qwen-vl-utils `smart_nframes` (Qwen2.5-VL version): frames to sample from a video of `totalFrames` at
 * `videoFps`. Throws RangeError when the result is outside [2, totalFrames] (e.g. a 1-frame video).
 */
export function smartNframes(totalFrames: number, videoFps: number, options: VideoSamplingOptions = {}): number {
  const o = resolveVideoOptions(options);
  if (!Number.isSafeInteger(totalFrames) || totalFrames < 1) throw new RangeError(`smartNframes: totalFrames must be a positive integer, got ${totalFrames}`);
  if (!(videoFps > 0) || !Number.isFinite(videoFps)) throw new RangeError(`smartNframes: videoFps must be a positive number, got ${videoFps}`);
  // qwen-vl-utils defaults max_frames to min(FPS_MAX_FRAMES, total); the clamp to total below makes that the same.
  const minFrames = ceilBy(o.minFrames, FRAME_FACTOR);
  const maxFrames = floorBy(o.maxFrames, FRAME_FACTOR);
  let n = (totalFrames / videoFps) * o.fps;
  n = Math.min(Math.min(Math.max(n, minFrames), maxFrames), totalFrames);
  n = floorBy(n, FRAME_FACTOR);
  if (!(n >= FRAME_FACTOR && n <= totalFrames)) {
    throw new RangeError(`smartNframes: the video has ${totalFrames} frame(s); sampling needs between ${FRAME_FACTOR} and ${totalFrames} frames, got ${n}`);
  }
  return n;
}

/**
 * torch.linspace(0, total − 1, n).round(): n frame indices spread evenly, computed in float32 as torch does
 * (start + i·step for the first half, end − (n − 1 − i)·step for the rest) and rounded half to even.
 */
export function sampleFrameIndices(total: number, n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 1 || n > total) throw new RangeError(`sampleFrameIndices: need 1 ≤ n ≤ total, got n ${n}, total ${total}`);
  if (n === 1) return [0];
  const end = Math.fround(total - 1);
  const step = Math.fround(end / (n - 1));
  const half = Math.floor(n / 2);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = i < half ? Math.fround(i * step) : Math.fround(end - Math.fround((n - 1 - i) * step));
    const f = Math.floor(v);
    const d = v - f;
    out.push(d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1);
  }
  return out;
}

/**
 * The per-frame pixel budget for a video of `numFrames` frames (after padding): [minPixels, maxPixels] of
 * qwen-vl-utils' fetch_video. maxPixels may be fractional (smartResize takes it unrounded).
 */
export function videoPixelBudget(numFrames: number, options: VideoSamplingOptions & { videoProcessor?: VideoProcessorConfig } = {}): { minPixels: number; maxPixels: number } {
  if (!Number.isSafeInteger(numFrames) || numFrames < 1) throw new RangeError(`videoPixelBudget: numFrames must be a positive integer, got ${numFrames}`);
  const o = resolveVideoOptions(options);
  const perFrameCap = options.videoProcessor?.maxPixels ?? VIDEO_MAX_PIXELS;
  let maxPixels = Math.max(Math.min(perFrameCap, (o.totalPixels / numFrames) * FRAME_FACTOR), Math.trunc(o.minPixels * 1.05));
  if (o.maxPixels !== undefined) maxPixels = Math.min(o.maxPixels, maxPixels);
  return { minPixels: o.minPixels, maxPixels };
}

function resolvePre(pre: Partial<PreprocessorConfig> | undefined): PreprocessorConfig {
  const cfg = defaultPreprocessorConfig();
  for (const [k, v] of Object.entries(pre ?? {})) if (v !== undefined && k in cfg) (cfg as unknown as Record<string, unknown>)[k] = v;
  return cfg;
}

/** Frames after padding to a multiple of temporal_patch_size (the last frame repeated). */
export function paddedFrameCount(frames: number, temporalPatchSize: number): number {
  return ceilBy(frames, temporalPatchSize);
}

/**
 * The [t, h, w] grid and resized size of a video with `numFrames` sampled frames of `size`, without touching
 * pixels (for prompt-length checks before the costly resize).
 */
export function videoGridFor(
  numFrames: number,
  size: ImageSize,
  options: PreprocessVideoOptions = {},
): { grid: [number, number, number]; resized: ImageSize; numFrames: number } {
  const cfg = resolvePre(options.preprocessor);
  const frames = paddedFrameCount(numFrames, cfg.temporalPatchSize);
  const factor = cfg.patchSize * cfg.mergeSize;
  const budget = videoPixelBudget(frames, options);
  const s = smartResize(size.height, size.width, { factor, minPixels: budget.minPixels, maxPixels: budget.maxPixels });
  return { grid: [frames / cfg.temporalPatchSize, s.height / cfg.patchSize, s.width / cfg.patchSize], resized: s, numFrames: frames };
}

/**
 * Patchify frames that already have the target size (sides multiples of patch·merge) and a count that is a
 * multiple of temporal_patch_size T: row block g holds frames g·T … g·T + T − 1, columns [channel][frame][py][px]
 * (HF: reshape (gt, T, C, gh/M, M, P, gw/M, M, P) → permute (0, 3, 6, 4, 7, 2, 1, 5, 8)). A still image is the
 * case of T identical frames, so each frame goes through {@link patchifyImage} and its frame-0 blocks are placed.
 */
export function patchifyVideo(frames: readonly RgbImage[], config: Partial<PreprocessorConfig> = {}): { pixelValues: Float32Array; videoGridThw: [number, number, number] } {
  const cfg = resolvePre(config);
  const T = cfg.temporalPatchSize;
  if (frames.length === 0 || frames.length % T !== 0) {
    throw new RangeError(`patchifyVideo: got ${frames.length} frames; need a positive multiple of temporalPatchSize ${T} (pad with the last frame)`);
  }
  const { width, height } = frames[0]!;
  const PP = cfg.patchSize * cfg.patchSize;
  const cols = 3 * T * PP;
  let out: Float32Array | undefined;
  let rows = 0;
  let gh = 0;
  let gw = 0;
  const gt = frames.length / T;
  for (let f = 0; f < frames.length; f++) {
    const frame = frames[f]!;
    if (frame.width !== width || frame.height !== height) {
      throw new RangeError(`patchifyVideo: frame ${f} is ${frame.width}×${frame.height}, frame 0 is ${width}×${height}; all frames must have one size`);
    }
    const p = patchifyImage(frame, cfg);
    if (!out) {
      [, gh, gw] = p.imageGridThw;
      rows = gh * gw;
      out = new Float32Array(gt * rows * cols);
    }
    const g = Math.floor(f / T);
    const k = f % T;
    for (let r = 0; r < rows; r++) {
      const src = r * cols;
      const dst = (g * rows + r) * cols;
      for (let c = 0; c < 3; c++) out.set(p.pixelValues.subarray(src + c * T * PP, src + c * T * PP + PP), dst + (c * T + k) * PP);
    }
  }
  return { pixelValues: out!, videoGridThw: [gt, gh, gw] };
}

/**
 * Resize, pad and patchify decoded frames (the second half of {@link preprocessVideo}).
 */
export function preprocessVideoFrames(video: DecodedVideo, options: PreprocessVideoOptions = {}): PreprocessedVideo {
  const cfg = resolvePre(options.preprocessor);
  const { frames } = video;
  if (frames.length === 0) throw new VlmGrpoError('ERR_VIDEO_DECODE', `Video ${video.label} has no frames.`, 'Give at least one frame.');
  const first = frames[0]!;
  const { grid, resized, numFrames } = videoGridFor(frames.length, first, options);
  const out: RgbImage[] = frames.map((f) =>
    f.width === resized.width && f.height === resized.height ? f : resizeBicubicPil(f, resized.width, resized.height));
  while (out.length < numFrames) out.push(out[out.length - 1]!);
  const frameTimes = frames.map((_, i) => video.frameTimes?.[i] ?? i / video.sampleFps);
  while (frameTimes.length < numFrames) frameTimes.push(frameTimes[frameTimes.length - 1]!);
  const { pixelValues, videoGridThw } = patchifyVideo(out, cfg);
  if (videoGridThw.some((v, i) => v !== grid[i])) throw new Error(`internal: video grid ${videoGridThw} != planned ${grid}`);
  return {
    pixelValuesVideos: pixelValues,
    videoGridThw,
    secondPerGridT: cfg.temporalPatchSize / video.sampleFps,
    numFrames,
    frameTimes,
    originalSize: { width: first.width, height: first.height },
    resizedSize: resized,
    numVideoTokens: (grid[0] * grid[1] * grid[2]) / (cfg.mergeSize * cfg.mergeSize),
  };
}

function labelOf(input: VideoInput, name: string | undefined): string {
  if (typeof input === 'string') return path.resolve(input);
  return name ?? `video of ${input.length} frame(s)`;
}

/** Uniformly keeps at most maxFrames (even) of `count` frames: the kept indices and the rate scale. */
function capFrames(count: number, maxFrames: number): number[] {
  const cap = floorBy(maxFrames, FRAME_FACTOR);
  if (count <= cap) return Array.from({ length: count }, (_, i) => i);
  return sampleFrameIndices(count, cap);
}

async function decodeFrameList(frames: readonly ImageInput[], label: string, o: ResolvedVideoOptions, doConvertRgb: boolean): Promise<DecodedVideo> {
  if (frames.length === 0) throw new VlmGrpoError('ERR_VIDEO_DECODE', `Video ${label} has no frames.`, 'Give at least one frame (a path or image bytes).');
  const keep = capFrames(frames.length, o.maxFrames);
  const decoded = await Promise.all(keep.map((i) => decodeImage(frames[i]!, { name: `${label} frame ${i + 1}`, flattenAlpha: doConvertRgb })));
  return { frames: decoded, sampleFps: (o.fps * keep.length) / frames.length, frameTimes: keep.map((i) => i / o.fps), label };
}

/** Image files of a directory, sorted by name (code-unit order, like Python's sorted()). */
export async function listFrameFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => FRAME_EXTENSIONS.includes(path.extname(n).toLowerCase()));
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return names.map((n) => path.join(dir, n));
}

function ffmpegMissing(file: string, tool: string, cause: unknown): VlmGrpoError {
  return new VlmGrpoError(
    'ERR_VIDEO_DECODER_MISSING',
    `Cannot decode video ${file}: ${tool} was not found on PATH.`,
    'install ffmpeg (e.g. apt-get install ffmpeg) or pass extracted frames instead (a list of frame image paths, or a directory of frames).',
    { cause },
  );
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function parseRate(r: unknown): number {
  if (typeof r !== 'string') return Number.NaN;
  const [a, b] = r.split('/').map(Number);
  return b === undefined ? a! : b === 0 ? Number.NaN : a! / b;
}

/** Probes a video file with ffprobe: decoded frame count (packets of the first video stream) and average fps. */
async function probeVideo(file: string, ffprobe: string): Promise<{ frames: number; fps: number }> {
  let res;
  try {
    res = await run(ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries',
      'stream=nb_read_packets,avg_frame_rate,r_frame_rate', '-of', 'json', file]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw ffmpegMissing(file, 'ffprobe', err);
    throw err;
  }
  const bad = (why: string): VlmGrpoError => new VlmGrpoError('ERR_VIDEO_DECODE', `Cannot decode video ${file}: ${why}`,
    'Check that it is a complete video file ffmpeg reads, re-encode it, or pass extracted frames instead.');
  if (res.code !== 0) throw bad(res.stderr.trim().split('\n')[0] || `ffprobe exited with code ${res.code}`);
  let stream: Record<string, unknown> | undefined;
  try {
    stream = (JSON.parse(res.stdout) as { streams?: Record<string, unknown>[] }).streams?.[0];
  } catch {
    throw bad('ffprobe printed no readable stream information');
  }
  if (!stream) throw bad('it has no video stream');
  const frames = Number(stream.nb_read_packets);
  let fps = parseRate(stream.avg_frame_rate);
  if (!(fps > 0)) fps = parseRate(stream.r_frame_rate);
  if (!Number.isSafeInteger(frames) || frames < 1) throw bad('it has no video frames');
  if (!(fps > 0) || !Number.isFinite(fps)) throw bad('its frame rate is unknown');
  return { frames, fps };
}

/**
 * Decodes the sampled frames of a video file with ffmpeg into a temporary folder (PNG, removed afterwards).
 * Frames are selected by decoded index n (ffmpeg's select filter), so they are the same frames
 * decord/torchvision would return for those indices.
 */
async function decodeVideoFile(file: string, o: ResolvedVideoOptions, options: PreprocessVideoOptions, doConvertRgb: boolean): Promise<DecodedVideo> {
  const ffmpeg = options.ffmpegPath ?? 'ffmpeg';
  const ffprobe = options.ffmpegPath ? path.join(path.dirname(options.ffmpegPath), 'ffprobe') : 'ffprobe';
  const { frames: total, fps: videoFps } = await probeVideo(file, ffprobe);
  let n: number;
  try {
    n = smartNframes(total, videoFps, options);
  } catch (err) {
    throw new VlmGrpoError('ERR_VIDEO_DECODE', `Cannot sample video ${file}: ${(err as Error).message}`,
      'A video needs at least 2 frames; pass a longer clip or its frames.', { cause: err });
  }
  const idx = sampleFrameIndices(total, n);
  const dir = await mkdtemp(path.join(tmpdir(), 'vlm-grpo-frames-'));
  try {
    const select = idx.map((i) => `eq(n\\,${i})`).join('+');
    let res;
    try {
      res = await run(ffmpeg, ['-v', 'error', '-nostdin', '-i', file, '-vf', `select='${select}'`, '-fps_mode', 'passthrough',
        '-pix_fmt', 'rgb24', path.join(dir, '%06d.png')]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw ffmpegMissing(file, 'ffmpeg', err);
      throw err;
    }
    const files = await listFrameFiles(dir);
    if (res.code !== 0 || files.length === 0) {
      throw new VlmGrpoError('ERR_VIDEO_DECODE', `Cannot decode video ${file}: ${res.stderr.trim().split('\n')[0] || 'ffmpeg wrote no frames'}`,
        'Check that it is a complete video file ffmpeg reads, re-encode it, or pass extracted frames instead.');
    }
    // Select duplicates are impossible (distinct indices); a stream shorter than probed gives fewer frames.
    const decoded = await Promise.all(files.map(async (f) => decodeImage(await readFile(f), { name: `${file} frame`, flattenAlpha: doConvertRgb })));
    return { frames: decoded, sampleFps: (decoded.length / total) * videoFps, frameTimes: idx.slice(0, decoded.length).map((i) => i / videoFps), label: file };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Decode and sample a video (frame list, frame directory or video file) without resizing. Throws VlmGrpoError
 * `ERR_VIDEO_NOT_FOUND`, `ERR_VIDEO_DECODE`, `ERR_VIDEO_DECODER_MISSING` (no ffmpeg), or the image errors
 * `ERR_IMAGE_NOT_FOUND` / `ERR_IMAGE_DECODE` for a bad frame.
 */
export async function decodeVideo(input: VideoInput, options: PreprocessVideoOptions = {}): Promise<DecodedVideo> {
  const o = resolveVideoOptions(options);
  const doConvertRgb = resolvePre(options.preprocessor).doConvertRgb;
  const label = labelOf(input, options.name);
  if (Array.isArray(input)) return decodeFrameList(input as readonly ImageInput[], label, o, doConvertRgb);
  if (typeof input !== 'string') {
    throw new TypeError(`decodeVideo: input must be a video file or frame directory path (string) or a list of frames, got ${typeof input}`);
  }
  const st = await stat(input).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) {
    if (st.code === 'ENOENT' || st.code === 'ENOTDIR') {
      throw new VlmGrpoError('ERR_VIDEO_NOT_FOUND', `Video not found: ${label}`,
        `Check the path; relative paths resolve against the working directory (${process.cwd()}).`, { cause: st });
    }
    throw new VlmGrpoError('ERR_VIDEO_DECODE', `Cannot read video ${label}: ${st.message}`, 'Check the file permissions.', { cause: st });
  }
  if (st.isDirectory()) {
    const files = await listFrameFiles(input);
    if (files.length === 0) {
      throw new VlmGrpoError('ERR_VIDEO_DECODE', `Video frame directory ${label} holds no image files (${FRAME_EXTENSIONS.join(', ')}).`,
        'Put the frames (one image per frame, named so that they sort in order) in the directory.');
    }
    return decodeFrameList(files, label, o, doConvertRgb);
  }
  return decodeVideoFile(label, o, options, doConvertRgb);
}

/**
 * Decode, sample, resize, pad and patchify one video for Qwen2/2.5-VL.
 *
 * ```ts
 * const v = await preprocessVideo(['f0.jpg', 'f1.jpg', 'f2.jpg'], { fps: 2 });
 * v.pixelValuesVideos;  // Float32Array [t·h·w · 1176]
 * v.videoGridThw;       // [2, h, w] (3 frames padded to 4)
 * v.secondPerGridT;     // 1 (= 2 / 2 fps)
 * ```
 */
export async function preprocessVideo(input: VideoInput, options: PreprocessVideoOptions = {}): Promise<PreprocessedVideo> {
  return preprocessVideoFrames(await decodeVideo(input, options), options);
}

/** Preprocess several videos (in order of appearance) and concatenate their rows. */
export async function preprocessVideos(inputs: readonly VideoInput[], options: PreprocessVideoOptions = {}): Promise<PreprocessedVideos> {
  if (!Array.isArray(inputs)) throw new TypeError('preprocessVideos: inputs must be an array of videos');
  const results: PreprocessedVideo[] = [];
  for (const v of inputs) results.push(await preprocessVideo(v, options));  // one at a time: frames are large
  return concatVideos(results);
}

/** Concatenate preprocessed videos' rows, grids and second_per_grid_ts in order. */
export function concatVideos(results: readonly PreprocessedVideo[]): PreprocessedVideos {
  let total = 0;
  for (const r of results) total += r.pixelValuesVideos.length;
  const pixelValuesVideos = new Float32Array(total);
  let offset = 0;
  const videos: Array<Omit<PreprocessedVideo, 'pixelValuesVideos'>> = [];
  for (const r of results) {
    pixelValuesVideos.set(r.pixelValuesVideos, offset);
    offset += r.pixelValuesVideos.length;
    const { pixelValuesVideos: _pv, ...meta } = r;
    videos.push(meta);
  }
  return { pixelValuesVideos, videoGridThw: videos.map((v) => v.videoGridThw), secondPerGridTs: videos.map((v) => v.secondPerGridT), videos };
}

const videoConfigSchema = z.looseObject({
  min_pixels: z.number().int().positive().nullish(),
  max_pixels: z.number().int().positive().nullish(),
  size: z.looseObject({ shortest_edge: z.number().int().positive().nullish(), longest_edge: z.number().int().positive().nullish() }).nullish(),
});

/**
 * The pixel limits of a model folder's video_preprocessor_config.json (HF Qwen2VLVideoProcessor: `min_pixels` /
 * `max_pixels`, or `size.shortest_edge` / `size.longest_edge`, which are pixel counts). A folder without the file
 * gives `{}` (qwen-vl-utils' VIDEO_* defaults apply). Throws VlmGrpoError `ERR_PREPROCESSOR_CONFIG` naming the file.
 */
export async function loadVideoPreprocessorConfig(dir: string): Promise<VideoProcessorConfig> {
  const file = path.join(dir, 'video_preprocessor_config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new VlmGrpoError('ERR_PREPROCESSOR_CONFIG', `Could not read ${file}: ${(err as Error).message}`, 'Check the file permissions.', { cause: err });
  }
  const fail = (why: string): VlmGrpoError => new VlmGrpoError('ERR_PREPROCESSOR_CONFIG', `Invalid video preprocessor config ${file}: ${why}`,
    'Fix the field (compare with the base model’s video_preprocessor_config.json) or delete the file to use the qwen-vl-utils defaults.');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON (${(err as Error).message})`);
  }
  const parsed = videoConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw fail(`field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  const f = parsed.data;
  const out: VideoProcessorConfig = {};
  const min = f.min_pixels ?? f.size?.shortest_edge ?? undefined;
  const max = f.max_pixels ?? f.size?.longest_edge ?? undefined;
  if (min !== undefined && min !== null) out.minPixels = min;
  if (max !== undefined && max !== null) out.maxPixels = max;
  if (out.minPixels !== undefined && out.maxPixels !== undefined && out.minPixels > out.maxPixels) {
    throw fail(`min pixels (${out.minPixels}) exceed max pixels (${out.maxPixels})`);
  }
  return out;
}
