/**
 * Validation of per-reward options with zod (strict objects: an unknown key is an error with a "did you mean").
 * Results are cached per options object so scoring a batch validates each distinct options object once (so treat
 * an options object as immutable once it is in use).
 * Peers: EasyR1 passes `reward_function_kwargs` through unchecked (a misspelt kwarg is a TypeError at the first
 * call); we reject unknown keys when the scorer is built.
 */
import { z } from 'zod';

import { RewardError, suggestion } from './errors.js';

const cache = new WeakMap<object, Map<z.ZodType, unknown>>();
const EMPTY: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** Describe a zod failure in one line: `threshold: Too big: expected number to be <=1`. */
function describeIssues(error: z.ZodError, schema: z.ZodType): string {
  const known = schema instanceof z.ZodObject ? Object.keys(schema.shape as Record<string, unknown>) : [];
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys
          .map((k) => `unknown option '${k}'.${suggestion(k, known)} Known options: ${known.join(', ') || '(none)'}`)
          .join('; ');
      }
      const path = issue.path.length ? issue.path.join('.') : '(options)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * Parse `options` for the reward `rewardName` with `schema`. Throws RewardError ERR_REWARD_BAD_OPTIONS naming the
 * reward and the offending key.
 */
export function readOptions<S extends z.ZodType>(
  rewardName: string,
  schema: S,
  options: Record<string, unknown> | undefined,
): z.output<S> {
  const input = options ?? EMPTY;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new RewardError(
      'ERR_REWARD_BAD_OPTIONS',
      `Options for reward '${rewardName}' must be a plain object, got ${Array.isArray(input) ? 'an array' : typeof input}.`,
      `Pass options as { key: value }, e.g. { threshold: 0.5 }.`,
    );
  }
  let perSchema = cache.get(input);
  if (perSchema?.has(schema)) return perSchema.get(schema) as z.output<S>;
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new RewardError(
      'ERR_REWARD_BAD_OPTIONS',
      `Bad options for reward '${rewardName}': ${describeIssues(parsed.error, schema)}.`,
      `Fix the options given to '${rewardName}' in your reward spec.`,
    );
  }
  if (!perSchema) {
    perSchema = new Map();
    cache.set(input, perSchema);
  }
  perSchema.set(schema, parsed.data);
  return parsed.data as z.output<S>;
}
