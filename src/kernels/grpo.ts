/**
 * The fused GRPO policy loss (verl's vanilla PPO-clip loss with dual-clip, optional GSPO sequence ratio, a KL
 * penalty to a reference policy and an entropy bonus) with its gradient w.r.t. the current log-probs.
 * The exact math, gradient conventions and statistic definitions are in native/cpu/grpo_loss.h; in short:
 *
 *   Δ = lp − lo, ρ = exp(clamp(Δ, ±20))  (GSPO: ρ = exp(min(sg(Σ m·Δ / max(Σ m, 1)) + lp − sg(lp), 10)))
 *   L = max(−A·ρ, −A·clip(ρ, 1−clipLow, 1+clipHigh)); for A < 0 with dualClip c: L = min(L, −A·c)
 *   ℓ = L + klCoef·KL(lp, lr) − entropyCoef·H, aggregated over masked tokens with `lossAgg`.
 */
import { native } from '../native/binding.js';

/** KL estimators (peers.md §c.1): k1 = d, k2 = ½d², k3 = clamp(eˣ − x − 1, ±10) with x = clamp(lr − lp, ±20), abs = |d|. */
export type KlEstimator = 'k1' | 'k2' | 'k3' | 'abs';
/** Loss aggregation modes (verl's `loss_agg_mode`). */
export type LossAgg = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-sum-norm';
/** 'token': PPO per-token ratio; 'sequence': GSPO's length-normalised sequence ratio. */
export type RatioLevel = 'token' | 'sequence';

/** The accepted `klEstimator` values. */
export const KL_ESTIMATORS: readonly KlEstimator[] = ['k1', 'k2', 'k3', 'abs'];
/** The accepted `lossAgg` values. */
export const LOSS_AGG_MODES: readonly LossAgg[] = [
  'token-mean',
  'seq-mean-token-mean',
  'seq-mean-token-sum',
  'seq-mean-token-sum-norm',
];
/** The accepted `ratioLevel` values. */
export const RATIO_LEVELS: readonly RatioLevel[] = ['token', 'sequence'];

/** 'ppo': clipped surrogate (verl vanilla); 'cispo': −sg(clip(ρ, 1−clipLow, 1+clipHigh))·A·logprob (verl cispo). */
export type PolicyLoss = 'ppo' | 'cispo';
export const POLICY_LOSSES: readonly PolicyLoss[] = ['ppo', 'cispo'];

export interface GrpoLossInput {
  /** log π_θ of each sampled token, [numSequences * seqLen] row-major. */
  logprobs: Float32Array;
  /** log π_old (the rollout policy, recomputed by the trainer), same layout. */
  oldLogprobs: Float32Array;
  /** log π_ref, same layout. Required when klCoef > 0; when given, `stats.kl` is reported even if klCoef = 0. */
  refLogprobs?: Float32Array;
  /** One advantage per sequence, [numSequences]. */
  advantages: Float32Array;
  /**
   * Response mask, same layout: a Uint8Array of 0/1, or a Float32Array of finite weights >= 0 (multiplied in).
   * A sequence whose mask sums to 0 does not count as a valid sequence.
   */
  mask: Uint8Array | Float32Array;
  numSequences: number;
  seqLen: number;
  /** ε_low >= 0: the ratio is clipped below at 1 − clipLow (e.g. 0.2). */
  clipLow: number;
  /** ε_high >= 0: clipped above at 1 + clipHigh (default clipLow; DAPO uses 0.28). */
  clipHigh?: number;
  /** Dual-clip constant c > 1 (verl uses 3): for A < 0 the loss is capped at −A·c. Omit for no dual-clip. */
  dualClip?: number;
  /** KL penalty coefficient β >= 0 (default 0). */
  klCoef?: number;
  /** Default 'k3' (verl's low_var_kl). */
  klEstimator?: KlEstimator;
  /** Default 'token-mean'. */
  lossAgg?: LossAgg;
  /**
   * The constant of 'seq-mean-token-sum-norm' (default seqLen): loss = Σ m·ℓ / lossScale, as in peers.md
   * (no division by the number of sequences; pass numSequences·maxLen for TRL's dr_grpo normalisation).
   */
  lossScale?: number;
  /** Per-token entropy H, same layout. Needed when entropyCoef != 0; then `gradEntropy` is returned. */
  entropy?: Float32Array;
  /** Entropy bonus coefficient: loss −= entropyCoef · agg(H) (default 0). */
  entropyCoef?: number;
  /**
   * Default 'token'. 'sequence' is GSPO. The chosen `lossAgg` is used for both levels (verl always aggregates
   * gspo with 'seq-mean-token-mean': set that mode for parity). dualClip also applies to GSPO when given.
   */
  ratioLevel?: RatioLevel;
  /** Default 'ppo'. 'cispo' weights each token's log-prob by the stop-gradient clipped ratio (dualClip ignored). */
  policyLoss?: PolicyLoss;
  /**
   * token-mean only: divide by this global token count instead of the local mask sum (data parallel and
   * gradient accumulation: pass the whole mini-batch's token count). Ignored by the other modes.
   */
  tokenCountNormalizer?: number;
  /** seq-mean-token-mean and seq-mean-token-sum only: divide by this global valid-sequence count. */
  sequenceCountNormalizer?: number;
}

/** Statistics over the masked tokens of this call (definitions in native/cpu/grpo_loss.h). */
export interface GrpoLossStats {
  /** mean[A < 0 ∧ ρ < 1 − clipLow]: tokens whose lower clip is active. */
  clipFracLow: number;
  /** mean[A > 0 ∧ ρ > 1 + clipHigh]: tokens whose upper clip is active. */
  clipFracHigh: number;
  /** mean[A < 0 ∧ max(L1, L2) > −A·c]: tokens capped by the dual clip (0 without dualClip). */
  clipFracDual: number;
  /** Mean KL estimate (before klCoef); 0 without refLogprobs. */
  kl: number;
  /** Mean ratio used by the surrogate (token ratio, or the GSPO sequence ratio). */
  ratioMean: number;
  /** mean(lo − lp), verl's ppo_kl. */
  ppoKl: number;
  /** Aggregated policy term, KL term (before klCoef) and entropy (before entropyCoef). */
  pgLoss: number;
  klLoss: number;
  entropyLoss: number;
  /** Σ mask and the number of sequences with a non-zero mask (local). */
  numTokens: number;
  numValidSequences: number;
}

export interface GrpoLossResult {
  /** pgLoss + klCoef·klLoss − entropyCoef·entropyLoss. */
  loss: number;
  /** d loss / d logprobs, [numSequences * seqLen] (0 where the mask is 0). */
  grad: Float32Array;
  /** d loss / d entropy (present when `entropy` was given). */
  gradEntropy?: Float32Array;
  stats: GrpoLossStats;
}

const GRPO_KEYS = new Set([
  'logprobs', 'oldLogprobs', 'refLogprobs', 'advantages', 'mask', 'numSequences', 'seqLen', 'clipLow', 'clipHigh',
  'dualClip', 'klCoef', 'klEstimator', 'lossAgg', 'lossScale', 'entropy', 'entropyCoef', 'ratioLevel', 'policyLoss',
  'tokenCountNormalizer', 'sequenceCountNormalizer',
]);

/**
 * The GRPO loss value, its gradient w.r.t. `logprobs` (and `entropy`) and clip/KL statistics, in one pass.
 * Throws TypeError for a missing or wrongly typed field, RangeError for a bad length, value or non-finite entry.
 */
export function grpoLoss(input: GrpoLossInput): GrpoLossResult {
  checkObject(input, 'grpoLoss', GRPO_KEYS);
  const numSequences = count(input.numSequences, 'numSequences');
  const seqLen = count(input.seqLen, 'seqLen');
  const n = numSequences * seqLen;
  const shape = `numSequences * seqLen = ${numSequences} * ${seqLen}`;
  const logprobs = f32(input.logprobs, 'logprobs', n, shape);
  const oldLogprobs = f32(input.oldLogprobs, 'oldLogprobs', n, shape);
  const refLogprobs = input.refLogprobs === undefined ? undefined : f32(input.refLogprobs, 'refLogprobs', n, shape);
  const advantages = f32(input.advantages, 'advantages', numSequences, 'numSequences');
  const entropy = input.entropy === undefined ? undefined : f32(input.entropy, 'entropy', n, shape);
  const mask = input.mask;
  if (!(mask instanceof Uint8Array) && !(mask instanceof Float32Array))
    throw new TypeError(`grpoLoss: mask must be a Uint8Array or a Float32Array, got ${describe(mask)}`);
  if (mask.length !== n) throw new RangeError(`grpoLoss: mask has length ${mask.length}, expected ${n} (${shape})`);

  const clipLow = num(input.clipLow, 'clipLow');
  if (clipLow < 0) throw new RangeError(`grpoLoss: clipLow must be >= 0, got ${clipLow}`);
  const clipHigh = input.clipHigh === undefined ? clipLow : num(input.clipHigh, 'clipHigh');
  if (clipHigh < 0) throw new RangeError(`grpoLoss: clipHigh must be >= 0, got ${clipHigh}`);
  let dualClip = 0;
  if (input.dualClip !== undefined) {
    dualClip = num(input.dualClip, 'dualClip');
    if (!(dualClip > 1)) throw new RangeError(`grpoLoss: dualClip must be > 1, got ${dualClip}`);
  }
  const klCoef = input.klCoef === undefined ? 0 : num(input.klCoef, 'klCoef');
  if (klCoef < 0) throw new RangeError(`grpoLoss: klCoef must be >= 0, got ${klCoef}`);
  if (klCoef > 0 && refLogprobs === undefined)
    throw new TypeError(`grpoLoss: refLogprobs is required when klCoef > 0 (klCoef = ${klCoef})`);
  const klEstimator = oneOf(input.klEstimator ?? 'k3', 'klEstimator', KL_ESTIMATORS);
  const lossAgg = oneOf(input.lossAgg ?? 'token-mean', 'lossAgg', LOSS_AGG_MODES);
  const ratioLevel = oneOf(input.ratioLevel ?? 'token', 'ratioLevel', RATIO_LEVELS);
  const policyLoss = oneOf(input.policyLoss ?? 'ppo', 'policyLoss', POLICY_LOSSES);
  let lossScale = seqLen > 0 ? seqLen : 1;
  if (input.lossScale !== undefined) {
    lossScale = num(input.lossScale, 'lossScale');
    if (!(lossScale > 0)) throw new RangeError(`grpoLoss: lossScale must be > 0, got ${lossScale}`);
  }
  const entropyCoef = input.entropyCoef === undefined ? 0 : num(input.entropyCoef, 'entropyCoef');
  if (entropyCoef !== 0 && entropy === undefined)
    throw new TypeError(`grpoLoss: entropy is required when entropyCoef != 0 (entropyCoef = ${entropyCoef})`);
  const tokenCountNormalizer = positiveOptional(input.tokenCountNormalizer, 'tokenCountNormalizer');
  const sequenceCountNormalizer = positiveOptional(input.sequenceCountNormalizer, 'sequenceCountNormalizer');

  allFinite(logprobs, 'logprobs');
  allFinite(oldLogprobs, 'oldLogprobs');
  if (refLogprobs) allFinite(refLogprobs, 'refLogprobs');
  allFinite(advantages, 'advantages');
  if (entropy) allFinite(entropy, 'entropy');
  if (mask instanceof Uint8Array) {
    for (let i = 0; i < n; i++) {
      const m = mask[i]!;
      if (m > 1) throw new RangeError(`grpoLoss: mask[${i}] = ${m}; a Uint8Array mask must hold 0 or 1`);
    }
  } else {
    for (let i = 0; i < n; i++) {
      const m = mask[i]!;
      if (!(m >= 0) || m === Infinity)
        throw new RangeError(`grpoLoss: mask[${i}] = ${m}; mask weights must be finite and >= 0`);
    }
  }

  const out = native().grpoLoss({
    logprobs, oldLogprobs, refLogprobs, advantages, mask, entropy, numSequences, seqLen, clipLow, clipHigh, dualClip,
    klCoef, klEstimator, lossAgg, lossScale, entropyCoef, ratioLevel, policyLoss, tokenCountNormalizer, sequenceCountNormalizer,
  });
  const result: GrpoLossResult = { loss: out.loss, grad: out.grad, stats: out.stats };
  if (out.gradEntropy) result.gradEntropy = out.gradEntropy;
  return result;
}

// ---- validation helpers (shared with optim.ts)

/** @internal A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (Array.isArray(v)) return 'an Array';
  return typeof v === 'object' ? `a ${(v as object).constructor?.name ?? 'object'}` : `${typeof v} ${String(v)}`;
}

/** @internal Throws TypeError unless `o` is a plain options object with only known keys. */
export function checkObject(o: unknown, fn: string, keys: Set<string>): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new TypeError(`${fn}: expects one options object, got ${describe(o)}`);
  for (const k of Object.keys(o)) {
    if (keys.has(k)) continue;
    const lower = k.toLowerCase();
    const hint = [...keys].find((x) => x.toLowerCase() === lower);
    throw new TypeError(`${fn}: unknown option '${k}'${hint ? ` (did you mean '${hint}'?)` : ''}; known: ${[...keys].join(', ')}`);
  }
}

/** @internal A required finite number. */
export function num(v: unknown, field: string, fn = 'grpoLoss'): number {
  if (typeof v !== 'number') throw new TypeError(`${fn}: ${field} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${fn}: ${field} must be finite, got ${v}`);
  return v;
}

function count(v: unknown, field: string): number {
  const x = num(v, field);
  if (!Number.isInteger(x) || x < 0) throw new RangeError(`grpoLoss: ${field} must be an integer >= 0, got ${x}`);
  return x;
}

function positiveOptional(v: unknown, field: string): number {
  if (v === undefined) return 0;
  const x = num(v, field);
  if (!(x > 0)) throw new RangeError(`grpoLoss: ${field} must be > 0, got ${x}`);
  return x;
}

function f32(v: unknown, field: string, expected: number, what: string): Float32Array {
  if (!(v instanceof Float32Array)) throw new TypeError(`grpoLoss: ${field} must be a Float32Array, got ${describe(v)}`);
  if (v.length !== expected)
    throw new RangeError(`grpoLoss: ${field} has length ${v.length}, expected ${expected} (${what})`);
  return v;
}

function oneOf<T extends string>(v: unknown, field: string, valid: readonly T[]): T {
  if (typeof v !== 'string') throw new TypeError(`grpoLoss: ${field} must be a string, got ${describe(v)}`);
  if (!(valid as readonly string[]).includes(v))
    throw new RangeError(`grpoLoss: ${field} must be one of ${valid.map((x) => `'${x}'`).join(', ')}, got '${v}'`);
  return v as T;
}

function allFinite(a: Float32Array, field: string): void {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    // x - x is NaN exactly for NaN and ±Infinity, and cheaper than Number.isFinite in this loop.
    if (x - x !== 0) throw new RangeError(`grpoLoss: ${field}[${i}] is ${x}; every entry must be finite`);
  }
}
