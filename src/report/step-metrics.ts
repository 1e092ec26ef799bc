/**
 * StepMetrics: the numbers the trainer logs once per optimizer step (one line of RUN_DIR/metrics.jsonl), and the
 * helpers that compute them from a step's rollouts.
 *
 * Field set: the union of what TRL GRPOTrainer and verl log (peers.md (a) "Metrics logged", (f)): per-reward
 * mean/std, frac_reward_zero_std, completion length mean/min/max with the clipped (truncated) share, KL, entropy,
 * clip fractions low/high/dual, grad norm, learning rate, timing and throughput, plus the reflection counters
 * Ocean-R1 plotted by hand. Units are in each field's comment; every count of "tokens" is completion tokens unless
 * it says otherwise.
 *
 * Conventions:
 * - std is the population standard deviation (divide by n): it describes the batch, it does not estimate anything.
 *   (TRL's logged reward_std is the mean of per-group unbiased stds; ours is over the whole step.)
 * - `null` means "not measured in this run" (no reference model → kl null; no accuracy reward → accuracy null).
 * - Non-finite numbers (a diverged loss, an infinite grad norm) are kept: metrics.jsonl stores them as the strings
 *   "NaN", "Infinity", "-Infinity" (JSON has no literal for them) and MetricsLog.read turns them back into numbers.
 */
import { z } from 'zod';

import type { ReflectionStats } from './reflection.js';

/** mean / std / min / max of a set of values (std: population, divide by n). */
export interface Summary {
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** Completion length in tokens over a step's completions. */
export interface LengthStats {
  /** Mean completion length, tokens. */
  mean: number;
  /** Shortest completion, tokens. */
  min: number;
  /** Longest completion, tokens. */
  max: number;
}

/** Share of response tokens (over all completions of the step) where each PPO clip was active, each in [0, 1]. */
export interface ClipFractions {
  /** mean[A < 0 ∧ ρ < 1 − ε_low]: the lower clip held the ratio. */
  low: number;
  /** mean[A > 0 ∧ ρ > 1 + ε_high]: the upper clip held the ratio. */
  high: number;
  /** mean[A < 0 ∧ loss capped at −A·c]: the dual clip was active (0 without dual-clip). */
  dual: number;
}

/** Wall-clock seconds spent in each phase of the step. */
export interface StepSeconds {
  /** Sampling the completions (prefill + decode), seconds. */
  generation: number;
  /** Running the reward functions, seconds. */
  scoring: number;
  /** Old/reference log-probs, forward + backward and the optimizer step(s), seconds. */
  update: number;
  /** The whole step end to end (≥ the sum of the three above; includes data loading and logging), seconds. */
  total: number;
}

/** Token counts of the step (all completions of all prompts, summed over ranks). */
export interface StepTokens {
  /** Prompt tokens including image tokens, counted once per completion (what the update processes). */
  prompt: number;
  /** Generated completion tokens. */
  completion: number;
}

/** One optimizer step's metrics: one line of RUN_DIR/metrics.jsonl. */
export interface StepMetrics {
  /** The optimizer step these numbers belong to, counted from 1 (the first finished step is 1). */
  step: number;
  /** When the step finished: milliseconds since the Unix epoch (Date.now()). */
  time: number;
  /** Passes over the training set so far, fractional (0.5 = half of the first epoch done). */
  epoch: number;
  /** The weighted total reward of every completion in the step: mean, std, min, max. */
  reward: Summary;
  /** Each reward function's own value (before weighting), keyed by its label (e.g. "accuracy", "format"). */
  rewards: Record<string, Summary>;
  /**
   * Share of completions judged correct, in [0, 1]: the mean of the accuracy reward (continuous accuracy rewards
   * such as IoU give their mean). null when the run has no accuracy reward.
   */
  accuracy: number | null;
  /**
   * Share of prompt groups, in [0, 1], whose completions all got the same total reward (std ≤ 1e-8): their
   * advantages are all zero, so they give no learning signal (TRL frac_reward_zero_std).
   */
  fracZeroStdGroups: number;
  /** Completion length in tokens: mean, min, max. */
  completionLength: LengthStats;
  /** Share of completions, in [0, 1], cut at the maximum completion length (finish reason "length"). */
  truncatedFrac: number;
  /** Mean per-token KL(π_θ ‖ π_ref) estimate over response tokens, in nats (the estimator the loss uses, k3 by default); null without a reference model. */
  kl: number | null;
  /** Mean per-token entropy of π_θ over response tokens, in nats; null when not computed. */
  entropy: number | null;
  /** Share of response tokens where each PPO clip was active. */
  clipFrac: ClipFractions;
  /** The policy loss (mean over the step's micro-batches, after aggregation); null when not recorded. */
  loss: number | null;
  /** Global L2 norm of the gradient before clipping; null when not measured. */
  gradNorm: number | null;
  /** Learning rate used for this step's update (after warmup/schedule). */
  lr: number;
  /** Prompt and completion tokens of the step. */
  tokens: StepTokens;
  /** Throughput: (tokens.prompt + tokens.completion) / seconds.total, tokens per second (all ranks). */
  tokensPerSecond: number;
  /** Wall-clock seconds per phase. */
  seconds: StepSeconds;
  /** Reflection-phrase counters over the step's completions (see reflection.ts for the phrases). */
  reflection: ReflectionStats;
  /** Any other scalar metrics (e.g. importance-sampling ratio stats), keyed by a name of your choice. */
  extra?: Record<string, number | null>;
}

// ---- validation (zod; DESIGN.md convention 3)

/** Any JS number, NaN and ±Infinity included (they are real outcomes of a diverging run). */
const num = z.custom<number>((v) => typeof v === 'number', { message: 'expected a number' });
const count = z.custom<number>((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0, {
  message: 'expected a non-negative integer',
});
const nullableNum = z.union([num, z.null()]);
const summary = z.strictObject({ mean: num, std: num, min: num, max: num });

/** The zod schema of {@link StepMetrics} (unknown keys are rejected so typos surface at the first step). */
export const stepMetricsSchema = z.strictObject({
  step: count,
  time: num,
  epoch: num,
  reward: summary,
  rewards: z.record(z.string(), summary),
  accuracy: nullableNum,
  fracZeroStdGroups: num,
  completionLength: z.strictObject({ mean: num, min: num, max: num }),
  truncatedFrac: num,
  kl: nullableNum,
  entropy: nullableNum,
  clipFrac: z.strictObject({ low: num, high: num, dual: num }),
  loss: nullableNum,
  gradNorm: nullableNum,
  lr: num,
  tokens: z.strictObject({ prompt: count, completion: count }),
  tokensPerSecond: num,
  seconds: z.strictObject({ generation: num, scoring: num, update: num, total: num }),
  reflection: z.strictObject({ total: count, perCompletion: num, fracWithAny: num, counts: z.record(z.string(), count) }),
  extra: z.record(z.string(), nullableNum).optional(),
});

/**
 * Check that `value` is a StepMetrics; throws a TypeError naming the first bad field (e.g. "seconds.update:
 * expected a number") and the unknown keys, if any.
 */
export function validateStepMetrics(value: unknown, what = 'StepMetrics'): StepMetrics {
  const r = stepMetricsSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    const more = r.error.issues.length > 3 ? ` (+${r.error.issues.length - 3} more)` : '';
    throw new TypeError(`${what} is invalid: ${issues.join('; ')}${more}`);
  }
  return r.data as StepMetrics;
}

// ---- summary helpers

function checkValues(values: ArrayLike<number>, what: string): void {
  if (values === null || typeof values !== 'object' || typeof values.length !== 'number') {
    throw new TypeError(`${what} must be an array of numbers, got ${values === null ? 'null' : typeof values}`);
  }
  if (values.length === 0) throw new RangeError(`${what} is empty: there is nothing to summarise`);
}

/**
 * mean, std (population), min and max of `values` (two-pass for a stable std). NaN in the input gives NaN.
 * @throws RangeError when `values` is empty
 */
export function summarize(values: ArrayLike<number>, what = 'summarize: values'): Summary {
  checkValues(values, what);
  const n = values.length;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    if (typeof v !== 'number') throw new TypeError(`${what}[${i}] must be a number, got ${typeof v}`);
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) - mean;
    ss += d * d;
  }
  if (Number.isNaN(mean)) return { mean: NaN, std: NaN, min: NaN, max: NaN };
  return { mean, std: Math.sqrt(ss / n), min, max };
}

/** Options of {@link fracZeroStdGroups}. */
export interface ZeroStdOptions {
  /** Completions per prompt, when `rewards` is flat (groups are consecutive blocks, the trainer's layout). */
  groupSize?: number;
  /** A group counts as zero-std when its population std is ≤ this (default 1e-8, like torch.isclose(std, 0)). */
  tolerance?: number;
}

/**
 * Share of groups, in [0, 1], whose rewards have (population) std ≤ tolerance: all equal, so all advantages are 0.
 * @param rewards either one array per group, or a flat array of groups laid out consecutively with `groupSize`
 * @example fracZeroStdGroups([[1, 1], [0, 1]]) // 0.5
 * @example fracZeroStdGroups([1, 1, 0, 1], { groupSize: 2 }) // 0.5
 */
export function fracZeroStdGroups(rewards: ArrayLike<number> | ReadonlyArray<ArrayLike<number>>, options: ZeroStdOptions = {}): number {
  const tol = options.tolerance ?? 1e-8;
  if (typeof tol !== 'number' || !(tol >= 0)) throw new RangeError(`fracZeroStdGroups: tolerance must be >= 0, got ${tol}`);
  checkValues(rewards as ArrayLike<unknown> as ArrayLike<number>, 'fracZeroStdGroups: rewards');
  let groups: ArrayLike<number>[];
  if (typeof rewards[0] === 'number') {
    const flat = rewards as ArrayLike<number>;
    const g = options.groupSize;
    if (g === undefined) throw new TypeError('fracZeroStdGroups: groupSize is required when rewards is a flat array');
    if (!Number.isInteger(g) || g < 1) throw new RangeError(`fracZeroStdGroups: groupSize must be a positive integer, got ${g}`);
    if (flat.length % g !== 0) {
      throw new RangeError(`fracZeroStdGroups: ${flat.length} rewards do not split into groups of ${g}`);
    }
    groups = [];
    const arr = Array.from(flat);
    for (let i = 0; i < arr.length; i += g) groups.push(arr.slice(i, i + g));
  } else {
    groups = Array.from(rewards as ReadonlyArray<ArrayLike<number>>);
  }
  let zero = 0;
  for (const [i, grp] of groups.entries()) {
    const s = summarize(grp, `fracZeroStdGroups: group ${i}`);
    if (s.std <= tol) zero++;
  }
  return zero / groups.length;
}

/**
 * Completion-length statistics plus the truncated share.
 * @param lengths completion lengths in tokens
 * @param truncated per completion whether it hit the length limit (same length as `lengths`), or the count of
 *   truncated completions
 */
export function lengthStats(lengths: ArrayLike<number>, truncated: ArrayLike<boolean> | number): LengthStats & { truncatedFrac: number } {
  const s = summarize(lengths, 'lengthStats: lengths');
  let nTrunc: number;
  if (typeof truncated === 'number') {
    if (!Number.isInteger(truncated) || truncated < 0 || truncated > lengths.length) {
      throw new RangeError(`lengthStats: truncated count must be an integer in [0, ${lengths.length}], got ${truncated}`);
    }
    nTrunc = truncated;
  } else {
    if (truncated.length !== lengths.length) {
      throw new RangeError(`lengthStats: truncated has ${truncated.length} entries but lengths has ${lengths.length}`);
    }
    nTrunc = 0;
    for (let i = 0; i < truncated.length; i++) if (truncated[i]) nTrunc++;
  }
  return { mean: s.mean, min: s.min, max: s.max, truncatedFrac: nTrunc / lengths.length };
}

/** Input of {@link summarizeRewards}: a step's rewards, laid out as consecutive groups. */
export interface StepRewards {
  /** Weighted total reward per completion. */
  total: ArrayLike<number>;
  /** Each reward function's value per completion, by label (same length as `total`). */
  perReward: Record<string, ArrayLike<number>>;
  /** Completions per prompt. */
  groupSize: number;
  /** Zero-std tolerance (default 1e-8). */
  tolerance?: number;
}

/**
 * The reward part of StepMetrics from a step's scores: the total's summary, each reward's summary and the
 * zero-std group share (computed on the total, which is what the advantages use).
 */
export function summarizeRewards(input: StepRewards): Pick<StepMetrics, 'reward' | 'rewards' | 'fracZeroStdGroups'> {
  const reward = summarize(input.total, 'summarizeRewards: total');
  const rewards = new Map<string, Summary>();
  for (const [name, values] of Object.entries(input.perReward)) {
    if (values.length !== input.total.length) {
      throw new RangeError(`summarizeRewards: perReward.${name} has ${values.length} values but total has ${input.total.length}`);
    }
    rewards.set(name, summarize(values, `summarizeRewards: perReward.${name}`));
  }
  const opts: ZeroStdOptions = { groupSize: input.groupSize };
  if (input.tolerance !== undefined) opts.tolerance = input.tolerance;
  return { reward, rewards: Object.fromEntries(rewards), fracZeroStdGroups: fracZeroStdGroups(input.total, opts) };
}

/**
 * StepMetrics as flat "a/b/c" keys (e.g. "reward/mean", "rewards/accuracy/std", "seconds/generation",
 * "reflection/counts/wait"), for CSV export, tables and logger backends that want scalars.
 */
export function flattenStepMetrics(m: StepMetrics): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const walk = (prefix: string, v: unknown): void => {
    if (v === null || typeof v === 'number') {
      out[prefix] = v;
    } else if (typeof v === 'object') {
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) walk(prefix ? `${prefix}/${k}` : k, child);
    }
  };
  walk('', m);
  return out;
}
