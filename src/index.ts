/** vlm-grpo: the public library API. */
export * as kernels from './kernels/index.js';
export { buildInfo, cudaInfo, setNumThreads, getNumThreads } from './native/runtime.js';
export type { BuildInfo, CudaInfo } from './native/runtime.js';
export { VlmGrpoError, NativeAddonError } from './errors.js';
// ---- processor (images, videos, tokenizer, chat template)
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
  preprocessVideo,
  preprocessVideos,
  expandVideoTokenIds,
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
  VideoInput,
  VideoSamplingOptions,
  PreprocessVideoOptions,
  PreprocessedVideo,
  PreprocessedVideos,
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
  syncBuiltinRewardNames,
  cocoAveragePrecision,
  detectionScore,
  cleanAnswerText,
  llmScore,
  parseJudgeReply,
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
// ---- data (VLM-R1 / verl / R1-V datasets as Arrow tables, prompt templates, prepared prompts)
export * as data from './data/index.js';
export {
  PromptDataset,
  loadPromptDatasets,
  PROMPT_TEMPLATES,
  PROMPT_TEMPLATE_NAMES,
  resolvePromptTemplate,
  preparePrompt,
  DataError,
} from './data/index.js';
export type {
  PromptRow,
  PromptDatasetOptions,
  PromptDatasets,
  DataSource,
  DatasetState,
  DatasetCursor,
  DatasetFormat,
  PreparedPrompt,
  PromptProcessor,
  PromptTemplateName,
  SkipReason,
} from './data/index.js';
// ---- report (metrics.jsonl, rollouts Parquet, reflection counters, progress, HTML report)
export * as report from './report/index.js';
export {
  MetricsLog,
  RolloutLog,
  writeHtmlReport,
  countReflections,
  reflectionStats,
  summarize,
  summarizeRewards,
  fracZeroStdGroups,
  lengthStats,
  ProgressReporter,
  ReportError,
  attachWandb,
  syncWandbOffline,
  WandbError,
} from './report/index.js';
export type { StepMetrics, RolloutInput, RolloutRecord, HtmlReportOptions, ReflectionStats, WandbOptions, WandbRun } from './report/index.js';
// ---- LoRA adapters (PEFT format)
export {
  LORA_ADAPTER_CONFIG_FILE,
  LORA_ADAPTER_WEIGHTS_FILE,
  LORA_TEXT_TARGETS,
  LoraError,
  loraAdaptableModules,
  resolveLoraTargets,
  saveLoraAdapter,
  loadLoraAdapter,
  mergeLoraInto,
  readPeftAdapterConfig,
} from './model/lora.js';
export type { LoraOptions, LoraConfig, LoraTensorInfo, LoraModule, PeftLoraSettings } from './model/lora.js';
export { GrpoTrainer } from './rl/trainer.js';
export type { TrainerEvents, TrainerOptions, TrainResult } from './rl/trainer.js';
export type { PreparedPrompt as TrainerPrompt, PromptSource, Rollout } from './rl/types.js';
export { computeAdvantages, overlongPenalty } from './rl/advantages.js';
export { learningRate } from './rl/lr-schedule.js';
export { evaluate } from './rl/evaluate.js';
export type { EvalOptions, EvalResult } from './rl/evaluate.js';
export { loadConfig, parseConfig, ConfigError } from './config/load.js';
export { configSchema, wandbConfigSchema } from './config/schema.js';
export type { TrainConfig, TrainConfigInput, WandbConfig } from './config/schema.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints } from './checkpoint/checkpoint.js';
export { saveShardedCheckpoint, readOptimizerMoments, optimizerShardName } from './checkpoint/checkpoint.js';
export type { ShardedCheckpointPeers, OptimizerShardInfo } from './checkpoint/checkpoint.js';
// ---- data-parallel training (collectives, ZeRO, launcher, rendezvous)
export { Communicator, ZeroAdamW, shardCounts, shardRange } from './dist/index.js';
export { launch, watchLauncher } from './dist/launcher.js';
export type { LaunchOptions, LaunchResult, RankExit } from './dist/launcher.js';
export { parseRendezvous, RendezvousError } from './dist/rendezvous.js';
export type { Rendezvous, RankInfo, LaunchPlan, LaunchFlags } from './dist/rendezvous.js';
export { checkWorldSize } from './rl/trainer.js';
export { SftTrainer } from './sft/sft-trainer.js';
export type { SftStepMetrics, SftEvents, SftOptions } from './sft/sft-trainer.js';
export { loadSftConfig, parseSftConfig } from './config/load.js';
export { sftConfigSchema } from './config/schema.js';
export type { SftConfig, SftConfigInput } from './config/schema.js';
