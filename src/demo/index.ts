/**
 * The demo's synthetic visual-counting task: scene sampling (scenes.ts), rendering (render.ts), the VLM-R1 JSONL
 * data set writer (synth-counting.ts), the task tokenizer (tokenizer.ts) and the tiny Qwen2.5-VL model folder
 * (tiny-model.ts). CLI: `vlm-grpo data synth-counting` and `vlm-grpo data init-model`.
 */
export {
  ALL_COMBOS,
  CELL,
  COLOR_JITTER,
  COLOR_RGB,
  COLORS,
  CONDITION_A,
  CONDITION_B,
  QUESTION_KINDS,
  Rng,
  SHAPES,
  allQuestions,
  centresVisible,
  comboCondition,
  comboName,
  countedNoun,
  countingCompletion,
  countMatches,
  gridForImageSize,
  matchesQuestion,
  objectContains,
  questionText,
  questionsFor,
  sampleScene,
} from './scenes.js';
export type {
  Color,
  Combo,
  Condition,
  CountingQuestion,
  ObjectSize,
  OverlapKind,
  QuestionKind,
  Rgb,
  Scene,
  SceneBackground,
  SceneObject,
  SceneSamplingOptions,
  Shape,
} from './scenes.js';
export { renderScenePng, renderSceneRgb, sceneToSvg } from './render.js';
export { COUNTING_REWARD_METHOD, SPLIT_SPECS, countingRow, countingScene, writeCountingDataset } from './synth-counting.js';
export type {
  CountingDatasetOptions,
  CountingDatasetResult,
  CountingSplit,
  CountingSplitFiles,
  CountingSplitStats,
  SceneRecord,
} from './synth-counting.js';
export {
  DEMO_CORPUS_TEMPLATES,
  QWEN_SPLIT_REGEX,
  QWEN_SPLIT_REGEX_JS,
  SPECIAL_TOKEN_ORDER,
  buildTaskTokenizer,
  bytesToUnicode,
  countingCorpus,
  learnMerges,
  preTokenize,
} from './tokenizer.js';
export type { BuildTokenizerOptions, TaskTokenizer } from './tokenizer.js';
export { INITIALIZER_RANGE, TINY_MODEL_PRESETS, initTinyWeights, tinyModelConfigJson, writeTinyModel } from './tiny-model.js';
export type { TinyModelOptions, TinyModelPreset, TinyModelResult } from './tiny-model.js';
