/**
 * LoRA adapters for the native Qwen2-VL / Qwen2.5-VL model, saved and loaded in PEFT's format.
 *
 * An adapted linear layer W [out, in] computes y = x W^T + b + s · (drop(x) A^T) B^T with A [r, in], B [out, r]
 * and s = alpha / r (rsLoRA: alpha / sqrt(r)); A starts kaiming-uniform (U(-1/sqrt(in), 1/sqrt(in)), seeded), B at
 * zero, so a fresh adapter leaves the model unchanged. The base weights are frozen while adapters exist; the
 * adapters have their own parameter and gradient buffers (VlmModel.loraParameters() / loraGradients()). Dropout
 * applies to the adapter input in training forwards only (those with keepForBackward). Native side:
 * native/model/lora.h.
 *
 * Which layers are adapted (`targetModules`, PEFT's `target_modules`):
 *  - Candidates are the linear layers of the decoder and of the vision tower, each known by its Hub name and by
 *    its transformers ≥ 4.52 name:
 *      model.layers.{l}.self_attn.{q,k,v,o}_proj, model.layers.{l}.mlp.{gate,up,down}_proj
 *        (also model.language_model.layers.{l}....),
 *      visual.blocks.{b}.attn.{qkv,proj}, visual.blocks.{b}.mlp.{gate,up,down}_proj (Qwen2.5-VL) or
 *        visual.blocks.{b}.mlp.{fc1,fc2} (Qwen2-VL), visual.merger.mlp.{0,2} (also model.visual....).
 *    lm_head, embed_tokens and the patch embedding (a convolution) cannot be adapted.
 *  - A list selects a layer when an entry equals one of its names or is a dot-suffix of one (the name ends with
 *    "." + entry): "q_proj", "attn.qkv", "merger.mlp.0", "layers.3.mlp.up_proj" all work.
 *  - A string is a regular expression that must match a whole name (Python re.fullmatch semantics).
 *  - `excludeModules` (PEFT's `exclude_modules`) uses the same rule and wins over targetModules.
 *  These are PEFT's rules, so an adapter_config.json means the same layers here and in PEFT. The vision tower is
 *  adapted only when a rule selects its layers, but note that Qwen2.5-VL's vision blocks also have
 *  mlp.gate_proj / up_proj / down_proj: the usual list ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
 *  "up_proj", "down_proj"] adapts those vision MLPs too (exactly as PEFT does). For the language model only, use
 *  LORA_TEXT_TARGETS (a regex) or excludeModules: "visual\\..*|model\\.visual\\..*".
 *
 * Files: adapter_config.json + adapter_model.safetensors with keys base_model.model.<hub module>.lora_A.weight
 * [r, in] and .lora_B.weight [out, r] (keys written by PEFT for the transformers ≥ 4.52 layout,
 * base_model.model.model.language_model.* and base_model.model.model.visual.*, are accepted on load).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { writeFileAtomic } from '../util/atomic-file.js';
import { VlmGrpoError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors, type SafetensorsTensorInfo, type TensorToWrite } from './safetensors.js';
import { canonicalWeightName, expectedWeights } from './weights.js';
import type { VlmModel } from './vlm-model.js';

export const LORA_ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const LORA_ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** The seven decoder projections of every layer, and nothing in the vision tower (a targetModules regex). */
export const LORA_TEXT_TARGETS = 'model\\.(language_model\\.)?layers\\.\\d+\\.(self_attn\\.(q|k|v|o)_proj|mlp\\.(gate|up|down)_proj)';

/** Options of VlmModel.enableLora(). */
export interface LoraOptions {
  /** Rank r (integer >= 1). */
  r: number;
  /** lora_alpha (default 8, PEFT's default); scale s = alpha / r, or alpha / sqrt(r) with rsLora. */
  alpha?: number;
  /** Dropout on the adapter input in training forwards, in [0, 1) (default 0). */
  dropout?: number;
  /** Layers to adapt: module-name suffixes, or a regex matched against whole names (see the module comment). */
  targetModules: string | readonly string[];
  /** Layers to leave alone, same rule (default none). */
  excludeModules?: string | readonly string[] | null;
  /** Seed of A's initialisation and of the dropout masks (integer in [0, 2^53), default 0). */
  seed?: number;
  /** rsLoRA scaling alpha / sqrt(r) (default false). */
  rsLora?: boolean;
  /**
   * true (default): every list entry of targetModules must select a layer (catches typos). false: entries that
   * select nothing are ignored as in PEFT (used when loading adapters); at least one layer must still be selected.
   */
  strictTargets?: boolean;
}

/** The adapters a model carries: the options, fully defaulted, and the layers they selected. */
export interface LoraConfig {
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly rsLora: boolean;
  readonly seed: number;
  readonly targetModules: string | readonly string[];
  readonly excludeModules: string | readonly string[] | null;
  /** s = alpha / r (or alpha / sqrt(r)). */
  readonly scale: number;
  /** Hub names of the adapted layers, in model order. */
  readonly modules: readonly string[];
}

/** One tensor of the adapter buffer (VlmModel.loraLayout()). */
export interface LoraTensorInfo {
  /** PEFT key, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight. */
  readonly name: string;
  /** Hub name of the adapted layer. */
  readonly module: string;
  readonly kind: 'A' | 'B';
  /** [r, in] for A, [out, r] for B. */
  readonly shape: readonly number[];
  /** Offset in elements in loraParameters() / loraGradients(). */
  readonly offset: number;
  readonly numel: number;
  readonly vision: boolean;
}

/** An adapter folder or option that cannot be used; `file` and `key` name the culprit when there is one. */
export class LoraError extends VlmGrpoError {
  readonly file: string | null;
  readonly key: string | null;
  /** Every problem found, one sentence each. */
  readonly problems: readonly string[];

  constructor(file: string | null, key: string | null, problems: readonly string[], remedy?: string) {
    const shown = problems.slice(0, 12);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more (see .problems)` : '';
    super(
      'ERR_LORA',
      problems.length === 1 ? problems[0]! : `${problems.length} problems with the LoRA adapter:\n  ${shown.join('\n  ')}${more}`,
      remedy ?? 'Use an adapter saved for this base model (same architecture and sizes) in PEFT format.',
    );
    this.name = 'LoraError';
    this.file = file;
    this.key = key;
    this.problems = problems;
  }
}

/** A linear layer that can carry an adapter. */
export interface LoraModule {
  /** Hub name, e.g. model.layers.0.self_attn.q_proj. */
  readonly name: string;
  /** transformers ≥ 4.52 name, e.g. model.language_model.layers.0.self_attn.q_proj. */
  readonly newName: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly vision: boolean;
}

const LINEAR = /^(model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)|visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate_proj|up_proj|down_proj|fc1|fc2))|visual\.merger\.mlp\.(0|2))\.weight$/;

function newLayoutName(hub: string): string {
  if (hub.startsWith('model.')) return `model.language_model.${hub.slice('model.'.length)}`;
  if (hub.startsWith('visual.')) return `model.${hub}`;
  return hub;
}

/** Every adaptable linear layer of a model, in the native order (decoder layers, vision blocks, merger). */
export function loraAdaptableModules(config: ModelConfig): LoraModule[] {
  const out: LoraModule[] = [];
  for (const w of expectedWeights(config)) {
    if (!LINEAR.test(w.name)) continue;
    const name = w.name.slice(0, -'.weight'.length);
    out.push({ name, newName: newLayoutName(name), inFeatures: w.shape[1]!, outFeatures: w.shape[0]!, vision: name.startsWith('visual.') });
  }
  // expectedWeights lists the vision tower first; the native buffer puts the decoder first.
  return [...out.filter((m) => !m.vision), ...out.filter((m) => m.vision)];
}

/** Names a rule is matched against for each layer: the Hub name and the transformers ≥ 4.52 name. */
function namesOf(m: LoraModule): string[] {
  return [m.name, m.newName];
}

function fullMatchRegex(pattern: string, field: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new RangeError(`${field}: ${JSON.stringify(pattern)} is not a valid regular expression: ${(e as Error).message}`);
  }
}

/** PEFT's rule: a string is a full-match regex; a list entry matches a name equal to it or ending in "." + entry. */
function ruleMatcher(rule: string | readonly string[], field: string): (name: string) => boolean {
  if (typeof rule === 'string') {
    const re = fullMatchRegex(rule, field);
    return (n) => re.test(n);
  }
  return (n) => rule.some((t) => n === t || n.endsWith(`.${t}`));
}

const NOT_ADAPTABLE = ['lm_head', 'embed_tokens', 'patch_embed', 'patch_embed.proj'];

/**
 * Hub names of the layers that targetModules selects and excludeModules does not, in native order (the rule is
 * in the module comment). strict: every list entry must select some layer. Throws RangeError naming the entry.
 */
export function resolveLoraTargets(
  config: ModelConfig,
  targetModules: string | readonly string[],
  excludeModules: string | readonly string[] | null = null,
  { strict = true }: { strict?: boolean } = {},
): string[] {
  const all = loraAdaptableModules(config);
  if (typeof targetModules !== 'string') {
    if (targetModules.includes('all-linear')) {
      throw new RangeError("targetModules: 'all-linear' is not supported; list the layers, e.g. LORA_TEXT_TARGETS or ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']");
    }
    if (strict) {
      for (const t of targetModules) {
        if (all.some((m) => namesOf(m).some((n) => n === t || n.endsWith(`.${t}`)))) continue;
        if (NOT_ADAPTABLE.some((x) => t === x || t.endsWith(`.${x}`) || t.endsWith(`.${x}.weight`))) {
          throw new RangeError(`targetModules: '${t}' cannot be adapted; LoRA adapts the linear layers of the decoder and the vision tower (not lm_head, embed_tokens or the patch embedding)`);
        }
        const suffixes = [...new Set(all.map((m) => m.name.replace(/^(model\.layers|visual\.blocks)\.\d+\./, '')))];
        throw new RangeError(`targetModules: '${t}' selects no layer of this ${config.modelType} model; layer names end in ${suffixes.join(', ')}`);
      }
    }
  }
  const take = ruleMatcher(targetModules, 'targetModules');
  const skip = excludeModules === null ? () => false : ruleMatcher(excludeModules, 'excludeModules');
  const chosen = all.filter((m) => namesOf(m).some(take) && !namesOf(m).some(skip)).map((m) => m.name);
  if (chosen.length === 0) {
    throw new RangeError(`targetModules ${JSON.stringify(targetModules)}${excludeModules !== null ? ` minus excludeModules ${JSON.stringify(excludeModules)}` : ''} selects no layer of this ${config.modelType} model (e.g. ${all[0]!.name}, ${all[all.length - 1]!.name})`);
  }
  return chosen;
}

const OPTION_KEYS = ['r', 'alpha', 'dropout', 'targetModules', 'excludeModules', 'seed', 'rsLora', 'strictTargets'];

function checkRule(v: unknown, field: string, nullable: boolean): asserts v is string | readonly string[] | null | undefined {
  if (v === undefined || (nullable && v === null)) return;
  if (typeof v === 'string') {
    if (v.length === 0) throw new RangeError(`${field} must not be empty`);
    return;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0)) {
    throw new TypeError(`${field} must be a regex string or an array of non-empty module-name strings, got ${JSON.stringify(v)}`);
  }
  if (v.length === 0) throw new RangeError(`${field} must not be an empty list`);
}

/** Validates and defaults enableLora() options and resolves the targets against the model (TypeError / RangeError naming the field). */
export function resolveLoraConfig(config: ModelConfig, opts: LoraOptions): LoraConfig {
  if (opts === null || typeof opts !== 'object') throw new TypeError('enableLora: options must be an object { r, targetModules, ... }');
  for (const k of Object.keys(opts)) {
    if (!OPTION_KEYS.includes(k)) throw new RangeError(`enableLora: unknown option '${k}'; known: ${OPTION_KEYS.join(', ')}`);
  }
  const { r, alpha = 8, dropout = 0, seed = 0, rsLora = false, strictTargets = true } = opts;
  if (typeof r !== 'number') throw new TypeError(`r must be a number, got ${typeof r}`);
  if (!Number.isInteger(r) || r < 1 || r > 1 << 20) throw new RangeError(`r must be an integer >= 1, got ${r}`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new RangeError(`alpha must be a finite number, got ${alpha}`);
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new RangeError(`dropout must be in [0, 1), got ${dropout}`);
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer in [0, 2^53), got ${seed}`);
  if (typeof rsLora !== 'boolean') throw new TypeError(`rsLora must be a boolean, got ${typeof rsLora}`);
  if (opts.targetModules === undefined) throw new TypeError('targetModules is required: e.g. LORA_TEXT_TARGETS or ["q_proj", "v_proj"]');
  checkRule(opts.targetModules, 'targetModules', false);
  checkRule(opts.excludeModules, 'excludeModules', true);
  const targetModules = typeof opts.targetModules === 'string' ? opts.targetModules : [...opts.targetModules];
  const excl = opts.excludeModules ?? null;
  const excludeModules = excl === null || typeof excl === 'string' ? excl : [...excl];
  const modules = resolveLoraTargets(config, targetModules, excludeModules, { strict: strictTargets });
  return { r, alpha, dropout, rsLora, seed, targetModules, excludeModules, scale: rsLora ? alpha / Math.sqrt(r) : alpha / r, modules };
}

// ------------------------------------------------------------------------------------------------------------
// PEFT files

/** adapter_config.json as PEFT writes it for a LoRA on a causal LM. */
export function peftAdapterConfig(cfg: LoraConfig, baseModelNameOrPath: string | null): Record<string, unknown> {
  const out: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: cfg.alpha,
    lora_dropout: cfg.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: cfg.r,
    rank_pattern: {},
    revision: null,
    target_modules: cfg.targetModules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: cfg.rsLora,
  };
  // Only when set: PEFT versions before exclude_modules existed reject unknown keys.
  if (cfg.excludeModules !== null) out.exclude_modules = cfg.excludeModules;
  return out;
}

/** The LoRA settings read from an adapter_config.json. */
export interface PeftLoraSettings {
  readonly file: string;
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly rsLora: boolean;
  readonly targetModules: string | readonly string[];
  readonly excludeModules: string | readonly string[] | null;
  readonly baseModelNameOrPath: string | null;
}

/**
 * Reads and validates <dir>/adapter_config.json. Throws LoraError naming the file and the key for: a missing or
 * unparsable file, peft_type other than LORA, a bad r / lora_alpha / lora_dropout / target_modules, and features
 * this runtime does not implement (bias other than "none", fan_in_fan_out, DoRA, rank/alpha patterns,
 * modules_to_save, layers_to_transform, layer_replication).
 */
export function readPeftAdapterConfig(dir: string): PeftLoraSettings {
  const file = join(dir, LORA_ADAPTER_CONFIG_FILE);
  if (!existsSync(file)) {
    throw new LoraError(file, null, [`${dir}: no ${LORA_ADAPTER_CONFIG_FILE}: not a PEFT adapter folder`], `Point at the folder that holds ${LORA_ADAPTER_CONFIG_FILE} and ${LORA_ADAPTER_WEIGHTS_FILE}.`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LoraError(file, null, [`${file}: not valid JSON: ${(e as Error).message}`]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new LoraError(file, null, [`${file}: not a JSON object`]);
  const j = raw as Record<string, unknown>;
  const bad = (key: string, msg: string, remedy?: string): never => {
    throw new LoraError(file, key, [`${file}: ${key}: ${msg}`], remedy);
  };
  if (j.peft_type !== 'LORA') bad('peft_type', `${JSON.stringify(j.peft_type)} is not "LORA": only LoRA adapters are supported`);
  const r = j.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad('r', `must be an integer >= 1, got ${JSON.stringify(r)}`);
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) bad('lora_alpha', `must be a number, got ${JSON.stringify(alpha)}`);
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad('lora_dropout', `must be in [0, 1), got ${JSON.stringify(dropout)}`);
  const rsLora = j.use_rslora ?? false;
  if (typeof rsLora !== 'boolean') bad('use_rslora', `must be a boolean, got ${JSON.stringify(rsLora)}`);
  const rule = (key: string, v: unknown, nullable: boolean): string | string[] | null => {
    if (v === null || v === undefined) {
      if (nullable) return null;
      return bad(key, 'is missing: the adapted layers must be listed', 'Save the adapter with an explicit target_modules list.');
    }
    if (typeof v === 'string' && v.length > 0) return v;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x.length > 0)) return v as string[];
    return bad(key, `must be a regex string or a non-empty list of module names, got ${JSON.stringify(v)}`);
  };
  const targetModules = rule('target_modules', j.target_modules, false)!;
  const excludeModules = rule('exclude_modules', j.exclude_modules, true);
  const unsupported = (key: string, ok: (v: unknown) => boolean, what: string): void => {
    if (!ok(j[key])) bad(key, `${JSON.stringify(j[key])}: ${what} is not supported by this runtime`, 'Train the adapter with plain LoRA settings, or merge it with PEFT and load the merged model.');
  };
  const empty = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0);
  unsupported('bias', (v) => v === undefined || v === 'none', 'training biases (bias other than "none")');
  unsupported('fan_in_fan_out', (v) => v === undefined || v === false, 'fan_in_fan_out (Conv1D layers)');
  unsupported('use_dora', (v) => v === undefined || v === false, 'DoRA');
  unsupported('rank_pattern', empty, 'a per-layer rank_pattern');
  unsupported('alpha_pattern', empty, 'a per-layer alpha_pattern');
  unsupported('modules_to_save', empty, 'modules_to_save (fully trained extra modules)');
  unsupported('layers_to_transform', (v) => v === undefined || v === null, 'layers_to_transform');
  unsupported('layer_replication', (v) => v === undefined || v === null, 'layer_replication');
  const base = typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null;
  return { file, r: r as number, alpha: alpha as number, dropout: dropout as number, rsLora: rsLora as boolean, targetModules, excludeModules, baseModelNameOrPath: base };
}

const PEFT_PREFIX = 'base_model.model.';

/** PEFT key of an adapter tensor of a Hub-named layer. */
export function peftLoraKey(module: string, kind: 'A' | 'B'): string {
  return `${PEFT_PREFIX}${module}.lora_${kind}.weight`;
}

/** A PEFT key in either name layout → { module (Hub name), kind }, or null when it is not a lora_A / lora_B weight. */
export function parsePeftLoraKey(key: string): { module: string; kind: 'A' | 'B' } | null {
  const m = /^base_model\.model\.(.+)\.lora_(A|B)\.weight$/.exec(key);
  if (!m) return null;
  return { module: canonicalWeightName(m[1]!), kind: m[2] as 'A' | 'B' };
}

function copyFileAtomic(src: string, dst: string): void {
  const tmp = join(dirname(dst), `.${basename(dst)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  copyFileSync(src, tmp);
  try {
    renameSync(tmp, dst);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

function requireLora(model: VlmModel, what: string): LoraConfig {
  const cfg = model.loraConfig;
  if (!cfg) {
    throw new LoraError(null, null, [`${what}: this model has no LoRA adapters`], 'Call model.enableLora({ r, targetModules }) or loadLoraAdapter(model, dir) first.');
  }
  return cfg;
}

/**
 * Writes the model's adapters to `dir` (created if needed) in PEFT's format: adapter_config.json and
 * adapter_model.safetensors (F32, keys base_model.model.<module>.lora_{A,B}.weight). Both files are written
 * atomically (temporary file + rename), so a reader never sees a half-written one.
 */
export async function saveLoraAdapter(model: VlmModel, dir: string, opts: { baseModelNameOrPath?: string | null } = {}): Promise<void> {
  const cfg = requireLora(model, 'saveLoraAdapter');
  mkdirSync(dir, { recursive: true });
  const params = model.loraParameters();
  const tensors = new Map<string, TensorToWrite>();
  for (const t of model.loraLayout()) tensors.set(t.name, { dtype: 'F32', shape: t.shape, data: params.slice(t.offset, t.offset + t.numel) });
  writeSafetensors(join(dir, LORA_ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  const base = opts.baseModelNameOrPath === undefined ? resolve(model.dir) : opts.baseModelNameOrPath;
  writeFileAtomic(join(dir, LORA_ADAPTER_CONFIG_FILE), `${JSON.stringify(peftAdapterConfig(cfg, base), null, 2)}\n`);
}

/**
 * Loads a PEFT LoRA adapter folder into the model, replacing any adapters it has. Everything is validated before
 * the model changes: adapter_config.json (readPeftAdapterConfig), the layers its target_modules select on this
 * model, and adapter_model.safetensors: every expected key present (either name layout), no extra keys, shapes
 * [r, in] / [out, r] matching r and the base layers, dtype F32 / BF16 / F16. Errors are LoraError naming the file
 * and the key. `seed` seeds the dropout masks of later training (default 0).
 */
export async function loadLoraAdapter(model: VlmModel, dir: string, opts: { seed?: number } = {}): Promise<LoraConfig> {
  const settings = readPeftAdapterConfig(dir);
  const wfile = join(dir, LORA_ADAPTER_WEIGHTS_FILE);
  let modules: string[];
  try {
    modules = resolveLoraTargets(model.config, settings.targetModules, settings.excludeModules, { strict: false });
  } catch (e) {
    throw new LoraError(settings.file, 'target_modules', [`${settings.file}: target_modules: ${(e as Error).message}`]);
  }
  if (!existsSync(wfile)) {
    throw new LoraError(wfile, null, [`${dir}: no ${LORA_ADAPTER_WEIGHTS_FILE} (PEFT's .bin adapters are not supported)`], 'Save the adapter with safe_serialization=True (the PEFT default).');
  }
  const header = readSafetensorsHeader(wfile);
  const info = new Map(loraAdaptableModules(model.config).map((m) => [m.name, m]));
  const found = new Map<string, SafetensorsTensorInfo>();
  const problems: string[] = [];
  let first: string | null = null;
  const problem = (key: string, msg: string): void => {
    problems.push(`${wfile}: ${msg}`);
    first ??= key;
  };
  const wanted = new Set(modules.flatMap((m) => [peftLoraKey(m, 'A'), peftLoraKey(m, 'B')]));
  for (const t of header.tensors) {
    const parsed = parsePeftLoraKey(t.name);
    const canon = parsed ? peftLoraKey(parsed.module, parsed.kind) : null;
    if (!canon || !wanted.has(canon)) {
      problem(t.name, `unexpected key ${t.name}: not a lora_A/lora_B weight of a layer that ${LORA_ADAPTER_CONFIG_FILE}'s target_modules selects on this model`);
      continue;
    }
    if (found.has(canon)) {
      problem(t.name, `key ${t.name} duplicates ${found.get(canon)!.name} (both are ${canon})`);
      continue;
    }
    found.set(canon, t);
  }
  for (const m of modules) {
    const layer = info.get(m)!;
    for (const kind of ['A', 'B'] as const) {
      const key = peftLoraKey(m, kind);
      const t = found.get(key);
      if (!t) {
        problem(key, `missing key ${key} (target_modules selects ${m})`);
        continue;
      }
      const want = kind === 'A' ? [settings.r, layer.inFeatures] : [layer.outFeatures, settings.r];
      const got = t.shape;
      if (got.length !== 2) {
        problem(t.name, `${t.name} has shape [${got.join(', ')}], expected [${want.join(', ')}]`);
      } else if ((kind === 'A' ? got[0] : got[1]) !== settings.r) {
        problem(t.name, `${t.name} has rank ${kind === 'A' ? got[0] : got[1]} (shape [${got.join(', ')}]) but ${LORA_ADAPTER_CONFIG_FILE} says r = ${settings.r}`);
      } else if (got[0] !== want[0] || got[1] !== want[1]) {
        problem(t.name, `${t.name} has shape [${got.join(', ')}] but the base model's ${m} (in ${layer.inFeatures}, out ${layer.outFeatures}) needs [${want.join(', ')}]: the adapter was trained for another model`);
      } else if (!['F32', 'BF16', 'F16'].includes(t.dtype)) {
        problem(t.name, `${t.name} has dtype ${t.dtype}; adapter weights must be F32, BF16 or F16`);
      }
    }
  }
  if (first !== null) throw new LoraError(wfile, first, problems);
  const cfg = await model.enableLora({
    r: settings.r,
    alpha: settings.alpha,
    dropout: settings.dropout,
    rsLora: settings.rsLora,
    targetModules: settings.targetModules,
    excludeModules: settings.excludeModules,
    seed: opts.seed ?? 0,
    strictTargets: false,
  });
  const data = readSafetensors(wfile, [...found.values()].map((t) => t.name));
  const params = model.loraParameters();
  for (const t of model.loraLayout()) {
    const src = data.get(found.get(t.name)!.name)!.data as Float32Array;
    params.set(src, t.offset);
  }
  return cfg;
}

/** Files copied from the base folder into a merged checkpoint when present. */
export const MERGE_COPIED_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.json',
  'chat_template.jinja',
  'preprocessor_config.json',
  'video_preprocessor_config.json',
] as const;

/**
 * Writes a full checkpoint whose weights are the base with the adapters merged (W + s B A for every adapted
 * layer): config.json (torch_dtype set to the written dtype), model.safetensors (F32 or BF16, Hub tensor names)
 * and copies of the tokenizer / processor / generation / chat-template files of the base folder. The result loads
 * with loadModel and, by its names and shapes, with Hugging Face transformers. Files are written atomically; the
 * base folder itself is refused as the destination.
 */
export async function mergeLoraInto(model: VlmModel, outDir: string, opts: { dtype?: 'F32' | 'BF16' } = {}): Promise<void> {
  requireLora(model, 'mergeLoraInto');
  const dtype = opts.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'BF16') throw new RangeError(`mergeLoraInto: dtype must be 'F32' or 'BF16', got ${JSON.stringify(dtype)}`);
  if (resolve(outDir) === resolve(model.dir)) {
    throw new LoraError(null, null, [`mergeLoraInto: the destination ${outDir} is the base model's folder`], 'Write the merged checkpoint to a new folder; the base weights stay untouched.');
  }
  const merged = await model.mergedParameters();
  mkdirSync(outDir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>();
  for (const e of model.layout()) tensors.set(e.name, { dtype, shape: e.shape, data: merged.subarray(e.offset, e.offset + e.numel) });
  writeSafetensors(join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  const config = JSON.parse(readFileSync(model.config.file, 'utf8')) as Record<string, unknown>;
  const torchDtype = dtype === 'F32' ? 'float32' : 'bfloat16';
  if ('dtype' in config) config.dtype = torchDtype;
  if ('torch_dtype' in config || !('dtype' in config)) config.torch_dtype = torchDtype;
  writeFileAtomic(join(outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  for (const f of MERGE_COPIED_FILES) {
    const src = join(model.dir, f);
    if (existsSync(src)) copyFileAtomic(src, join(outDir, f));
  }
}
