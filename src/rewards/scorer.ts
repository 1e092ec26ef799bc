/**
 * RewardScorer: runs a weighted set of rewards (built-in and custom) over a batch of samples, isolating errors.
 *
 * Peers: TRL `_calculate_rewards` (every function over the batch, async ones gathered, weighted by
 * `reward_weights`, per-function metrics); verl/EasyR1 reward managers (an exception kills the step). peers.md
 * §e.13 asks for per-reward failure counts.
 *
 * Our rules:
 * - Misuse is caught when the scorer is built, before any rollout: unknown names (with a did-you-mean), bad
 *   weights, bad options (each built-in's zod schema), module specs given to the synchronous builder.
 * - While scoring, ANY reward call that throws, rejects, exceeds `timeoutMs` (default 60 s), or returns a
 *   non-finite value (or, batched, an array of the wrong length) scores 0 for the affected samples. A per-sample
 *   reward that recovers by itself (returns a fallback value) reports through `sample.reportError`. Each failure
 *   is counted per reward (`errors` in the result and cumulatively in `errorStats()`), and reported to `onError`;
 *   the default handler logs the first occurrence of each distinct message per reward with console.warn.
 * - total[i] = Σ wₖ·rₖ[i] (combine.ts), optionally normalised by Σ|wₖ|.
 * - Per-sample async rewards run with at most `concurrency` (default 16) calls in flight per reward; rewards run
 *   concurrently with each other.
 */
import { builtinRewardNames, builtinRewards, type BuiltinReward } from './builtins.js';
import { checkWeights, looksLikeModulePath, type RewardSpec, weightedSum } from './combine.js';
import { loadCustomReward } from './custom.js';
import { RewardError, suggestion } from './errors.js';
import { readOptions } from './options.js';
import type { BatchedRewardFunction, RewardFunction, RewardSample } from './types.js';

/** One failed reward call. */
export interface RewardErrorEvent {
  /** The reward's label. */
  reward: string;
  /** Index of the sample in the batch (-1 when a whole batched call failed). */
  sampleIndex: number;
  message: string;
  /** Failures of this reward so far (cumulative, this one included). */
  count: number;
  error: unknown;
}

export interface RewardScorerOptions {
  /** Extra named rewards usable by name in specs (they may shadow nothing: built-in names are reserved). */
  registry?: Record<string, RewardFunction>;
  /** Called on every failed call. Default: console.warn on the first occurrence of each distinct message. */
  onError?: (event: RewardErrorEvent) => void;
  /** Time limit for one async call (ms, default 60000). */
  timeoutMs?: number;
  /** Maximum per-sample calls in flight per reward (default 16). */
  concurrency?: number;
  /** Divide the total by Σ|weights| (default false). */
  normalizeWeights?: boolean;
}

export interface RewardScores {
  /** Weighted total per sample. */
  total: number[];
  /** Each reward's value per sample, by label. */
  perReward: Record<string, number[]>;
  /** Failed calls in this batch, by label (every label present, 0 when none). */
  errors: Record<string, number>;
}

interface Entry {
  label: string;
  weight: number;
  options: Record<string, unknown> | undefined;
  fn: RewardFunction | BatchedRewardFunction;
  batched: boolean;
  builtin: boolean;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.message;
  return String(err);
}

function resolveBuiltin(name: string, registry: Record<string, RewardFunction>): { fn: RewardFunction; builtin?: BuiltinReward } {
  const b = (builtinRewards as Record<string, BuiltinReward>)[name];
  if (b) return { fn: b.fn, builtin: b };
  const extra = registry[name];
  if (typeof extra === 'function') return { fn: extra };
  const known = [...builtinRewardNames, ...Object.keys(registry)];
  throw new RewardError(
    'ERR_REWARD_UNKNOWN',
    `Unknown reward '${name}'.${suggestion(name, known)} Known rewards: ${known.join(', ')}.`,
    'Use a built-in name, or pass a custom module path (e.g. ./my_reward.ts or ./my_reward.js:score).',
  );
}

/** Weighted, error-isolated scoring of a batch with several rewards. Build with createRewardScorer/loadRewardScorer. */
export class RewardScorer {
  /** Reward labels, in spec order (keys of perReward). */
  readonly names: readonly string[];
  /** Weights, in spec order. */
  readonly weights: readonly number[];
  private readonly entries: Entry[];
  private readonly opts: Required<Omit<RewardScorerOptions, 'registry' | 'onError'>> & Pick<RewardScorerOptions, 'onError'>;
  private readonly counts = new Map<string, number>();
  private readonly messages = new Map<string, Set<string>>();

  /** @internal use createRewardScorer / loadRewardScorer */
  constructor(entries: Entry[], options: RewardScorerOptions) {
    this.entries = entries;
    this.names = entries.map((e) => e.label);
    this.weights = entries.map((e) => e.weight);
    const timeoutMs = options.timeoutMs ?? 60_000;
    const concurrency = options.concurrency ?? 16;
    if (!(timeoutMs > 0) || !(Number.isInteger(concurrency) && concurrency >= 1)) {
      throw new RewardError(
        'ERR_REWARD_BAD_SPEC',
        `timeoutMs must be > 0 and concurrency an integer ≥ 1, got timeoutMs=${timeoutMs}, concurrency=${concurrency}.`,
        'Use e.g. { timeoutMs: 60000, concurrency: 16 }.',
      );
    }
    this.opts = { timeoutMs, concurrency, normalizeWeights: options.normalizeWeights ?? false, onError: options.onError };
    for (const e of entries) this.counts.set(e.label, 0);
  }

  /** Cumulative failures per reward with up to 10 distinct messages each. */
  errorStats(): Record<string, { count: number; messages: string[] }> {
    const out: Record<string, { count: number; messages: string[] }> = {};
    for (const label of this.names) out[label] = { count: this.counts.get(label) ?? 0, messages: [...(this.messages.get(label) ?? [])] };
    return out;
  }

  private fail(label: string, sampleIndex: number, err: unknown, batchErrors: Record<string, number>, n = 1): void {
    const count = (this.counts.get(label) ?? 0) + n;
    this.counts.set(label, count);
    batchErrors[label] = (batchErrors[label] ?? 0) + n;
    const message = messageOf(err);
    let seen = this.messages.get(label);
    if (!seen) {
      seen = new Set();
      this.messages.set(label, seen);
    }
    const first = !seen.has(message);
    if (first && seen.size < 10) seen.add(message);
    const event: RewardErrorEvent = { reward: label, sampleIndex, message, count, error: err };
    if (this.opts.onError) this.opts.onError(event);
    else if (first) {
      console.warn(
        `[vlm-grpo] reward '${label}' failed${sampleIndex >= 0 ? ` on sample ${sampleIndex}` : ' on a batch'} (scored 0; ${count} failure(s) so far): ${message}`,
      );
    }
  }

  private withTimeout<T>(value: T | Promise<T>, what: string): Promise<T> {
    if (!value || typeof (value as { then?: unknown }).then !== 'function') return Promise.resolve(value);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new RewardError(
            'ERR_REWARD_TIMEOUT',
            `${what} did not settle within ${this.opts.timeoutMs} ms.`,
            'Make the reward faster or raise timeoutMs.',
          ),
        );
      }, this.opts.timeoutMs);
      timer.unref?.();
    });
    return Promise.race([value as Promise<T>, limit]).finally(() => clearTimeout(timer));
  }

  private checkValue(label: string, v: unknown, builtin: boolean): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new RewardError(
        'ERR_REWARD_BAD_RESULT',
        `Reward '${label}' returned ${typeof v === 'number' ? String(v) : `a ${v === null ? 'null' : typeof v}`} instead of a finite number.`,
        'Return a finite number for every sample (0 when it does not apply).',
      );
    }
    return builtin ? Math.min(1, Math.max(0, v)) : v;
  }

  private async runPerSample(e: Entry, samples: RewardSample[], out: number[], errors: Record<string, number>): Promise<void> {
    const fn = e.fn as RewardFunction;
    let next = 0;
    const worker = async () => {
      while (next < samples.length) {
        const i = next++;
        const s = samples[i] as RewardSample;
        try {
          const input: RewardSample = { ...s, reportError: (err: unknown) => this.fail(e.label, i, err, errors) };
          if (e.options !== undefined) input.options = e.options;
          const v = await this.withTimeout(fn(input), `Reward '${e.label}' on sample ${i}`);
          out[i] = this.checkValue(e.label, v, e.builtin);
        } catch (err) {
          out[i] = 0;
          this.fail(e.label, i, err, errors);
        }
      }
    };
    const workers = Math.min(this.opts.concurrency, samples.length);
    await Promise.all(Array.from({ length: workers }, worker));
  }

  private async runBatched(e: Entry, samples: RewardSample[], out: number[], errors: Record<string, number>): Promise<void> {
    const fn = e.fn as BatchedRewardFunction;
    let values: unknown;
    try {
      const input = e.options === undefined ? samples : samples.map((s) => ({ ...s, options: e.options }));
      values = await this.withTimeout(fn(input), `Batched reward '${e.label}'`);
      if (!Array.isArray(values) || values.length !== samples.length) {
        throw new RewardError(
          'ERR_REWARD_BAD_RESULT',
          `Batched reward '${e.label}' returned ${Array.isArray(values) ? `${values.length} values` : `a ${typeof values}`} for ${samples.length} samples.`,
          'Return an array with one number per sample, in order.',
        );
      }
    } catch (err) {
      out.fill(0);
      this.fail(e.label, -1, err, errors, samples.length);
      return;
    }
    const arr = values as unknown[];
    for (let i = 0; i < samples.length; i++) {
      try {
        out[i] = this.checkValue(e.label, arr[i], false);
      } catch (err) {
        out[i] = 0;
        this.fail(e.label, i, err, errors);
      }
    }
  }

  /** Scores every sample with every reward; never rejects because of a reward. */
  async score(samples: RewardSample[]): Promise<RewardScores> {
    if (!Array.isArray(samples)) {
      throw new TypeError(`score(samples): samples must be an array of RewardSample, got ${typeof samples}.`);
    }
    const perReward: Record<string, number[]> = {};
    const errors: Record<string, number> = {};
    await Promise.all(
      this.entries.map((e) => {
        const out = new Array<number>(samples.length).fill(0);
        perReward[e.label] = out;
        errors[e.label] = 0;
        if (samples.length === 0) return Promise.resolve();
        return e.batched ? this.runBatched(e, samples, out, errors) : this.runPerSample(e, samples, out, errors);
      }),
    );
    const columns = this.entries.map((e) => perReward[e.label] as number[]);
    const total = samples.map((_, i) =>
      weightedSum(
        columns.map((c) => c[i] ?? 0),
        this.weights,
        this.opts.normalizeWeights,
      ),
    );
    return { total, perReward, errors };
  }
}

type SpecInput = string | RewardSpec;

function toEntries(specs: readonly SpecInput[], options: RewardScorerOptions, loaded: Map<string, Awaited<ReturnType<typeof loadCustomReward>>>): Entry[] {
  if (!Array.isArray(specs) || specs.length === 0) {
    throw new RewardError(
      'ERR_REWARD_BAD_SPEC',
      'No rewards given.',
      "Name at least one reward, e.g. ['accuracy', { name: 'format', weight: 0.1 }].",
    );
  }
  const registry = options.registry ?? {};
  for (const k of Object.keys(registry)) {
    if (k in builtinRewards) {
      throw new RewardError('ERR_REWARD_BAD_SPEC', `Custom registry entry '${k}' shadows a built-in reward.`, 'Give it another name.');
    }
  }
  const used = new Map<string, number>();
  const entries: Entry[] = [];
  const names: string[] = [];
  const weights: unknown[] = [];
  for (const raw of specs) {
    const spec: RewardSpec = typeof raw === 'string' ? (looksLikeModulePath(raw) ? { name: raw, module: raw } : { name: raw }) : raw;
    if (!spec || typeof spec !== 'object' || typeof spec.name !== 'string' || spec.name.trim() === '') {
      throw new RewardError(
        'ERR_REWARD_BAD_SPEC',
        `Bad reward spec ${JSON.stringify(raw)}: it needs a non-empty 'name'.`,
        "Write a name ('accuracy') or an object { name, weight?, options?, fn?, module? }.",
      );
    }
    let fn: RewardFunction | BatchedRewardFunction;
    let batched = spec.batched === true;
    let builtin = false;
    let label = spec.label ?? spec.name;
    if (spec.fn !== undefined) {
      if (typeof spec.fn !== 'function') {
        throw new RewardError(
          'ERR_REWARD_NOT_A_FUNCTION',
          `Reward '${spec.name}': fn is ${typeof spec.fn}, not a function.`,
          'Pass a function (sample) => number, or (samples) => number[] with batched: true.',
        );
      }
      fn = spec.fn;
    } else if (spec.module !== undefined) {
      const mod = loaded.get(spec.module);
      if (!mod) {
        throw new RewardError(
          'ERR_REWARD_BAD_SPEC',
          `Reward '${spec.name}' is a module (${spec.module}); modules load asynchronously.`,
          'Use `await loadRewardScorer(specs)` instead of createRewardScorer, or load it with loadCustomReward and pass { fn }.',
        );
      }
      fn = mod.fn;
      batched = batched || mod.batched;
      if (spec.label === undefined) label = mod.name;
    } else {
      const r = resolveBuiltin(spec.name, registry);
      fn = r.fn;
      if (r.builtin) {
        builtin = true;
        readOptions(spec.name, r.builtin.schema, spec.options);
      }
    }
    const n = (used.get(label) ?? 0) + 1;
    used.set(label, n);
    if (n > 1) label = `${label}#${n}`;
    names.push(label);
    weights.push(spec.weight === undefined ? 1 : spec.weight);
    entries.push({ label, weight: 1, options: spec.options, fn, batched, builtin });
  }
  const checked = checkWeights(names, weights);
  entries.forEach((e, i) => {
    e.weight = checked[i] ?? 1;
  });
  return entries;
}

/**
 * Builds a scorer from built-in names, `{ name, weight, options }` objects and `{ name, fn, batched }` custom
 * functions. Throws RewardError for unknown names, bad weights/options, or module specs (use loadRewardScorer).
 */
export function createRewardScorer(specs: readonly SpecInput[], options: RewardScorerOptions = {}): RewardScorer {
  return new RewardScorer(toEntries(specs, options, new Map()), options);
}

/**
 * Like createRewardScorer, but also loads custom modules (specs given as paths, `path:export`, or
 * `{ module }`), resolved against `cwd`.
 */
export async function loadRewardScorer(
  specs: readonly SpecInput[],
  options: RewardScorerOptions & { cwd?: string } = {},
): Promise<RewardScorer> {
  const loaded = new Map<string, Awaited<ReturnType<typeof loadCustomReward>>>();
  for (const raw of Array.isArray(specs) ? specs : []) {
    const module = typeof raw === 'string' ? (looksLikeModulePath(raw) ? raw : undefined) : raw?.module;
    if (module !== undefined && !loaded.has(module)) loaded.set(module, await loadCustomReward(module, { cwd: options.cwd }));
  }
  return new RewardScorer(toEntries(specs, options, loaded), options);
}
