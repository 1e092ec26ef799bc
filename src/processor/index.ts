/** Image preprocessing, tokenizer and chat template for Qwen2-VL / Qwen2.5-VL. */
export { smartResize, roundHalfToEven, MAX_ASPECT_RATIO } from './smart-resize.js';
export type { SmartResizeOptions } from './smart-resize.js';
export {
  preprocessImage,
  preprocessImages,
  preprocessRgbImage,
  decodeImage,
  resizeBicubicPil,
  patchifyImage,
  flattenAlphaOnWhite,
} from './image.js';
export type {
  ImageInput,
  ImageGridThw,
  ImageSize,
  RgbImage,
  PreprocessImageOptions,
  PreprocessedImage,
  PreprocessedImages,
} from './image.js';
export {
  loadPreprocessorConfig,
  parsePreprocessorConfig,
  defaultPreprocessorConfig,
  DEFAULT_PREPROCESSOR_CONFIG,
  CLIP_MEAN,
  CLIP_STD,
} from './preprocessor-config.js';
export type { PreprocessorConfig } from './preprocessor-config.js';
export { loadTokenizer, QwenTokenizer, QWEN_SPECIAL_TOKENS } from './tokenizer.js';
export type { SpecialTokenIds } from './tokenizer.js';
export {
  ChatTemplate,
  DEFAULT_QWEN2_VL_CHAT_TEMPLATE,
  expandImagePlaceholders,
  expandImageTokenIds,
  expandVideoTokenIds,
  imageTokenCount,
} from './chat-template.js';
export type { ChatMessage, ChatContentPart, RenderChatOptions } from './chat-template.js';
export {
  preprocessVideo,
  preprocessVideos,
  preprocessVideoFrames,
  decodeVideo,
  patchifyVideo,
  smartNframes,
  sampleFrameIndices,
  videoPixelBudget,
  videoGridFor,
  loadVideoPreprocessorConfig,
  VIDEO_MIN_PIXELS,
  VIDEO_MAX_PIXELS,
  VIDEO_TOTAL_PIXELS,
} from './video.js';
export type {
  VideoInput,
  VideoSamplingOptions,
  PreprocessVideoOptions,
  PreprocessedVideo,
  PreprocessedVideos,
  DecodedVideo,
  VideoProcessorConfig,
} from './video.js';
