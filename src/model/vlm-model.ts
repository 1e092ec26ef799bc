/**
 * loadModel() and VlmModel: a Qwen2-VL / Qwen2.5-VL checkpoint folder loaded into the native core, with its
 * tokenizer, chat template and image / video processors. Heavy calls (forward, backward, generate) run on the model's
 * own native thread and return Promises; the event loop stays free.
 */
import { VlmGrpoError } from '../errors.js';
import { native, type BucketReduceStats, type NativeBucketReduce, type NativeModelHandle, type NativePackedInput } from '../native/binding.js';
import { ChatTemplate, expandImageTokenIds, expandVideoTokenIds, type ChatMessage } from '../processor/chat-template.js';
import { preprocessImages, type ImageGridThw, type ImageInput, type ImageSize } from '../processor/image.js';
import { loadPreprocessorConfig, type PreprocessorConfig } from '../processor/preprocessor-config.js';
import { expandQwen3VideoText, qwen3VideoTimestamps } from '../processor/qwen3-video.js';
import { loadTokenizer, type QwenTokenizer } from '../processor/tokenizer.js';
import {
  loadVideoPreprocessorConfig,
  preprocessVideos,
  type VideoInput,
  type VideoProcessorConfig,
  type VideoSamplingOptions,
} from '../processor/video.js';
import type { ModelConfig } from './config.js';
import type { GenerationConfig } from './generation-config.js';
import { readModelFolder, type ModelFolder } from './index.js';
import { resolveLoraConfig, type LoraConfig, type LoraOptions, type LoraTensorInfo } from './lora.js';
import { nativeModelConfig } from './native-config.js';
import { getRopeIndex } from './rope-index.js';
import { buildVisionIndex } from './vision-index.js';

export interface LoadModelOptions {
  /** Only 'cpu' runs models in this version; 'cuda' is rejected with a clear error. */
  device?: 'cpu' | 'cuda';
}

/**
 * One sequence for the model: token ids plus the pixels and grids of its images and of its videos (each in order of
 * appearance; HF's names, camel-cased).
 */
export interface ModelInput {
  inputIds: Int32Array;
  pixelValues?: Float32Array;
  imageGridThw?: readonly (readonly [number, number, number])[];
  /** The videos' patch rows, [Σ t·h·w, 3·T·P·P]. */
  pixelValuesVideos?: Float32Array;
  /** One [t, h, w] per video (t = frames / temporal_patch_size). */
  videoGridThw?: readonly (readonly [number, number, number])[];
  /** Qwen2.5-VL: seconds per temporal grid step of each video (temporal_patch_size / fps); default 1 each. */
  secondPerGridTs?: readonly number[];
}

/** What encode() returns: a ModelInput plus the rendered prompt and the images' and videos' sizes. */
export interface EncodedInput extends ModelInput {
  pixelValues: Float32Array;
  imageGridThw: ImageGridThw[];
  pixelValuesVideos: Float32Array;
  videoGridThw: [number, number, number][];
  secondPerGridTs: number[];
  text: string;
  /** Original sizes (after EXIF orientation) and the sizes the model saw, per image. */
  images: { original: ImageSize; input: ImageSize }[];
  /** Frame size before and after resizing, and frames used (after padding), per video. */
  videos: { original: ImageSize; input: ImageSize; frames: number }[];
}

export interface EncodeRequest {
  messages: ChatMessage[];
  /** One per {type: 'image'} part, in order: paths or encoded bytes. */
  images?: ImageInput[];
  /** One per {type: 'video'} part, in order: a list of frames, a directory of frames, or a video file (ffmpeg). */
  videos?: VideoInput[];
  /** Frame sampling and pixel budget of the videos (qwen-vl-utils defaults; the folder's video_preprocessor_config.json limits). */
  videoOptions?: VideoSamplingOptions;
  /** Append the assistant turn opener (default true). */
  addGenerationPrompt?: boolean;
}

export interface ForwardRequest extends ModelInput {
  /** Same length as inputIds: entries >= 0 select the token whose log-prob is returned at that position. */
  targets?: Int32Array;
  returnLogits?: boolean;
  returnEntropy?: boolean;
  /** Divide logits by this before log-softmax (rollout temperature). Default 1. */
  temperature?: number;
  /** With LoRA adapters: false runs the frozen base model (the KL reference). Default true. */
  adapters?: boolean;
}

export interface ForwardOutput {
  /** [len * vocab], when returnLogits or no targets. */
  logits?: Float32Array;
  /** [len]; 0 where targets < 0. */
  logprobs?: Float32Array;
  entropy?: Float32Array;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 = greedy. Default: generation_config.json's (1 when it does not sample). */
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  numSamples?: number;
  seed?: number;
  /** Stop tokens (kept in the output). Default: generation_config.json's EOS ids. */
  stopIds?: readonly number[];
  /** RNG stream base: sample g of prompt p uses sequence id base + p * numSamples + g. */
  sequenceIdBase?: number;
  /** With LoRA adapters: false generates with the base model. Default true. */
  adapters?: boolean;
  /**
   * With LoRA adapters: true (default) merges them for this call (W + s·B·A in a separate buffer freed afterwards;
   * faster decoding), false applies them on the fly (no extra weight memory). Same tokens either way.
   */
  mergeAdapters?: boolean;
}

export interface Generation {
  /** Index of the prompt this completion belongs to. */
  prompt: number;
  /** New tokens only, ending with the stop token when one was produced. */
  tokens: Int32Array;
  /** Per-token log-probs under the sampling temperature's softmax. */
  logprobs: Float32Array;
  finishReason: 'stop' | 'length';
  /** Decoded completion; throws ERR_TOKENIZER_MISSING when the folder has no tokenizer. */
  readonly text: string;
}

function disposedError(): VlmGrpoError {
  return new VlmGrpoError('ERR_DISPOSED', 'This model has been disposed.', 'Load it again with loadModel().');
}

export class VlmModel {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly generationConfig: GenerationConfig;
  readonly folder: ModelFolder;
  readonly tokenizer: QwenTokenizer;
  readonly chatTemplate: ChatTemplate;
  readonly preprocessor: PreprocessorConfig;
  /** video_preprocessor_config.json pixel limits ({} when the folder has none). */
  readonly videoProcessor: VideoProcessorConfig;
  #handle: NativeModelHandle | undefined;
  #busy: Promise<unknown> = Promise.resolve();
  #lora: LoraConfig | undefined;

  /** @internal use loadModel() */
  constructor(folder: ModelFolder, handle: NativeModelHandle, tokenizer: QwenTokenizer, chatTemplate: ChatTemplate, preprocessor: PreprocessorConfig,
    videoProcessor: VideoProcessorConfig = {}) {
    this.folder = folder;
    this.dir = folder.dir;
    this.config = folder.config;
    this.generationConfig = folder.generation;
    this.#handle = handle;
    this.tokenizer = tokenizer;
    this.chatTemplate = chatTemplate;
    this.preprocessor = preprocessor;
    this.videoProcessor = videoProcessor;
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** The native model (throws after dispose()). */
  get handle(): NativeModelHandle {
    if (!this.#handle) throw disposedError();
    return this.#handle;
  }

  /** Chat template + images + videos -> token ids (image and video placeholders expanded), pixel values and grids. */
  async encode(req: EncodeRequest): Promise<EncodedInput> {
    const tok = this.tokenizer;
    if (!tok.available) tok.encode('');  // throws ERR_TOKENIZER_MISSING naming the folder
    const text = this.chatTemplate.render(req.messages, { addGenerationPrompt: req.addGenerationPrompt ?? true });
    const images = req.images ?? [];
    const pre = images.length
      ? await preprocessImages(images, this.preprocessor)
      : { pixelValues: new Float32Array(0), imageGridThw: [] as ImageGridThw[], images: [] };
    const videos = req.videos ?? [];
    const vid = videos.length
      ? await preprocessVideos(videos, { ...req.videoOptions, preprocessor: this.preprocessor, videoProcessor: this.videoProcessor })
      : { pixelValuesVideos: new Float32Array(0), videoGridThw: [] as [number, number, number][], secondPerGridTs: [] as number[], videos: [] };
    const M = this.config.spatialMergeSize;
    // Qwen3-VL: one timestamped vision_start … video_pad run per temporal step, written into the text before
    // tokenizing (qwen3-video.ts); Qwen2/2.5-VL: the video's pads are expanded in the token ids.
    const q3Video = this.config.modelType === 'qwen3_vl' && vid.videos.length > 0;
    let prompt = text;
    if (q3Video) {
      const T = this.preprocessor.temporalPatchSize;
      prompt = expandQwen3VideoText(text, vid.videos.map((v) => ({ grid: v.videoGridThw, timestamps: qwen3VideoTimestamps(v.frameTimes, T) })), M);
    }
    let ids = expandImageTokenIds(tok.encode(prompt), pre.imageGridThw, this.config.imageTokenId, M);
    if (!q3Video) ids = expandVideoTokenIds(ids, vid.videoGridThw, this.config.videoTokenId, M);
    return {
      inputIds: Int32Array.from(ids),
      pixelValues: pre.pixelValues,
      imageGridThw: pre.imageGridThw,
      pixelValuesVideos: vid.pixelValuesVideos,
      videoGridThw: vid.videoGridThw,
      secondPerGridTs: vid.secondPerGridTs,
      text,
      images: pre.images.map((m) => ({ original: m.originalSize, input: m.resizedSize })),
      videos: vid.videos.map((m) => ({ original: m.originalSize, input: m.resizedSize, frames: m.numFrames })),
    };
  }

  /**
   * Packs sequences end to end with their M-RoPE positions and the vision index arrays. The vision tower gets every
   * image of the batch (in order), then every video: the native decoder puts the image rows at the image-pad tokens
   * and the video rows at the video-pad tokens (HF scatters image and video features separately the same way).
   */
  pack(inputs: readonly ModelInput[]): NativePackedInput & { ropeDeltas: Int32Array } {
    const c = this.config;
    let total = 0;
    for (const s of inputs) total += s.inputIds.length;
    const inputIds = new Int32Array(total);
    const positions = new Int32Array(3 * total);
    const cuSeqlens = new Int32Array(inputs.length + 1);
    const ropeDeltas = new Int32Array(inputs.length);
    const imageGrids: (readonly [number, number, number])[] = [];
    const videoGrids: (readonly [number, number, number])[] = [];
    let imagePixels = 0;
    let videoPixels = 0;
    let off = 0;
    const patches = (g: readonly (readonly [number, number, number])[]): number => g.reduce((n, [t, h, w]) => n + t * h * w, 0) * c.patchInputSize;
    inputs.forEach((s, i) => {
      if (!(s.inputIds instanceof Int32Array)) throw new TypeError(`inputs[${i}].inputIds must be an Int32Array`);
      const g = s.imageGridThw ?? [];
      const vg = s.videoGridThw ?? [];
      const rope = getRopeIndex(c, {
        inputIds: s.inputIds,
        imageGridThw: g.map((x) => [...x]),
        ...(vg.length ? { videoGridThw: vg.map((x) => [...x]) } : {}),
        ...(s.secondPerGridTs ? { secondPerGridTs: s.secondPerGridTs } : {}),
      });
      const L = s.inputIds.length;
      inputIds.set(s.inputIds, off);
      for (let a = 0; a < 3; a++) positions.set(rope.positionIds.subarray(a * L, (a + 1) * L), a * total + off);
      ropeDeltas[i] = rope.ropeDeltas[0]!;
      off += L;
      cuSeqlens[i + 1] = off;
      imageGrids.push(...g);
      videoGrids.push(...vg);
      const pv = s.pixelValues?.length ?? 0;
      if (pv !== patches(g)) throw new RangeError(`inputs[${i}].pixelValues has ${pv} values, expected ${patches(g)} for grids ${JSON.stringify(g)}`);
      const pvv = s.pixelValuesVideos?.length ?? 0;
      if (pvv !== patches(vg)) {
        throw new RangeError(`inputs[${i}].pixelValuesVideos has ${pvv} values, expected ${patches(vg)} for video grids ${JSON.stringify(vg)}`);
      }
      imagePixels += pv;
      videoPixels += pvv;
    });
    const out: NativePackedInput & { ropeDeltas: Int32Array } = { inputIds, positions, cuSeqlens, ropeDeltas };
    const grids = [...imageGrids, ...videoGrids];
    if (grids.length) {
      const pixelValues = new Float32Array(imagePixels + videoPixels);
      let p = 0;
      for (const s of inputs) if (s.pixelValues) { pixelValues.set(s.pixelValues, p); p += s.pixelValues.length; }
      for (const s of inputs) if (s.pixelValuesVideos) { pixelValues.set(s.pixelValuesVideos, p); p += s.pixelValuesVideos.length; }
      const vi = buildVisionIndex(c, grids.map((x) => [...x]));
      out.vision = { numPatches: vi.numPatches, pixelValues, posIds: vi.posIds, cuSeqlens: vi.cuSeqlens };
      if (vi.windowIndex && vi.cuWindowSeqlens) {
        out.vision.windowIndex = vi.windowIndex;
        out.vision.cuWindowSeqlens = vi.cuWindowSeqlens;
      }
    }
    return out;
  }

  // Calls into the native model run one at a time, in call order.
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(fn, fn);
    this.#busy = run.catch(() => undefined);
    return run;
  }

  /** Forward pass of one sequence: log-probs of `targets` (and/or logits). */
  async forward(req: ForwardRequest): Promise<ForwardOutput> {
    const [out] = await this.forwardBatch([req], {
      returnLogits: req.returnLogits ?? !req.targets,
      returnEntropy: req.returnEntropy ?? false,
      temperature: req.temperature ?? 1,
      adapters: req.adapters ?? true,
    });
    return out!;
  }

  /**
   * Forward over several sequences packed together (no padding compute). With `keepForBackward`, a following
   * backward() differentiates sum(gradLogprobs * logprobs) through the whole model (through the adapters only in
   * LoRA mode). `adapters: false` runs the frozen base model in LoRA mode (the KL reference); adapter dropout is
   * active only in forwards with keepForBackward.
   */
  async forwardBatch(
    reqs: readonly (ModelInput & { targets?: Int32Array })[],
    opts: { returnLogits?: boolean; returnEntropy?: boolean; keepForBackward?: boolean; recompute?: boolean; temperature?: number; adapters?: boolean } = {},
  ): Promise<ForwardOutput[]> {
    const packed = this.pack(reqs);
    const anyTargets = reqs.some((r) => r.targets);
    let targets: Int32Array | undefined;
    if (anyTargets) {
      targets = new Int32Array(packed.inputIds.length).fill(-1);
      reqs.forEach((r, i) => {
        if (!r.targets) return;
        if (r.targets.length !== r.inputIds.length) throw new RangeError(`targets of sequence ${i} has length ${r.targets.length}, expected ${r.inputIds.length}`);
        targets!.set(r.targets, packed.cuSeqlens[i]!);
      });
    }
    const { ropeDeltas: _d, ...input } = packed;
    const h = this.handle;
    const res = await this.#serial(() => h.forward({
      ...input,
      ...(targets ? { targets } : {}),
      returnLogits: opts.returnLogits ?? !anyTargets,
      returnEntropy: opts.returnEntropy ?? false,
      keepForBackward: opts.keepForBackward ?? false,
      recompute: opts.recompute ?? false,
      temperature: opts.temperature ?? 1,
      adapters: opts.adapters ?? true,
    }));
    const V = this.config.vocabSize;
    return reqs.map((_, i) => {
      const a = packed.cuSeqlens[i]!, b = packed.cuSeqlens[i + 1]!;
      const o: ForwardOutput = {};
      if (res.logits) o.logits = res.logits.subarray(a * V, b * V);
      if (res.logprobs) o.logprobs = res.logprobs.subarray(a, b);
      if (res.entropy) o.entropy = res.entropy.subarray(a, b);
      return o;
    });
  }

  /**
   * Backward of the last forwardBatch({ keepForBackward: true }); accumulates into gradients(), or in LoRA mode
   * into loraGradients() only (the base is frozen: no base-weight gradient is computed). `overlapWith` (data parallel,
   * see ZeroAdamW.finalBackward) reduces the gradients across ranks in buckets while backward runs.
   */
  async backward(opts: { gradLogprobs: Float32Array; gradEntropy?: Float32Array; trainVision?: boolean; overlapWith?: NativeBucketReduce }): Promise<BucketReduceStats | undefined> {
    const h = this.handle;
    return (await this.#serial(() => h.backward(opts))) ?? undefined;
  }

  /** Batched KV-cached generation; `numSamples` completions per prompt share the prompt's prefill. */
  async generate(input: ModelInput | readonly ModelInput[], opts: GenerateOptions = {}): Promise<Generation[]> {
    const prompts = Array.isArray(input) ? (input as readonly ModelInput[]) : [input as ModelInput];
    const gc = this.generationConfig;
    const packed = this.pack(prompts);
    const temperature = opts.temperature ?? (gc.doSample ? gc.temperature : 0);
    const maxNewTokens = opts.maxNewTokens ?? gc.maxNewTokens ?? 256;
    const h = this.handle;
    const seqs = await this.#serial(() => h.generate({
      ...packed,
      maxNewTokens,
      numSamples: opts.numSamples ?? 1,
      seed: opts.seed ?? 0,
      temperature,
      topK: opts.topK ?? (temperature > 0 ? gc.topK : 0),
      topP: opts.topP ?? (temperature > 0 ? gc.topP : 1),
      minP: opts.minP ?? 0,
      stopIds: Int32Array.from(opts.stopIds ?? gc.eosTokenIds),
      sequenceIdBase: opts.sequenceIdBase ?? 0,
      adapters: opts.adapters ?? true,
      mergeAdapters: opts.mergeAdapters ?? true,
    }));
    const tok = this.tokenizer;
    return seqs.map((s) => {
      let text: string | undefined;
      return {
        prompt: s.prompt,
        tokens: s.tokens,
        logprobs: s.logprobs,
        finishReason: s.stopped ? 'stop' : 'length',
        get text(): string {
          text ??= tok.decode(s.tokens, { skipSpecialTokens: true });
          return text;
        },
      } satisfies Generation;
    });
  }

  /** Zero-copy view of all parameters (the layout of layout()). */
  parameters(): Float32Array {
    return this.handle.parameters();
  }

  /** Zero-copy view of the gradient buffer (same layout as parameters()). */
  gradients(): Float32Array {
    return this.handle.gradients();
  }

  /** Zeroes gradients(); in LoRA mode zeroes loraGradients() instead (the base gradients are not used). */
  zeroGrads(): void {
    this.handle.zeroGrads();
  }

  /**
   * One optimizer step on the model thread: global grad-norm clipping (maxGradNorm > 0) then AdamW over
   * [begin, end) of the parameters (target 'params') or of the LoRA adapters (target 'lora'). The moment arrays
   * must not be touched until the Promise resolves. A non-finite gradient norm skips the update.
   */
  async optimizerStep(o: Parameters<NativeModelHandle['optimizerStep']>[0]): Promise<{ gradNorm: number; skipped: boolean }> {
    const h = this.handle;
    return this.#serial(() => h.optimizerStep(o));
  }

  /** Name, shape and offset of every parameter in the parameter buffer. */
  layout(): { name: string; shape: number[]; offset: number; numel: number; vision: boolean }[] {
    return this.handle.layout();
  }

  // ---- LoRA (src/model/lora.ts)

  /**
   * Adds LoRA adapters (replacing any the model has) on the layers `targetModules` selects (PEFT's rule, see
   * src/model/lora.ts); A is seeded kaiming-uniform, B zero, so outputs are unchanged until training moves B.
   * From then on the base weights are frozen and backward() trains the adapters only. Resolves to the config.
   */
  async enableLora(opts: LoraOptions): Promise<LoraConfig> {
    const cfg = resolveLoraConfig(this.config, opts);
    const h = this.handle;
    await this.#serial(() => h.enableLora({ r: cfg.r, alpha: cfg.alpha, dropout: cfg.dropout, rsLora: cfg.rsLora, seed: cfg.seed, modules: [...cfg.modules] }));
    this.#lora = cfg;
    return cfg;
  }

  /** Removes the adapters: back to the plain (fully trainable) model. Existing adapter views stay readable. */
  async disableLora(): Promise<void> {
    const h = this.handle;
    await this.#serial(() => h.disableLora());
    this.#lora = undefined;
  }

  /** The adapters' configuration, or undefined when the model has none. */
  get loraConfig(): LoraConfig | undefined {
    return this.#handle ? this.#lora : undefined;
  }

  /** Zero-copy view of the adapters' parameters (layout: loraLayout()); an optimizer can run over it alone. */
  loraParameters(): Float32Array {
    return this.handle.loraParameters();
  }

  /** Zero-copy view of the adapters' gradients (same layout as loraParameters()). */
  loraGradients(): Float32Array {
    return this.handle.loraGradients();
  }

  /** Every adapter tensor: PEFT key, layer, A or B, shape, offset in loraParameters(). */
  loraLayout(): LoraTensorInfo[] {
    return this.handle.loraLayout().tensors.map((t) => {
      const m = /^base_model\.model\.(.+)\.lora_(A|B)\.weight$/.exec(t.name)!;
      return { name: t.name, module: m[1]!, kind: m[2] as 'A' | 'B', shape: t.shape, offset: t.offset, numel: t.numel, vision: t.vision };
    });
  }

  /** A copy of parameters() with the adapters merged into the adapted matrices (W + s·B·A); the model is unchanged. */
  async mergedParameters(): Promise<Float32Array> {
    const h = this.handle;
    return this.#serial(() => h.mergedParameters());
  }

  /** Frees the native model (after running calls finish). Idempotent. */
  async dispose(): Promise<void> {
    const h = this.#handle;
    if (!h) return;
    this.#handle = undefined;
    await this.#busy;
    h.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/**
 * Qwen3-VL image preprocessing: without preprocessor_config.json the Qwen3-VL processor defaults apply (patch 16,
 * mean/std 0.5, 65536..16777216 pixels) instead of Qwen2-VL's; with one, its patch geometry must match config.json
 * (a 14-pixel Qwen2 processor file would silently feed the 16-pixel tower wrong patches).
 */
function qwen3Preprocessor(folder: ModelFolder, pre: PreprocessorConfig): PreprocessorConfig {
  const c = folder.config;
  if (c.modelType !== 'qwen3_vl') return pre;
  if (folder.files.preprocessorConfig === null) {
    return { ...pre, patchSize: c.patchSize, temporalPatchSize: c.temporalPatchSize, mergeSize: c.spatialMergeSize,
      imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5], minPixels: 65536, maxPixels: 16777216 };
  }
  if (pre.patchSize !== c.patchSize || pre.mergeSize !== c.spatialMergeSize || pre.temporalPatchSize !== c.temporalPatchSize) {
    throw new VlmGrpoError('ERR_PREPROCESSOR_CONFIG',
      `preprocessor_config.json (patch_size ${pre.patchSize}, merge_size ${pre.mergeSize}, temporal_patch_size ${pre.temporalPatchSize}) ` +
      `does not match config.json (patch_size ${c.patchSize}, spatial_merge_size ${c.spatialMergeSize}, temporal_patch_size ${c.temporalPatchSize}).`,
      'Use the preprocessor_config.json that came with the Qwen3-VL checkpoint.');
  }
  return pre;
}

/**
 * Loads a model folder: config.json, the safetensors weights (memory-mapped, converted to fp32), and, when
 * present, tokenizer.json / tokenizer_config.json, the chat template, preprocessor_config.json and
 * video_preprocessor_config.json.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<VlmModel> {
  const device = options.device ?? 'cpu';
  if (device !== 'cpu') {
    throw new VlmGrpoError('ERR_DEVICE', `device '${device}' is not supported by this version's model runtime.`,
      "Use device: 'cpu' (the CUDA kernels are built, but the model does not run on the GPU yet).");
  }
  const folder = readModelFolder(dir);
  const [tokenizer, chatTemplate, loadedPreprocessor, videoProcessor] = await Promise.all([
    loadTokenizer(folder.dir, { optional: true }),
    ChatTemplate.load(folder.dir),
    loadPreprocessorConfig(folder.dir, { optional: true }),
    loadVideoPreprocessorConfig(folder.dir),
  ]);
  const preprocessor = qwen3Preprocessor(folder, loadedPreprocessor);
  const NativeModel = native().NativeModel;
  const handle = new NativeModel(nativeModelConfig(folder.config));
  try {
    await handle.load(folder.weights.params.map((p) => ({ name: p.name, file: p.file, dtype: p.dtype, begin: p.byteOffset, end: p.byteOffset + p.byteLength })));
  } catch (err) {
    handle.dispose();
    throw err;
  }
  return new VlmModel(folder, handle, tokenizer, chatTemplate, preprocessor, videoProcessor);
}
