/**
 * Token log-probabilities and entropies straight from hidden states and the LM head, computed over the
 * vocabulary in chunks so the [numTokens x vocabSize] logits matrix is never held whole (the "chunked
 * log-prob gather" the GRPO loss needs). See native/cpu/logprob.h for the exact math:
 *
 *   z = hidden · lmHeadᵀ / temperature        hidden [N, H], lmHead [V, H] (PyTorch layout)
 *   logprobs[n] = log_softmax(z[n])[targets[n]],   entropy[n] = -Σ p log p,   logsumexp[n] = log Σ exp z[n]
 *
 * A negative target marks a position without one (prompt, padding): logprob 0, entropy 0, no gradient.
 */
import { native } from '../native/binding.js';

/** Options of logprobs(): the inputs, their sizes and the knobs. */
export interface LogprobsInput {
  /** Hidden states [numTokens, hiddenSize], row-major. */
  hidden: Float32Array;
  /** LM head weight [vocabSize, hiddenSize] (PyTorch layout: logits = hidden · lmHeadᵀ). */
  lmHead: Float32Array;
  /** [numTokens] target token ids in [0, vocabSize), or negative for "no target". */
  targets: Int32Array;
  numTokens: number;
  hiddenSize: number;
  vocabSize: number;
  /** Logits are divided by it (> 0). Default 1. */
  temperature?: number;
  /** Also return the entropy of each row's distribution. Default false. */
  withEntropy?: boolean;
  /** Vocabulary columns per chunk (>= 1). Default 4096; extra memory is numTokens x chunkSize floats. */
  chunkSize?: number;
  /** Use the reference path that materialises the whole [numTokens, vocabSize] logits matrix. Default false. */
  fullLogits?: boolean;
}

/** What logprobs() returns (new arrays). */
export interface LogprobsResult {
  /** [numTokens] log-probability of each target (0 where the target is negative). */
  logprobs: Float32Array;
  /** [numTokens] entropy of each row (0 where the target is negative); present when withEntropy. */
  entropy?: Float32Array;
  /** [numTokens] log-sum-exp of each row's (temperature-scaled) logits, kept for the backward. */
  logsumexp: Float32Array;
}

/** Options of logprobsBackward(): the forward's inputs and saved logsumexp, and the incoming gradients. */
export interface LogprobsBackwardInput extends Omit<LogprobsInput, 'withEntropy'> {
  /** The forward's logsumexp [numTokens]. */
  logsumexp: Float32Array;
  /** dLoss/dlogprobs [numTokens]. */
  gradLogprobs: Float32Array;
  /** dLoss/dentropy [numTokens]; omit when the loss has no entropy term. */
  gradEntropy?: Float32Array;
  /**
   * The forward's entropy [numTokens]; used with gradEntropy. When gradEntropy is given without it, the
   * entropy is recomputed (one extra pass over the vocabulary).
   */
  entropy?: Float32Array;
}

/** What logprobsBackward() returns (new arrays). */
export interface LogprobsGradients {
  /** dLoss/dhidden [numTokens, hiddenSize]. */
  gradHidden: Float32Array;
  /** dLoss/dlmHead [vocabSize, hiddenSize] (a new array: add it to your gradient buffer). */
  gradLmHead: Float32Array;
}

function checkObject(input: unknown, fn: string): void {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${fn} expects one options object`);
}

function intField(value: unknown, field: string, fn: string, min: number): number {
  if (typeof value !== 'number') throw new TypeError(`${fn}: ${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > 0x7fffffff)
    throw new RangeError(`${fn}: ${field} must be an integer in [${min}, 2147483647], got ${value}`);
  return value;
}

function typedField<A extends Float32Array | Int32Array>(
  value: unknown,
  field: string,
  fn: string,
  ctor: { new (n: number): A; name: string },
  length: number,
  lengthWhat: string,
): A {
  if (!(value instanceof ctor)) throw new TypeError(`${fn}: ${field} must be a ${ctor.name}`);
  if (value.length !== length)
    throw new RangeError(`${fn}: ${field} has length ${value.length}, expected ${lengthWhat} = ${length}`);
  return value;
}

function optionalBool(value: unknown, field: string, fn: string): void {
  if (value !== undefined && typeof value !== 'boolean') throw new TypeError(`${fn}: ${field} must be a boolean`);
}

function validate(input: Omit<LogprobsInput, 'withEntropy'>, fn: string): void {
  checkObject(input, fn);
  const n = intField(input.numTokens, 'numTokens', fn, 0);
  const h = intField(input.hiddenSize, 'hiddenSize', fn, 1);
  const v = intField(input.vocabSize, 'vocabSize', fn, 1);
  typedField(input.hidden, 'hidden', fn, Float32Array, n * h, `numTokens*hiddenSize = ${n}*${h}`);
  typedField(input.lmHead, 'lmHead', fn, Float32Array, v * h, `vocabSize*hiddenSize = ${v}*${h}`);
  typedField(input.targets, 'targets', fn, Int32Array, n, 'numTokens');
  if (input.temperature !== undefined) {
    const t = input.temperature;
    if (typeof t !== 'number') throw new TypeError(`${fn}: temperature must be a number, got ${typeof t}`);
    if (!Number.isFinite(t) || t <= 0) throw new RangeError(`${fn}: temperature must be a finite number > 0, got ${t}`);
  }
  if (input.chunkSize !== undefined) intField(input.chunkSize, 'chunkSize', fn, 1);
  optionalBool(input.fullLogits, 'fullLogits', fn);
}

/**
 * Log-probabilities of `targets` (and optionally entropies) under softmax(hidden · lmHeadᵀ / temperature),
 * chunk by chunk over the vocabulary. Throws RangeError naming the row for a target >= vocabSize.
 */
export function logprobs(input: LogprobsInput): LogprobsResult {
  validate(input, 'logprobs');
  optionalBool(input.withEntropy, 'withEntropy', 'logprobs');
  return native().logprobs(input);
}

/**
 * Gradients of a loss L(logprobs, entropy) w.r.t. hidden and lmHead, given dL/dlogprobs (and dL/dentropy),
 * recomputing each vocabulary chunk's logits. gradHidden is the full gradient; gradLmHead is this call's
 * contribution (sum it over micro-batches).
 */
export function logprobsBackward(input: LogprobsBackwardInput): LogprobsGradients {
  const fn = 'logprobsBackward';
  validate(input, fn);
  const n = input.numTokens;
  typedField(input.logsumexp, 'logsumexp', fn, Float32Array, n, 'numTokens');
  typedField(input.gradLogprobs, 'gradLogprobs', fn, Float32Array, n, 'numTokens');
  if (input.gradEntropy !== undefined) typedField(input.gradEntropy, 'gradEntropy', fn, Float32Array, n, 'numTokens');
  if (input.entropy !== undefined) typedField(input.entropy, 'entropy', fn, Float32Array, n, 'numTokens');
  return native().logprobsBackward(input);
}
