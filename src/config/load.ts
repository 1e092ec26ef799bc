/**
 * Loading and validating a training configuration: a YAML/JSON file (or object), `--set key=value` overrides,
 * unknown keys rejected with a did-you-mean hint, zod validation with messages naming the field, and the
 * cross-field rules that must hold before any heavy work.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import { VlmGrpoError } from '../errors.js';
import { didYouMean } from './did-you-mean.js';
import { configSchema, sftConfigSchema, type SftConfig, type TrainConfig } from './schema.js';

export class ConfigError extends VlmGrpoError {
  constructor(message: string, remedy: string) {
    super('ERR_CONFIG', message, remedy);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Unwraps optional/default/nullable wrappers down to the object/array schema underneath. */
function unwrap(s: z.ZodType): z.ZodType {
  let cur: z.ZodType = s;
  for (let i = 0; i < 10; i++) {
    const def = (cur as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
    if (def.innerType && ['optional', 'default', 'prefault', 'nullable'].includes(def.type)) cur = def.innerType;
    else break;
  }
  return cur;
}

/** Walks raw input next to the schema and reports the first unknown key with a suggestion. */
function checkUnknownKeys(raw: unknown, schema: z.ZodType, path: string[], source: string): void {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject && isPlainObject(raw)) {
    const shape = s.shape as Record<string, z.ZodType>;
    const known = Object.keys(shape);
    for (const [k, v] of Object.entries(raw)) {
      const here = [...path, k].join('.');
      if (!(k in shape)) {
        const hint = didYouMean(k, known);
        throw new ConfigError(
          `${source}: unknown key '${here}'.${hint ? ` Did you mean '${[...path, hint].join('.')}'?` : ''}`,
          `Valid keys${path.length ? ` under '${path.join('.')}'` : ''}: ${known.join(', ')}.`,
        );
      }
      checkUnknownKeys(v, shape[k]!, [...path, k], source);
    }
  } else if (s instanceof z.ZodArray && Array.isArray(raw)) {
    raw.forEach((v, i) => checkUnknownKeys(v, s.element as z.ZodType, [...path, String(i)], source));
  }
}

/** Parses a --set value: YAML scalars/flow collections ("3", "true", "[a, b]", "{x: 1}") or a plain string. */
function parseValue(text: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch {
    return text;
  }
}

/** Applies `key.path=value` overrides (array items by index: rewards.0.weight=2). */
export function applyOverrides(raw: Json, overrides: readonly string[]): Json {
  const out = structuredClone(raw);
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set '${o}' is not of the form key.path=value.`, 'Write e.g. --set rollout.groupSize=8.');
    const keys = o.slice(0, eq).split('.');
    const value = parseValue(o.slice(eq + 1));
    let cur: Json | unknown[] = out;
    keys.forEach((k, i) => {
      const last = i === keys.length - 1;
      const container = cur as Record<string, unknown>;
      if (last) {
        container[k] = value;
        return;
      }
      if (!isPlainObject(container[k]) && !Array.isArray(container[k])) container[k] = /^\d+$/.test(keys[i + 1]!) ? [] : {};
      cur = container[k] as Json;
    });
  }
  return out;
}

function formatZodIssue(issue: z.core.$ZodIssue, source: string): string {
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  return `${source}: ${where}: ${issue.message}`;
}

/** Cross-field rules, checked after the schema. Each names the fields and the fix. */
function checkRules(c: TrainConfig, source: string): void {
  const fail = (msg: string, fix: string): never => {
    throw new ConfigError(`${source}: ${msg}`, fix);
  };
  if (c.rollout.groupSize < 2) {
    fail(`rollout.groupSize is ${c.rollout.groupSize}; group-relative advantages need at least 2 completions per prompt.`,
      'Set rollout.groupSize to 2 or more (8 is the usual value).');
  }
  if (c.algorithm.advantage === 'rloo' && c.algorithm.scaleRewards !== 'none') {
    fail(`algorithm.advantage 'rloo' does not divide by a std, but algorithm.scaleRewards is '${c.algorithm.scaleRewards}'.`,
      "Set algorithm.scaleRewards: none with rloo (or use advantage: grpo).");
  }
  if (c.rollout.overlongBuffer >= c.rollout.maxNewTokens) {
    fail(`rollout.overlongBuffer (${c.rollout.overlongBuffer}) must be smaller than rollout.maxNewTokens (${c.rollout.maxNewTokens}).`,
      'Use a buffer of a fraction of maxNewTokens (DAPO uses 1/4), or 0 to disable the soft penalty.');
  }
  if (c.train.evalEvery > 0 && c.data.validation.length === 0 && c.data.validationSplit === 0) {
    fail('train.evalEvery is set but there is no validation data.', 'Add data.validation files or set data.validationSplit (e.g. 0.05).');
  }
  if (c.algorithm.klInReward && c.algorithm.klCoef === 0) {
    fail('algorithm.klInReward is set but algorithm.klCoef is 0, so there is no KL to add.', 'Set algorithm.klCoef (e.g. 0.001) or drop klInReward.');
  }
  if (c.algorithm.klTarget !== null && c.algorithm.klCoef === 0) {
    fail('algorithm.klTarget (adaptive KL) needs a starting algorithm.klCoef > 0.', 'Set algorithm.klCoef (e.g. 0.001).');
  }
  if (c.model.device === 'cuda') {
    fail("model.device 'cuda': the GPU model runtime is not available in this version.", "Use model.device: cpu.");
  }
  if (c.rewards.every((r) => r.weight === 0)) fail('every reward has weight 0, so nothing can be learned.', 'Give at least one reward a non-zero weight.');
  for (const [i, r] of c.rewards.entries()) {
    if (r.name === 'custom' && !r.module) fail(`rewards.${i}: a custom reward needs 'module' (a path to a JS/TS file).`, 'Add module: ./my-reward.js');
  }
}

/** Resolves relative paths against the config file's folder, so a run works from any working directory. */
function resolvePaths<C extends Pick<TrainConfig, 'model' | 'data' | 'train'> & { rewards?: TrainConfig['rewards'] }>(c: C, base: string): C {
  const r = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  return {
    ...c,
    model: { ...c.model, path: r(c.model.path) },
    data: {
      ...c.data,
      train: c.data.train.map((d) => ({ ...d, path: r(d.path), ...(d.imageFolder ? { imageFolder: r(d.imageFolder) } : {}) })),
      validation: c.data.validation.map((d) => ({ ...d, path: r(d.path), ...(d.imageFolder ? { imageFolder: r(d.imageFolder) } : {}) })),
    },
    ...(c.rewards ? { rewards: c.rewards.map((x) => (x.module ? { ...x, module: r(x.module) } : x)) } : {}),
    train: { ...c.train, outDir: r(c.train.outDir) },
  };
}

/** Checks that the files the run needs exist, before any heavy work. */
export function checkPaths(c: Pick<TrainConfig, 'model' | 'data'> & { rewards?: TrainConfig['rewards'] }, source: string): void {
  if (!existsSync(resolve(c.model.path, 'config.json'))) {
    throw new ConfigError(`${source}: model.path ${c.model.path} has no config.json.`, 'Point model.path at a Hugging Face model folder (config.json + *.safetensors).');
  }
  for (const [i, d] of [...c.data.train.map((d) => ['train', d] as const), ...c.data.validation.map((d) => ['validation', d] as const)].entries()) {
    if (!existsSync(d[1].path)) throw new ConfigError(`${source}: data.${d[0]} file ${d[1].path} does not exist (entry ${i}).`, 'Fix the path (relative paths are resolved against the config file).');
  }
  for (const r of c.rewards ?? []) {
    if (r.module && !existsSync(r.module)) throw new ConfigError(`${source}: reward module ${r.module} does not exist.`, 'Fix rewards[].module.');
  }
}

/**
 * Validates a raw configuration object. `source` names it in errors; `baseDir` resolves relative paths.
 * Throws ConfigError for unknown keys (with a suggestion), invalid values (naming the field) and broken rules.
 */
export function parseConfig(raw: unknown, options: ParseOptions = {}): TrainConfig {
  return parseWith(configSchema, raw, options, checkRules);
}

/** Validates a supervised fine-tuning configuration (see sftConfigSchema). */
export function parseSftConfig(raw: unknown, options: ParseOptions = {}): SftConfig {
  return parseWith(sftConfigSchema, raw, options, (c, source) => {
    if (c.model.device === 'cuda') throw new ConfigError(`${source}: model.device 'cuda': the GPU model runtime is not available in this version.`, 'Use model.device: cpu.');
  });
}

export interface ParseOptions {
  /** Names the configuration in errors (a file path). */
  source?: string;
  /** Folder relative paths are resolved against. */
  baseDir?: string;
  /** `key.path=value` overrides applied before validation. */
  overrides?: readonly string[];
}

function parseWith<S extends typeof configSchema | typeof sftConfigSchema>(
  schema: S, raw: unknown, options: ParseOptions, rules: (c: z.output<S>, source: string) => void,
): z.output<S> {
  const source = options.source ?? 'config';
  if (!isPlainObject(raw)) throw new ConfigError(`${source}: the configuration must be a mapping (YAML object).`, 'See the README for an example run.yaml.');
  const withOverrides = options.overrides?.length ? applyOverrides(raw, options.overrides) : raw;
  checkUnknownKeys(withOverrides, schema, [], source);
  const parsed = schema.safeParse(withOverrides);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((i) => formatZodIssue(i, source));
    throw new ConfigError(lines.join('\n'), 'Fix the fields named above (see the README for every option and its default).');
  }
  const data = parsed.data as z.output<S>;
  rules(data, source);
  return resolvePaths(data, options.baseDir ?? process.cwd());
}

/** Reads a YAML or JSON config file and validates it (see parseConfig). */
export function loadConfig(file: string, overrides: readonly string[] = []): TrainConfig {
  return parseConfig(readConfigFile(file), { source: file, baseDir: dirname(resolve(file)), overrides });
}

/** Reads a YAML or JSON SFT config file and validates it (see parseSftConfig). */
export function loadSftConfig(file: string, overrides: readonly string[] = []): SftConfig {
  return parseSftConfig(readConfigFile(file), { source: file, baseDir: dirname(resolve(file)), overrides });
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, 'Check the path given to --config.');
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) as unknown;
  } catch (err) {
    throw new ConfigError(`${file} is not valid YAML/JSON: ${(err as Error).message}`, 'Fix the syntax at the line named above.');
  }
  return raw;
}
