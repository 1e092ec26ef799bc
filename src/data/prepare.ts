/**
 * Turn a dataset row into the model's input: apply the prompt template, render the chat template, tokenize, decode
 * and preprocess the images with the configured min/max pixels (and the videos with the video sampling settings,
 * src/processor/video.ts), and expand each `<|image_pad|>` / `<|video_pad|>` to its token count (t·h·w / merge²).
 *
 * The prompt length is counted AFTER expansion (video tokens included), and it is known before the costly resize +
 * patchify: the grid comes from the decoded size through smart_resize, so an over-long row is dropped having only
 * been decoded. Rows are never
 * truncated (truncating inside an image span is what breaks peers with "Image features and image tokens do not
 * match"). A row that cannot be prepared (missing or undecodable image, bad aspect ratio, placeholder mismatch,
 * over-long) comes back as a skip with the reason; errors that are not about the row (e.g. a missing tokenizer) throw.
 *
 * Takes a minimal {@link PromptProcessor} rather than a model, so it runs without weights; a loaded VlmModel fits it.
 */
import { VlmGrpoError } from '../errors.js';
import type { ChatMessage, RenderChatOptions } from '../processor/chat-template.js';
import { expandImageTokenIds, expandVideoTokenIds } from '../processor/chat-template.js';
import { decodeImage, preprocessRgbImage, type ImageGridThw, type ImageSize, type RgbImage } from '../processor/image.js';
import { defaultPreprocessorConfig, type PreprocessorConfig } from '../processor/preprocessor-config.js';
import { smartResize } from '../processor/smart-resize.js';
import {
  concatVideos,
  decodeVideo,
  preprocessVideoFrames,
  videoGridFor,
  type DecodedVideo,
  type PreprocessVideoOptions,
  type VideoProcessorConfig,
  type VideoSamplingOptions,
} from '../processor/video.js';
import { applyPromptTemplate, resolvePromptTemplate, type PromptTemplate } from './prompt-template.js';
import type { PromptRow, RowVideo, SkipReason, SkippedRow } from './types.js';

/** What preparing needs from a model: a VlmModel satisfies it; tests pass a tokenizer and template without weights. */
export interface PromptProcessor {
  tokenizer: { encode(text: string): number[] };
  chatTemplate: { render(messages: readonly ChatMessage[], options?: RenderChatOptions): string };
  /** Image preprocessing settings (a model's preprocessor_config.json); missing fields take HF's defaults. */
  preprocessor: Partial<PreprocessorConfig>;
  /** Video processor pixel limits (a model's video_preprocessor_config.json); absent: qwen-vl-utils' defaults. */
  videoProcessor?: VideoProcessorConfig;
  /** videoTokenId is needed only for rows with videos. */
  config: { imageTokenId: number; spatialMergeSize: number; videoTokenId?: number };
}

/** Options of {@link preparePrompt}. */
export interface PrepareOptions {
  /** Question template (see prompt-template.ts). Default: the question as given. */
  template?: PromptTemplate;
  /** System prompt replacing the row's (or put first); null keeps the row's. Default null. */
  systemPrompt?: string | null;
  /** Longest prompt in tokens after image expansion; longer rows are skipped. null/undefined: no limit. */
  maxPromptLength?: number | null;
  /** Override the preprocessor's minimum image area (pixels). */
  minPixels?: number;
  /** Override the preprocessor's maximum image area (pixels). */
  maxPixels?: number;
  /** Video frame sampling and pixel budget (qwen-vl-utils semantics, see src/processor/video.ts). */
  video?: VideoSamplingOptions;
}

/** A row ready for the model. */
export interface PreparedPrompt {
  row: PromptRow;
  /** The messages after the prompt template and system prompt. */
  messages: ChatMessage[];
  /** The rendered prompt (one `<|image_pad|>` per image, not yet expanded), ending with the assistant opener. */
  text: string;
  input: {
    /** Token ids with every image's and video's pad run expanded. */
    inputIds: Int32Array;
    /** All images' patch rows concatenated, [Σ t·h·w, 3·T·P·P]. Empty for text-only rows. */
    pixelValues: Float32Array;
    /** One [t, h, w] grid per image, in order. */
    imageGridThw: ImageGridThw[];
    /** Rows with videos: all videos' patch rows concatenated. */
    pixelValuesVideos?: Float32Array;
    /** Rows with videos: one [t, h, w] grid per video, in order. */
    videoGridThw?: [number, number, number][];
    /** Rows with videos: temporal_patch_size / sampled fps per video. */
    secondPerGridTs?: number[];
  };
  /** Per image: size after decoding (EXIF-oriented) and the size the model sees. */
  images: { original: ImageSize; input: ImageSize }[];
  /** Per video: frame size before and after resizing, and frames used (after padding). */
  videos?: { original: ImageSize; input: ImageSize; frames: number }[];
  /** inputIds.length: the prompt length after image and video expansion. */
  promptLength: number;
}

/** A prepared prompt, or why the row was skipped. */
export type PrepareResult = { ok: true; prompt: PreparedPrompt } | { ok: false; skip: SkippedRow };

const NO_TEMPLATE = resolvePromptTemplate('none');

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}

const ROW_ERROR_CODES: Record<string, SkipReason> = {
  ERR_IMAGE_NOT_FOUND: 'missing-image',
  ERR_IMAGE_DECODE: 'undecodable-image',
  ERR_VIDEO_NOT_FOUND: 'missing-image',
  ERR_VIDEO_DECODE: 'undecodable-image',
  ERR_VIDEO_COUNT: 'invalid',
  ERR_IMAGE_ASPECT_RATIO: 'invalid',
  ERR_IMAGE_TOO_SMALL: 'invalid',
  ERR_IMAGE_SIZE: 'invalid',
  ERR_IMAGE_COUNT: 'invalid',
  ERR_CHAT_MESSAGES: 'invalid',
  ERR_CHAT_TEMPLATE: 'invalid',
};

class RowSkip extends Error {
  constructor(readonly reason: SkipReason, message: string) {
    super(message);
  }
}

/** The preprocessing settings for this call: the processor's, then the min/max pixel overrides. */
export function resolvePreprocessor(processor: PromptProcessor, options: PrepareOptions = {}): PreprocessorConfig {
  const cfg = defaultPreprocessorConfig();
  for (const [k, v] of Object.entries(processor.preprocessor)) {
    if (v !== undefined && k in cfg) (cfg as unknown as Record<string, unknown>)[k] = v;
  }
  if (options.minPixels !== undefined) cfg.minPixels = options.minPixels;
  if (options.maxPixels !== undefined) cfg.maxPixels = options.maxPixels;
  if (!Number.isSafeInteger(cfg.minPixels) || !Number.isSafeInteger(cfg.maxPixels) || cfg.minPixels < 0 || cfg.maxPixels < 1 || cfg.minPixels > cfg.maxPixels) {
    throw new RangeError(`prepare: need integers 0 ≤ minPixels ≤ maxPixels, maxPixels ≥ 1; got minPixels ${cfg.minPixels}, maxPixels ${cfg.maxPixels}`);
  }
  return cfg;
}

/** The [t, h, w] grid an image of this size gets (smart_resize when resizing, else the size itself). */
function gridOf(size: ImageSize, cfg: PreprocessorConfig): ImageGridThw {
  const factor = cfg.patchSize * cfg.mergeSize;
  if (cfg.doResize) {
    const s = smartResize(size.height, size.width, { factor, minPixels: cfg.minPixels, maxPixels: cfg.maxPixels });
    return [1, s.height / cfg.patchSize, s.width / cfg.patchSize];
  }
  if (size.width % factor !== 0 || size.height % factor !== 0) {
    throw new RowSkip('invalid', `image of ${size.width}×${size.height} is not a multiple of ${factor} and resizing is disabled (do_resize false)`);
  }
  return [1, size.height / cfg.patchSize, size.width / cfg.patchSize];
}

function describeImage(row: PromptRow, k: number): string {
  const img = row.images[k]!;
  return `image ${k + 1} of ${row.images.length} (${'path' in img ? img.path : `${img.bytes.byteLength} bytes`})`;
}

async function decodeRowImages(row: PromptRow, cfg: PreprocessorConfig): Promise<RgbImage[]> {
  const settled = await Promise.allSettled(
    row.images.map((img, k) =>
      decodeImage('path' in img ? img.path : img.bytes, { name: `${row.source.file}:${row.source.line} image ${k + 1}`, flattenAlpha: cfg.doConvertRgb }),
    ),
  );
  const out: RgbImage[] = [];
  for (let k = 0; k < settled.length; k++) {
    const s = settled[k]!;
    if (s.status === 'fulfilled') {
      out.push(s.value);
      continue;
    }
    const err = s.reason as unknown;
    const code = err instanceof VlmGrpoError ? err.code : undefined;
    if (code === 'ERR_IMAGE_NOT_FOUND') throw new RowSkip('missing-image', `${describeImage(row, k)} not found`);
    if (code === 'ERR_IMAGE_DECODE') throw new RowSkip('undecodable-image', `${describeImage(row, k)}: ${firstLine(err)}`);
    throw err;
  }
  return out;
}

function describeVideo(row: PromptRow, k: number): string {
  const videos = row.videos ?? [];
  const v = videos[k]!;
  return `video ${k + 1} of ${videos.length} (${'path' in v ? v.path : `${v.frames.length} frames`})`;
}

/** Decode and sample the row's videos; a missing or undecodable video (or frame) is a row skip naming it. */
async function decodeRowVideos(row: PromptRow, options: PreprocessVideoOptions): Promise<DecodedVideo[]> {
  const out: DecodedVideo[] = [];
  const videos: RowVideo[] = row.videos ?? [];
  for (let k = 0; k < videos.length; k++) {
    const v = videos[k]!;
    const input = 'path' in v ? v.path : v.frames.map((f) => ('path' in f ? f.path : f.bytes));
    try {
      out.push(await decodeVideo(input, { ...options, name: `${row.source.file}:${row.source.line} video ${k + 1}` }));
    } catch (err) {
      const code = err instanceof VlmGrpoError ? err.code : undefined;
      if (code === 'ERR_VIDEO_NOT_FOUND' || code === 'ERR_IMAGE_NOT_FOUND') {
        throw new RowSkip('missing-image', `${describeVideo(row, k)}: ${firstLine(err)}`);
      }
      if (code === 'ERR_VIDEO_DECODE' || code === 'ERR_IMAGE_DECODE') throw new RowSkip('undecodable-image', `${describeVideo(row, k)}: ${firstLine(err)}`);
      throw err;  // e.g. ERR_VIDEO_DECODER_MISSING (no ffmpeg): not about the row
    }
  }
  return out;
}

/**
 * Prepare one row (see the module comment). Resolves to `{ ok: false, skip }` for row problems; rejects only for
 * errors that are not about the row.
 */
export async function preparePrompt(row: PromptRow, processor: PromptProcessor, options: PrepareOptions = {}): Promise<PrepareResult> {
  try {
    return { ok: true, prompt: await prepareOrThrow(row, processor, options) };
  } catch (err) {
    if (err instanceof RowSkip) return { ok: false, skip: { source: row.source, reason: err.reason, message: err.message } };
    const reason = err instanceof VlmGrpoError ? ROW_ERROR_CODES[err.code] : undefined;
    if (reason !== undefined) return { ok: false, skip: { source: row.source, reason, message: firstLine(err) } };
    throw err;
  }
}

async function prepareOrThrow(row: PromptRow, processor: PromptProcessor, options: PrepareOptions): Promise<PreparedPrompt> {
  const cfg = resolvePreprocessor(processor, options);
  const max = options.maxPromptLength;
  if (max !== null && max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new RangeError(`prepare: maxPromptLength must be a positive integer or null, got ${max}`);
  }
  const { imageTokenId, spatialMergeSize } = processor.config;
  const numVideos = row.videos?.length ?? 0;
  const videoTokenId = processor.config.videoTokenId;
  if (numVideos > 0 && videoTokenId === undefined) throw new TypeError('prepare: the processor config has no videoTokenId, needed for rows with videos');
  const messages = applyPromptTemplate(row.messages, options.template ?? NO_TEMPLATE, options.systemPrompt ?? null) as ChatMessage[];
  const text = processor.chatTemplate.render(messages, { addGenerationPrompt: true });
  const ids = processor.tokenizer.encode(text);
  let pads = 0;
  let videoPads = 0;
  for (const id of ids) {
    if (id === imageTokenId) pads++;
    else if (videoTokenId !== undefined && id === videoTokenId) videoPads++;
  }
  if (pads !== row.images.length) {
    throw new RowSkip('invalid', `the rendered prompt has ${pads} image pad token(s) for ${row.images.length} image(s); ` +
      'does the text contain a literal <|image_pad|> or vision token?');
  }
  if (videoPads !== numVideos) {
    throw new RowSkip('invalid', `the rendered prompt has ${videoPads} video pad token(s) for ${numVideos} video(s); ` +
      'does the text contain a literal <|video_pad|> or vision token?');
  }
  const rgb = await decodeRowImages(row, cfg);
  const grids = rgb.map((img) => gridOf(img, cfg));
  const videoOptions: PreprocessVideoOptions = { ...options.video, preprocessor: cfg };
  if (processor.videoProcessor) videoOptions.videoProcessor = processor.videoProcessor;
  const decodedVideos = await decodeRowVideos(row, videoOptions);
  const videoPlans = decodedVideos.map((v) => videoGridFor(v.frames.length, v.frames[0]!, videoOptions));
  const merge2 = spatialMergeSize * spatialMergeSize;
  let imageTokens = 0;
  for (const [t, h, w] of grids) imageTokens += (t * h * w) / merge2;
  let videoTokens = 0;
  for (const { grid: [t, h, w] } of videoPlans) videoTokens += (t * h * w) / merge2;
  const textTokens = ids.length - pads - videoPads;
  const promptLength = textTokens + imageTokens + videoTokens;
  if (max !== null && max !== undefined && promptLength > max) {
    const videoPart = numVideos > 0 ? ` + ${videoTokens} video tokens for ${numVideos} video(s)` : '';
    throw new RowSkip('over-long', `the prompt is ${promptLength} tokens after image expansion (${textTokens} text + ` +
      `${imageTokens} image tokens for ${grids.length} image(s)${videoPart}), above maxPromptLength ${max}`);
  }
  const pre = rgb.map((img, k) => preprocessRgbImage(img, { ...cfg, name: describeImage(row, k) }));
  let total = 0;
  for (const p of pre) total += p.pixelValues.length;
  const pixelValues = new Float32Array(total);
  let offset = 0;
  for (const p of pre) {
    pixelValues.set(p.pixelValues, offset);
    offset += p.pixelValues.length;
  }
  const imageGridThw = pre.map((p) => p.imageGridThw);
  let expanded = expandImageTokenIds(ids, imageGridThw, imageTokenId, spatialMergeSize);
  const input: PreparedPrompt['input'] = { inputIds: new Int32Array(0), pixelValues, imageGridThw };
  const out: PreparedPrompt = { row, messages, text, input, images: pre.map((p) => ({ original: p.originalSize, input: p.resizedSize })), promptLength: 0 };
  if (numVideos > 0) {
    const vids = concatVideos(decodedVideos.map((v) => preprocessVideoFrames(v, videoOptions)));
    expanded = expandVideoTokenIds(expanded, vids.videoGridThw, videoTokenId!, spatialMergeSize);
    input.pixelValuesVideos = vids.pixelValuesVideos;
    input.videoGridThw = vids.videoGridThw;
    input.secondPerGridTs = vids.secondPerGridTs;
    out.videos = vids.videos.map((v) => ({ original: v.originalSize, input: v.resizedSize, frames: v.numFrames }));
  }
  input.inputIds = Int32Array.from(expanded);
  out.promptLength = input.inputIds.length;
  return out;
}
