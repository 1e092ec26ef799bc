/**
 * Qwen2-VL / Qwen2.5-VL model folders: config, generation config, weights plan, and the index arrays
 * (M-RoPE positions, vision windows) the native model consumes. This module re-exports the pieces and
 * offers readModelFolder(), which validates a whole checkpoint folder in one call.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { readModelConfig, type ModelConfig } from './config.js';
import { readGenerationConfig, type GenerationConfig } from './generation-config.js';
import { planWeights, type WeightPlan } from './weights.js';

export {
  ModelConfigError,
  parseModelConfig,
  readModelConfig,
  type ActivationKind,
  type ModelConfig,
  type ModelType,
  type NormKind,
  type VisionAttentionKind,
  type VisionMlpKind,
} from './config.js';
export { GENERATION_CONFIG_FILE, parseGenerationConfig, readGenerationConfig, type GenerationConfig } from './generation-config.js';
export {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  MAX_HEADER_BYTES,
  readSafetensors,
  readSafetensorsHeader,
  SAFETENSORS_DTYPE_BYTES,
  SafetensorsError,
  writeSafetensors,
  type LoadedTensor,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type TensorData,
  type TensorToWrite,
} from './safetensors.js';
export {
  canonicalWeightName,
  expectedWeights,
  ModelWeightsError,
  planWeights,
  readPlannedWeights,
  resolveWeightFiles,
  SINGLE_WEIGHTS_FILE,
  WEIGHT_DTYPES,
  WEIGHTS_INDEX_FILE,
  type ExpectedWeight,
  type PlannedWeight,
  type SourceTensor,
  type WeightFile,
  type WeightPlan,
  type WeightSource,
} from './weights.js';
export { decodePositionIds, getRopeIndex, type IntArrayInput, type RopeIndex, type RopeIndexConfig, type RopeIndexInput } from './rope-index.js';
export {
  buildVisionIndex,
  invertPermutation,
  normalizeGrids,
  visionCuSeqlens,
  visionRotaryPosIds,
  visionWindowIndex,
  type GridInput,
  type GridThw,
  type VisionIndex,
  type VisionIndexConfig,
} from './vision-index.js';

/** Paths of the non-weight files of a model folder (null when absent); parsing them is the tokenizer's and processor's job. */
export interface ModelFolderFiles {
  readonly config: string;
  readonly generationConfig: string | null;
  readonly tokenizer: string | null;
  readonly tokenizerConfig: string | null;
  /** chat_template.json, else chat_template.jinja (the processor's template). */
  readonly chatTemplate: string | null;
  readonly preprocessorConfig: string | null;
}

export interface ModelFolder {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly generation: GenerationConfig;
  readonly weights: WeightPlan;
  readonly files: ModelFolderFiles;
}

/**
 * Validates a checkpoint folder: config.json (ModelConfigError if missing, unsupported or inconsistent),
 * generation_config.json (defaults if absent) and the safetensors weights against the config
 * (ModelWeightsError / SafetensorsError naming the file and tensor). Tensor data is not read.
 */
export function readModelFolder(dir: string): ModelFolder {
  const config = readModelConfig(dir);
  const generation = readGenerationConfig(dir, config);
  const weights = planWeights(dir, config);
  const opt = (...names: string[]): string | null => {
    for (const n of names) {
      const p = join(dir, n);
      if (existsSync(p)) return p;
    }
    return null;
  };
  return {
    dir,
    config,
    generation,
    weights,
    files: {
      config: config.file,
      generationConfig: generation.file,
      tokenizer: opt('tokenizer.json'),
      tokenizerConfig: opt('tokenizer_config.json'),
      chatTemplate: opt('chat_template.json', 'chat_template.jinja'),
      preprocessorConfig: opt('preprocessor_config.json'),
    },
  };
}
