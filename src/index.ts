/** vlm-grpo: the public library API. */
export * as kernels from './kernels/index.js';
export { buildInfo, cudaInfo, setNumThreads, getNumThreads } from './native/runtime.js';
export type { BuildInfo, CudaInfo } from './native/runtime.js';
export { VlmGrpoError, NativeAddonError } from './errors.js';
// ---- processor (images, tokenizer, chat template)
export {
  preprocessImage,
  preprocessImages,
  smartResize,
  loadPreprocessorConfig,
  loadTokenizer,
  QwenTokenizer,
  ChatTemplate,
  expandImagePlaceholders,
  expandImageTokenIds,
  imageTokenCount,
} from './processor/index.js';
export type {
  ImageInput,
  ImageGridThw,
  PreprocessImageOptions,
  PreprocessedImage,
  PreprocessedImages,
  PreprocessorConfig,
  SpecialTokenIds,
  ChatMessage,
  ChatContentPart,
  RenderChatOptions,
} from './processor/index.js';
// ---- model folder (config, weights plan, position/vision index arrays)
export * as model from './model/index.js';
export { readModelConfig, readModelFolder, ModelConfigError, ModelWeightsError, SafetensorsError } from './model/index.js';
export type { ModelConfig, ModelFolder, GenerationConfig, WeightPlan, PlannedWeight } from './model/index.js';
// ---- rewards (built-in verifiable rewards, weighted scorer, custom reward modules)
export * as rewards from './rewards/index.js';
export {
  rewardFunctions,
  builtinRewards,
  builtinRewardNames,
  createRewardScorer,
  loadRewardScorer,
  RewardScorer,
  loadCustomReward,
  dispatchByRow,
  parseRewardArg,
  weightedSum,
  extractAnswer,
  RewardError,
} from './rewards/index.js';
export type {
  RewardSample,
  RewardFunction,
  BatchedRewardFunction,
  RewardSpec,
  RewardScores,
  RewardScorerOptions,
  RewardErrorEvent,
} from './rewards/index.js';
export { loadModel, VlmModel } from './model/vlm-model.js';
export type { LoadModelOptions, ModelInput, EncodedInput, EncodeRequest, ForwardRequest, ForwardOutput, GenerateOptions, Generation } from './model/vlm-model.js';
