/**
 * Next-token sampling for decoding, reproducible by construction (native/cpu/sampling.h has the exact rules).
 *
 * Per row: banned ids get logit -inf; logits / temperature (0 = greedy: the largest logit, lower id on ties);
 * then top-k -> top-p -> min-p (vLLM / Hugging Face order; min-p keeps p >= minP * p_max on the
 * temperature-scaled distribution; at least one token always survives; ties by lower token id); then one
 * Philox4x32-10 uniform per (seed, sequence id, position) and the inverse CDF over the kept tokens in token-id
 * order. The same (seed, sequence id, position) and logits give the same token whatever the batch, the row
 * order or the thread count.
 *
 * Seed: a non-negative safe integer (0 .. 2^53 - 1); the Philox key is its low and high 32-bit halves.
 */
import { native } from '../native/binding.js';

/** Options of sample(): one logits row per sequence being decoded, its RNG counter, and the filters. */
export interface SampleInput {
  /** Logits [numRows, vocabSize], one row per sequence being decoded. -Infinity marks an impossible token. */
  logits: Float32Array;
  numRows: number;
  vocabSize: number;
  /** Integer in [0, 2^53 - 1] (Number.MAX_SAFE_INTEGER). */
  seed: number;
  /** [numRows] sequence id of each row (non-negative; an Int32Array or a Uint32Array). */
  sequenceIds: Int32Array | Uint32Array;
  /** [numRows] position of the token being sampled (non-negative). */
  positions: Int32Array;
  /** >= 0; 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off (default). */
  topK?: number;
  /** Nucleus mass in (0, 1]; 1 = off (default). */
  topP?: number;
  /** Keep tokens with p >= minP * p_max, in [0, 1]; 0 = off (default). */
  minP?: number;
  /** Token ids that are never sampled (e.g. the vision special tokens); each in [0, vocabSize). */
  bannedTokens?: Int32Array;
}

/** What sample() returns (new arrays, one entry per row). */
export interface SampleResult {
  /** [numRows] sampled token ids. */
  tokens: Int32Array;
  /**
   * [numRows] log_softmax(logits / temperature)[token] over the whole vocabulary, nothing banned or filtered
   * (temperature 1 when greedy): the behaviour-policy log-prob the trainer recomputes.
   */
  logprobs: Float32Array;
  /** [numRows] log-prob under the banned + filtered, renormalised distribution actually sampled (0 when greedy). */
  filteredLogprobs: Float32Array;
}

function intField(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`sample: ${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`sample: ${field} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

function numberField(value: unknown, field: string, ok: (v: number) => boolean, range: string): void {
  if (value === undefined) return;
  if (typeof value !== 'number') throw new TypeError(`sample: ${field} must be a number, got ${typeof value}`);
  if (!ok(value)) throw new RangeError(`sample: ${field} must be ${range}, got ${value}`);
}

/** Samples one token per row of `logits`; see the module comment for the rules. */
export function sample(input: SampleInput): SampleResult {
  if (typeof input !== 'object' || input === null) throw new TypeError('sample expects one options object');
  const rows = intField(input.numRows, 'numRows', 0, 0x7fffffff);
  const vocab = intField(input.vocabSize, 'vocabSize', 1, 0x7fffffff);
  intField(input.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  if (!(input.logits instanceof Float32Array)) throw new TypeError('sample: logits must be a Float32Array');
  if (input.logits.length !== rows * vocab)
    throw new RangeError(
      `sample: logits has length ${input.logits.length}, expected numRows*vocabSize = ${rows}*${vocab} = ${rows * vocab}`,
    );
  const seq = input.sequenceIds;
  if (!(seq instanceof Int32Array) && !(seq instanceof Uint32Array))
    throw new TypeError('sample: sequenceIds must be an Int32Array or a Uint32Array');
  if (seq.length !== rows) throw new RangeError(`sample: sequenceIds has length ${seq.length}, expected numRows = ${rows}`);
  if (!(input.positions instanceof Int32Array)) throw new TypeError('sample: positions must be an Int32Array');
  if (input.positions.length !== rows)
    throw new RangeError(`sample: positions has length ${input.positions.length}, expected numRows = ${rows}`);
  numberField(input.temperature, 'temperature', (v) => Number.isFinite(v) && v >= 0, 'a finite number >= 0 (0 = greedy)');
  if (input.topK !== undefined) intField(input.topK, 'topK', 0, 0x7fffffff);
  numberField(input.topP, 'topP', (v) => v > 0 && v <= 1, 'in (0, 1] (1 = off)');
  numberField(input.minP, 'minP', (v) => v >= 0 && v <= 1, 'in [0, 1] (0 = off)');
  if (input.bannedTokens !== undefined && !(input.bannedTokens instanceof Int32Array))
    throw new TypeError('sample: bannedTokens must be an Int32Array');
  // Per-entry checks (negative ids, banned ids >= vocabSize, NaN logits) happen natively and throw
  // RangeError naming the index and value.
  return native().sample(input);
}
