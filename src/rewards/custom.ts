/**
 * Custom rewards: a user's JS/TS module loaded by path, sync or async, per sample or batched.
 *
 * Peers (peers.md §a "Reward API", §b.4–b.7): verl/Ocean-R1 `custom_reward_function.path/name` with
 * `compute_score(data_source, solution_str, ground_truth, extra_info)`; EasyR1 `module.py:fn` with
 * `REWARD_TYPE = batch | sequential`; TRL accepts plain and async callables. In verl/EasyR1 an exception in a
 * reward function kills the step; TRL maps `None` to NaN.
 *
 * Our rules:
 * - Spec: `path/to/reward.ts` or `path/to/reward.js:exportName` (EasyR1's `module:fn` form), relative to the
 *   working directory. The export used is the named one, else `default`, else `reward`, else the module's only
 *   exported function.
 * - The function receives the RewardSample (completion, groundTruth, row = the row's other columns, images and
 *   inputImages sizes, options). Per sample: `(sample) => number | Promise<number>`. Batched: `(samples) =>
 *   number[] | Promise<number[]>`, selected by `export const rewardType = 'batch'` (or EasyR1's
 *   `REWARD_TYPE = 'batch'`) or a `batched = true` property on the function.
 * - Isolation (in scorer.ts): a call that throws, rejects, times out or returns a non-finite number scores 0 for
 *   that sample (for a batched call: for every sample of the batch, or only the bad entries), is counted per
 *   reward, and is logged with its message. It never stops the run. Custom rewards may return any finite number.
 * - TypeScript modules load directly under a TS-aware runtime (tsx, vitest, Node ≥ 22.18); otherwise we try
 *   tsx's `tsImport` when tsx is installed, and fail with a message saying how to run or compile the module.
 */
import { existsSync, statSync } from 'node:fs';
import { extname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { RewardError } from './errors.js';
import type { BatchedRewardFunction, RewardFunction } from './types.js';

export interface LoadedReward {
  /** Label: the file name plus `:export` when one was named. */
  name: string;
  /** Absolute path of the module. */
  path: string;
  /** Name of the export used. */
  exportName: string;
  fn: RewardFunction | BatchedRewardFunction;
  batched: boolean;
}

/** Splits `path:export` (a Windows drive letter `C:\…` is not an export). */
export function splitModuleSpec(spec: string): { path: string; exportName?: string } {
  const m = /^(.*\.(?:[cm]?[jt]s)):([\w$]+)$/.exec(spec) ?? /^(.+?):([A-Za-z_$][\w$]*)$/.exec(spec);
  if (m && !/^[A-Za-z]$/.test(m[1] ?? '')) return { path: m[1] ?? spec, exportName: m[2] };
  return { path: spec };
}

async function importModule(absPath: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(absPath).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    const isTs = /\.[cm]?ts$/.test(absPath);
    if (isTs && code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      try {
        const api = (await import('tsx/esm/api')) as { tsImport(spec: string, parent: string): Promise<unknown> };
        return (await api.tsImport(url, import.meta.url)) as Record<string, unknown>;
      } catch (tsErr) {
        throw new RewardError(
          'ERR_REWARD_MODULE_LOAD',
          `Could not load the TypeScript reward module ${absPath}: this Node (${process.version}) cannot run .ts files and tsx is not available (${(tsErr as Error).message}).`,
          'Run with `node --import tsx …`, use Node ≥ 22.18, or compile the module to .js and pass that path.',
          { cause: tsErr },
        );
      }
    }
    throw new RewardError(
      'ERR_REWARD_MODULE_LOAD',
      `Could not load the reward module ${absPath}: ${(err as Error).message}`,
      'Fix the error in the module (run it with node to see the full stack), then retry.',
      { cause: err },
    );
  }
}

function describeExports(mod: Record<string, unknown>): string {
  const entries = Object.entries(mod).map(([k, v]) => `${k} (${typeof v})`);
  return entries.length > 0 ? entries.join(', ') : '(no exports)';
}

/**
 * Loads a custom reward from `spec` (`path[:export]`), resolved against `cwd` (default process.cwd()).
 * Throws ERR_REWARD_MODULE_NOT_FOUND, ERR_REWARD_MODULE_LOAD or ERR_REWARD_NOT_A_FUNCTION naming the path and
 * what it found.
 */
export async function loadCustomReward(spec: string, opts: { cwd?: string } = {}): Promise<LoadedReward> {
  const { path, exportName } = splitModuleSpec(spec.trim());
  const abs = isAbsolute(path) ? path : resolve(opts.cwd ?? process.cwd(), path);
  if (!existsSync(abs) || !statSync(abs).isFile()) {
    throw new RewardError(
      'ERR_REWARD_MODULE_NOT_FOUND',
      `Custom reward module not found: ${abs} (from '${spec}').`,
      'Check the path (relative paths are resolved from the current directory) and the file extension (.js, .mjs, .ts).',
    );
  }
  const mod = await importModule(abs);
  let chosen: string | undefined;
  if (exportName !== undefined) {
    if (!(exportName in mod)) {
      throw new RewardError(
        'ERR_REWARD_NOT_A_FUNCTION',
        `Reward module ${abs} has no export '${exportName}'. Its exports: ${describeExports(mod)}.`,
        `Export a function named '${exportName}', or name an existing export after the colon (path:exportName).`,
      );
    }
    chosen = exportName;
  } else if (typeof mod['default'] === 'function') chosen = 'default';
  else if (typeof mod['reward'] === 'function') chosen = 'reward';
  else {
    const fns = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
    if (fns.length === 1) chosen = fns[0];
    else if (fns.length === 0 && 'default' in mod) chosen = 'default';
    else if (fns.length > 1) {
      throw new RewardError(
        'ERR_REWARD_NOT_A_FUNCTION',
        `Reward module ${abs} exports several functions (${fns.join(', ')}) and no default.`,
        `Pick one with ${spec}:${fns[0]}, or export it as default.`,
      );
    }
  }
  const fn = chosen === undefined ? undefined : mod[chosen];
  if (typeof fn !== 'function') {
    throw new RewardError(
      'ERR_REWARD_NOT_A_FUNCTION',
      `Reward module ${abs} does not export a reward function${chosen ? ` ('${chosen}' is ${typeof fn})` : ''}. Its exports: ${describeExports(mod)}.`,
      'Export a function (sample) => number (or a batched (samples) => number[]), as default or by name (path:exportName).',
    );
  }
  const typeTag = mod['rewardType'] ?? mod['REWARD_TYPE'];
  const batched =
    (fn as { batched?: unknown }).batched === true ||
    (typeof typeTag === 'string' && ['batch', 'batched'].includes(typeTag.toLowerCase()));
  const base = path.split(/[\\/]/).pop() ?? path;
  return {
    name: exportName !== undefined ? `${base.slice(0, base.length - extname(base).length)}:${exportName}` : base.slice(0, base.length - extname(base).length),
    path: abs,
    exportName: chosen ?? 'default',
    fn: fn as RewardFunction | BatchedRewardFunction,
    batched,
  };
}
