/**
 * generation_config.json → flat, validated sampling defaults (spec 5.4).
 *
 * Missing keys take Hugging Face GenerationConfig's defaults (do_sample false, temperature 1, top_k 50,
 * top_p 1, repetition_penalty 1). Token ids missing from the file fall back to config.json's. The published
 * Qwen-VL files set do_sample true with a tiny temperature / top_k 1 and a repetition penalty of 1.05, which
 * changes greedy outputs: callers decide whether to honour these defaults; this module only reports them.
 * HF conventions kept: top_k 0 disables top-k, top_p 1 disables nucleus filtering.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { z } from 'zod';

import { ModelConfigError, type ModelConfig } from './config.js';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

export interface GenerationConfig {
  /** Path of generation_config.json, or null when the folder has none (all defaults). */
  readonly file: string | null;
  readonly doSample: boolean;
  /** > 0. */
  readonly temperature: number;
  /** 0 = disabled. */
  readonly topK: number;
  /** In (0, 1]; 1 = disabled. */
  readonly topP: number;
  /** > 0; 1 = none. Applied to every id already in the sequence (prompt and image pads included). */
  readonly repetitionPenalty: number;
  readonly maxNewTokens: number | null;
  readonly maxLength: number | null;
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Generation stops on any of these. */
  readonly eosTokenIds: readonly number[];
}

const nonNegInt = z.number().int().nonnegative();
const schema = z.looseObject({
  do_sample: z.boolean().nullish(),
  temperature: z.number().positive().nullish(),
  top_k: nonNegInt.nullish(),
  top_p: z.number().gt(0).lte(1).nullish(),
  repetition_penalty: z.number().positive().nullish(),
  max_new_tokens: z.number().int().positive().nullish(),
  max_length: z.number().int().positive().nullish(),
  bos_token_id: nonNegInt.nullish(),
  pad_token_id: nonNegInt.nullish(),
  eos_token_id: z.union([nonNegInt, z.array(nonNegInt)]).nullish(),
});

/**
 * Parses a decoded generation_config.json. `model` (optional) supplies fallback token ids and the vocabulary
 * size every id must fit in. Throws ModelConfigError naming the file and the field.
 */
export function parseGenerationConfig(raw: unknown, file: string | null = GENERATION_CONFIG_FILE, model?: ModelConfig): GenerationConfig {
  const label = file ?? GENERATION_CONFIG_FILE;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelConfigError(label, '', 'expected a JSON object');
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = issue.path.map(String);
    let v: unknown = raw;
    for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
    throw new ModelConfigError(label, path.join('.'), `${issue.message}; got ${JSON.stringify(v)}`);
  }
  const d = r.data;
  const eosRaw = d.eos_token_id;
  const eosTokenIds = eosRaw == null ? [...(model?.eosTokenIds ?? [])] : Array.isArray(eosRaw) ? [...eosRaw] : [eosRaw];
  const out: GenerationConfig = {
    file,
    doSample: d.do_sample ?? false,
    temperature: d.temperature ?? 1,
    topK: d.top_k ?? 50,
    topP: d.top_p ?? 1,
    repetitionPenalty: d.repetition_penalty ?? 1,
    maxNewTokens: d.max_new_tokens ?? null,
    maxLength: d.max_length ?? null,
    bosTokenId: d.bos_token_id ?? model?.bosTokenId ?? null,
    padTokenId: d.pad_token_id ?? model?.padTokenId ?? null,
    eosTokenIds,
  };
  if (model) {
    const check = (field: string, id: number | null): void => {
      if (id !== null && id >= model.vocabSize) throw new ModelConfigError(label, field, `token id ${id} is outside the vocabulary (vocab_size ${model.vocabSize})`);
    };
    check('bos_token_id', out.bosTokenId);
    check('pad_token_id', out.padTokenId);
    for (const e of out.eosTokenIds) check('eos_token_id', e);
  }
  return out;
}

/**
 * Reads `<dir>/generation_config.json`; a folder without one gets the defaults (file: null) with the token
 * ids of `model` (config.json).
 */
export function readGenerationConfig(dir: string, model?: ModelConfig): GenerationConfig {
  const file = join(dir, GENERATION_CONFIG_FILE);
  if (!existsSync(file)) return parseGenerationConfig({}, null, model);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelConfigError(file, '', `invalid JSON: ${(e as Error).message}`);
  }
  return parseGenerationConfig(json, file, model);
}
