/**
 * Rewards for GRPO: built-in verifiable rewards (accuracy, format, IoU, counting, length/repetition), weighted
 * combinations with per-row method dispatch, and custom reward modules loaded by path. Each file's header says
 * which peer's semantics it follows and where we deliberately differ (peers.md §b, §e.14, §f).
 */
export type { BatchedRewardFunction, ImageSize, RewardFunction, RewardSample } from './types.js';
export { RewardError, type RewardErrorCode } from './errors.js';
export {
  builtinRewardNames,
  builtinRewards,
  rewardFunctions,
  type BuiltinReward,
  type BuiltinRewardName,
  type SyncRewardFunction,
  syncBuiltinRewardNames,
  type SyncBuiltinRewardName,
} from './builtins.js';
export { extractAnswer, groundTruthText, hasAnswerSpan } from './answer.js';
export { extractBoxed, normalizeLatex, parsePlainNumber } from './numbers.js';
export { evaluateConstant, mathEquivalent } from './symbolic.js';
export { extractChoice, extractYesNo, numericValues, readAnswerNumber } from './values.js';
export { ACCURACY_METHODS, accuracyScore, autoScore, type AccuracyOptions } from './accuracy.js';
export { boxedFormatScore, formatScore, lenientAnswer, strictAnswer } from './format.js';
export { groundTruthBoxes, isValidBox, parseBoxes, type Box, type ParsedBox } from './boxes.js';
export { boxIou, iouScore, rescaleBox, type IouOptions } from './iou.js';
export { countingScore, readCount } from './counting.js';
export {
  allMatchScore,
  cleanAnswerText,
  COCO_IOU_THRESHOLDS,
  COCO_RECALL_THRESHOLDS,
  cocoAveragePrecision,
  detectionScore,
  mapScore,
  numpyLinspace,
  odApScore,
  odLengthScore,
  predictedBoxes,
  weightedSumScore,
  type CocoApResult,
  type DetectionScoreParts,
  type MapOptions,
  type WeightedSumOptions,
} from './detection.js';
export {
  askJudge,
  DEFAULT_LLM_BASE_URL,
  DEFAULT_LLM_INSTRUCTION,
  DEFAULT_LLM_MODEL,
  DEFAULT_LLM_PROMPT,
  fillPrompt,
  llmScore,
  llmSettings,
  parseJudgeReply,
  type LlmOptions,
  type LlmSettings,
} from './llm-judge.js';
export { distinctNgramRatio } from './length-penalty.js';
export {
  DEFAULT_METHOD_COLUMNS,
  dispatchByRow,
  parseRewardArg,
  rowMethod,
  weightedSum,
  type DispatchOptions,
  type RewardSpec,
} from './combine.js';
export { loadCustomReward, type LoadedReward } from './custom.js';
export {
  createRewardScorer,
  loadRewardScorer,
  RewardScorer,
  type RewardErrorEvent,
  type RewardScorerOptions,
  type RewardScores,
} from './scorer.js';
