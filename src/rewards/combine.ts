/**
 * Weighted sums of several rewards and per-row method dispatch.
 *
 * Peers (peers.md §a "Reward API", §b): R1-V/VLM-R1/OpenV-R1 sum every reward with weight 1 (VLM-R1 has a
 * `reward_weights` field that is never used); TRL multiplies by `reward_weights`; Ocean-R1 adds
 * FORMAT_REWARD_FACTOR·format; EasyR1 uses 0.9·acc + 0.1·format. Per-row dispatch: VLM-R1 reads
 * `accu_reward_method` (per file or per sample), OpenV-R1/Ocean-R1 read `reward_func` ("acc" | "iou").
 *
 * Our rule: total = Σ wᵢ·rᵢ with each weight a finite number (default 1; negative weights turn a reward into a
 * penalty; all-zero weights are an error), optionally divided by Σ|wᵢ| (`normalizeWeights`). The per-row method
 * is the first non-empty string among the row columns `reward_method`, `accu_reward_method`, `reward_func` (or
 * the columns you name); an unknown method is an error naming the row value, the known methods and the closest
 * one — never a silent 0.
 */
import { RewardError, suggestion } from './errors.js';
import type { BatchedRewardFunction, RewardFunction, RewardSample } from './types.js';

/** Row columns consulted (in order) for the per-row reward method. */
export const DEFAULT_METHOD_COLUMNS: readonly string[] = ['reward_method', 'accu_reward_method', 'reward_func'];

/** The per-row method named by the sample's row, or undefined. */
export function rowMethod(sample: RewardSample, columns: readonly string[] = DEFAULT_METHOD_COLUMNS): string | undefined {
  const row = sample.row;
  if (!row || typeof row !== 'object') return undefined;
  for (const c of columns) {
    const v = row[c];
    if (typeof v === 'string' && v.trim()) return v.trim();
  }
  return undefined;
}

/** The error for a method name that is not in `known`. */
export function unknownMethodError(reward: string, method: string, known: readonly string[]): RewardError {
  return new RewardError(
    'ERR_REWARD_UNKNOWN_METHOD',
    `Reward '${reward}' got the unknown method '${method}'.${suggestion(method, known)} Known methods: ${known.join(', ')}.`,
    `Fix the method in your data (columns ${DEFAULT_METHOD_COLUMNS.join(', ')}) or in the reward's options.`,
  );
}

/** Looks a method up case-insensitively, with '-' and '_' treated alike. */
export function lookupMethod<T>(table: Readonly<Record<string, T>>, method: string): T | undefined {
  const key = method.trim().toLowerCase().replace(/-/g, '_');
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

export interface DispatchOptions {
  /** Name used in error messages. */
  name?: string;
  /** Row columns to read the method from (default DEFAULT_METHOD_COLUMNS). */
  columns?: readonly string[];
  /** Method used when the row names none. Without it, a row without a method is an error. */
  defaultMethod?: string;
}

/**
 * A reward that picks, per sample, one of `methods` by the row's method column (VLM-R1 `accu_reward_method`,
 * OpenV-R1 `reward_func`). Example: `dispatchByRow({ acc: rewardFunctions.accuracy, iou: rewardFunctions.iou },
 * { defaultMethod: 'acc' })`.
 */
export function dispatchByRow(methods: Record<string, RewardFunction>, opts: DispatchOptions = {}): RewardFunction {
  const name = opts.name ?? 'dispatch';
  const table: Record<string, RewardFunction> = {};
  for (const [k, fn] of Object.entries(methods)) {
    if (typeof fn !== 'function') {
      throw new RewardError(
        'ERR_REWARD_NOT_A_FUNCTION',
        `dispatchByRow('${name}'): method '${k}' is ${typeof fn}, not a function.`,
        'Map each method name to a reward function, e.g. { acc: rewardFunctions.accuracy }.',
      );
    }
    table[k.toLowerCase().replace(/-/g, '_')] = fn;
  }
  const known = Object.keys(methods);
  if (known.length === 0) {
    throw new RewardError('ERR_REWARD_BAD_SPEC', `dispatchByRow('${name}') got no methods.`, 'Pass at least one method.');
  }
  if (opts.defaultMethod !== undefined && lookupMethod(table, opts.defaultMethod) === undefined) {
    throw unknownMethodError(name, opts.defaultMethod, known);
  }
  const columns = opts.columns ?? DEFAULT_METHOD_COLUMNS;
  return (sample) => {
    const method = rowMethod(sample, columns) ?? opts.defaultMethod;
    if (method === undefined) {
      throw new RewardError(
        'ERR_REWARD_UNKNOWN_METHOD',
        `Reward '${name}' found no method in the row (columns ${columns.join(', ')}).`,
        `Add one of ${known.join(', ')} to each row, or set a default method.`,
      );
    }
    const fn = lookupMethod(table, method);
    if (!fn) throw unknownMethodError(name, method, known);
    return fn(sample);
  };
}

/** A finite weight, or a RewardError naming the reward and the value. */
export function checkWeight(reward: string, weight: unknown): number {
  if (typeof weight !== 'number' || !Number.isFinite(weight)) {
    throw new RewardError(
      'ERR_REWARD_BAD_WEIGHT',
      `Weight of reward '${reward}' must be a finite number, got ${typeof weight === 'number' ? String(weight) : JSON.stringify(weight)}.`,
      `Give a number such as 1 or 0.5 (e.g. --reward ${reward}=0.5).`,
    );
  }
  return weight;
}

/** Checks a list of weights: each finite, not all zero. */
export function checkWeights(names: readonly string[], weights: readonly unknown[]): number[] {
  if (names.length !== weights.length) {
    throw new RewardError(
      'ERR_REWARD_BAD_WEIGHT',
      `Got ${weights.length} weights for ${names.length} rewards (${names.join(', ')}).`,
      'Give exactly one weight per reward, in the same order.',
    );
  }
  const out = names.map((n, i) => checkWeight(n, weights[i]));
  if (out.length > 0 && out.every((w) => w === 0)) {
    throw new RewardError(
      'ERR_REWARD_BAD_WEIGHT',
      `All reward weights are 0 (${names.join(', ')}), so every completion would get reward 0.`,
      'Give at least one reward a non-zero weight.',
    );
  }
  return out;
}

/** Σ wᵢ·rᵢ, divided by Σ|wᵢ| when `normalize`. */
export function weightedSum(values: readonly number[], weights: readonly number[], normalize = false): number {
  let sum = 0;
  let norm = 0;
  for (let i = 0; i < values.length; i++) {
    const w = weights[i] ?? 0;
    sum += w * (values[i] ?? 0);
    norm += Math.abs(w);
  }
  return normalize && norm > 0 ? sum / norm : sum;
}

/** One reward in a combined setup. */
export interface RewardSpec {
  /** A built-in name (`accuracy`, `format`, `iou`, …) or the label of a custom reward. */
  name: string;
  /** Multiplier in the weighted sum (default 1). */
  weight?: number;
  /** Options passed to the reward as `sample.options`. */
  options?: Record<string, unknown>;
  /** A custom reward function (per sample, or batched when `batched` is true). */
  fn?: RewardFunction | BatchedRewardFunction;
  /** `fn` takes the whole batch and returns one number per sample. */
  batched?: boolean;
  /** A custom module to load: `path/to/reward.ts` or `path/to/reward.js:exportName`. */
  module?: string;
  /** Name used in metrics and logs (default: `name`, with `#2`, `#3` … for repeats). */
  label?: string;
}

/** Whether a CLI token names a module path rather than a built-in reward. */
export function looksLikeModulePath(s: string): boolean {
  return /[\\/]/.test(s) || /\.(?:[cm]?js|[cm]?ts)(?::[\w$]+)?$/.test(s);
}

/**
 * Parses a CLI reward list: `accuracy=0.9,format=0.1,./my_reward.ts:score=0.5`. Each item is a built-in name
 * or a module path (optionally `:export`), with an optional `=weight`. Throws ERR_REWARD_BAD_WEIGHT /
 * ERR_REWARD_BAD_SPEC naming the item.
 */
export function parseRewardArg(arg: string): RewardSpec[] {
  const items = arg
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (items.length === 0) {
    throw new RewardError(
      'ERR_REWARD_BAD_SPEC',
      `The reward list '${arg}' is empty.`,
      'Name at least one reward, e.g. --reward accuracy=0.9,format=0.1.',
    );
  }
  return items.map((item) => {
    const eq = item.lastIndexOf('=');
    const target = (eq >= 0 ? item.slice(0, eq) : item).trim();
    if (!target) {
      throw new RewardError('ERR_REWARD_BAD_SPEC', `Reward item '${item}' has no name.`, 'Write name=weight, e.g. format=0.1.');
    }
    const spec: RewardSpec = looksLikeModulePath(target) ? { name: target, module: target } : { name: target };
    if (eq >= 0) {
      const text = item.slice(eq + 1).trim();
      const w = text === '' ? NaN : Number(text);
      spec.weight = checkWeight(target, Number.isFinite(w) ? w : text);
    }
    return spec;
  });
}
