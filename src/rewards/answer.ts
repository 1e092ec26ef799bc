/**
 * Which text a reward compares: the answer span of a completion, and the text of a ground truth.
 *
 * Peers: VLM-R1 (content side), Ocean-R1, OpenV-R1 and `clean_text` take the LAST `<answer>(.*?)</answer>` with
 * DOTALL; R1-V and EasyR1's r1v.py take the FIRST span without DOTALL (single-line answers only), and R1-V/Ocean
 * run math_verify over the WHOLE completion, thinking included (peers.md §b.0, §e.14).
 *
 * Our rule (deliberate, one rule for every reward):
 * 1. The compared text is the content of the LAST complete `<answer>…</answer>` span (multi-line allowed, tags
 *    case-insensitive, whitespace inside the angle brackets tolerated: `< answer >`, `</ answer>`), trimmed. If
 *    that span itself contains a nested `<answer>` opening, only the text after the last opening counts.
 * 2. With no complete span but an unclosed `<answer>` (a truncated completion), the text after the last opening.
 * 3. With no answer tag at all: the completion with its thinking removed — `<think>…</think>` blocks are cut, an
 *    unclosed `<think>` cuts to the end, and a leading `…</think>` (the chat template opened the think block)
 *    is cut — so text inside the reasoning is never graded.
 * An empty compared text never matches anything (every reward returns 0 for it).
 *
 * The ground truth side: a string is reduced with rule 1 when it holds an `<answer>` span (VLM-R1 stores
 * solutions as `<answer> x </answer>`), else used whole; numbers, booleans (yes/no) and JSON values are
 * converted to text by `groundTruthText`.
 */

const ANSWER_OPEN = /<\s*answer\s*>/gi;
const ANSWER_CLOSE = /<\s*\/\s*answer\s*>/gi;
const HAS_ANSWER_OPEN = /<\s*answer\s*>/i;
const THINK_TAG = /<\s*(\/?)\s*think\s*>/gi;

// Everything here is a single linear scan: lazy `<answer>(.*?)</answer>` regexes are quadratic on a degenerate
// completion that repeats an opening tag thousands of times, which RL policies do produce.

/** Text after the last `<answer>` opening inside `s` (or `s` itself when there is none). */
function afterLastOpening(s: string): string {
  let end = -1;
  for (const m of s.matchAll(ANSWER_OPEN)) end = (m.index ?? 0) + m[0].length;
  return end < 0 ? s : s.slice(end);
}

/**
 * Content of the last complete `<answer>…</answer>` span, or undefined when there is none: the last opening tag
 * that has a closing tag after it, up to the first closing tag after it.
 */
export function lastAnswerSpan(text: string): string | undefined {
  const opens = [...text.matchAll(ANSWER_OPEN)].map((m) => (m.index ?? 0) + m[0].length);
  if (opens.length === 0) return undefined;
  const closes = [...text.matchAll(ANSWER_CLOSE)].map((m) => m.index ?? 0);
  if (closes.length === 0) return undefined;
  const lastClose = closes[closes.length - 1] as number;
  // The last opening that ends at or before the last closing tag.
  let k = opens.length - 1;
  while (k >= 0 && (opens[k] as number) > lastClose) k--;
  if (k < 0) return undefined;
  const start = opens[k] as number;
  // The first closing tag at or after `start` (binary search).
  let lo = 0;
  let hi = closes.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((closes[mid] as number) >= start) hi = mid;
    else lo = mid + 1;
  }
  return text.slice(start, closes[lo]).trim();
}

/** The completion without its reasoning (rule 3 above), in one pass over the think tags. */
export function stripThinking(text: string): string {
  let out = '';
  let pos = 0;
  let inThink = false;
  for (const m of text.matchAll(THINK_TAG)) {
    const at = m.index ?? 0;
    if (!m[1]) {
      if (!inThink) {
        out += text.slice(pos, at);
        inThink = true;
      }
    } else if (inThink) {
      inThink = false;
      out += ' ';
      pos = at + m[0].length;
    } else {
      // A closing tag with no opening: the template opened <think>, so everything so far was reasoning.
      out = '';
      pos = at + m[0].length;
    }
  }
  if (!inThink) out += text.slice(pos);
  return out;
}

/** The text a reward compares for this completion (see the rules at the top of this file). Never throws. */
export function extractAnswer(completion: unknown): string {
  if (typeof completion !== 'string') return '';
  const span = lastAnswerSpan(completion);
  if (span !== undefined) return span;
  if (HAS_ANSWER_OPEN.test(completion)) {
    return afterLastOpening(completion).replace(/<\s*\/?\s*think\s*>/gi, ' ').trim();
  }
  return stripThinking(completion).trim();
}

/** Whether the completion has at least one complete `<answer>…</answer>` span. */
export function hasAnswerSpan(completion: string): boolean {
  return lastAnswerSpan(completion) !== undefined;
}

/** The ground truth as text (see the top of this file). Never throws; returns '' for null/undefined/NaN. */
export function groundTruthText(groundTruth: unknown): string {
  if (groundTruth === null || groundTruth === undefined) return '';
  if (typeof groundTruth === 'string') return lastAnswerSpan(groundTruth) ?? groundTruth.trim();
  if (typeof groundTruth === 'number') return Number.isFinite(groundTruth) ? String(groundTruth) : '';
  if (typeof groundTruth === 'bigint') return groundTruth.toString();
  if (typeof groundTruth === 'boolean') return groundTruth ? 'yes' : 'no';
  try {
    return JSON.stringify(groundTruth) ?? '';
  } catch {
    return '';
  }
}
