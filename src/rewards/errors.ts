/**
 * Errors for reward configuration and custom reward modules.
 *
 * Every error here is a RewardError (a VlmGrpoError) with a stable `code` and a remedy sentence. They are thrown
 * for misuse found while building a reward setup (unknown names, bad weights or options, a custom module that is
 * missing or exports no function). Completions never cause them: built-in rewards return 0 for garbage text.
 * Inside a RewardScorer a reward that throws on one sample scores 0 there and is counted; it never stops a run.
 * Peers: none of them validate reward configuration up front (a typo in verl/EasyR1 fails at the first batch
 * with a Python traceback); codes and "did you mean" hints are ours (DESIGN.md convention 7).
 */
import { VlmGrpoError } from '../errors.js';

export type RewardErrorCode =
  | 'ERR_REWARD_UNKNOWN'
  | 'ERR_REWARD_UNKNOWN_METHOD'
  | 'ERR_REWARD_BAD_WEIGHT'
  | 'ERR_REWARD_BAD_OPTIONS'
  | 'ERR_REWARD_BAD_SAMPLE'
  | 'ERR_REWARD_BAD_SPEC'
  | 'ERR_REWARD_MODULE_NOT_FOUND'
  | 'ERR_REWARD_MODULE_LOAD'
  | 'ERR_REWARD_NOT_A_FUNCTION'
  | 'ERR_REWARD_BAD_RESULT'
  | 'ERR_REWARD_TIMEOUT'
  | 'ERR_REWARD_JUDGE';

export class RewardError extends VlmGrpoError {
  declare readonly code: RewardErrorCode;

  constructor(code: RewardErrorCode, message: string, remedy: string, options?: { cause?: unknown }) {
    super(code, message, remedy, options);
    this.name = 'RewardError';
  }
}

/** Edit distance with adjacent transpositions (optimal string alignment); for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => d[i]?.[j] ?? 0;
  for (let i = 1; i <= m; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      row[j] = v;
    }
  }
  return at(m, n);
}

/**
 * The closest known name to `name` (case-insensitive, ignoring '-' and '_'), or undefined when nothing is
 * close enough: distance at most max(2, a third of the name's length).
 */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const target = norm(name);
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const kn = norm(k);
    let d = editDistance(target, kn);
    if (kn.startsWith(target) || target.startsWith(kn)) d = Math.min(d, 1);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(target.length / 3)) ? best : undefined;
}

/** " Did you mean 'x'?" or "" — for appending to messages. */
export function suggestion(name: string, known: readonly string[]): string {
  const s = didYouMean(name, known);
  return s === undefined ? '' : ` Did you mean '${s}'?`;
}
