/**
 * Reasoning-behaviour counters: how often completions contain reflection phrases ("wait", "recheck", "however", …).
 *
 * Ocean-R1 tracked this by hand (counting "re-evaluate"/"recheck"/"wait"/"however" in rollouts over training) to
 * show that RL grows self-reflection; we count it for every step and log it in StepMetrics.reflection.
 *
 * Matching rules (each phrase is counted on its own; the total is the sum of the per-phrase counts):
 * - case-insensitive, Unicode-aware;
 * - whole words only: the character before and after a match must not be a letter, digit or underscore, so
 *   "awaited" and "waiter" do not count "wait", and "however," / "However:" do count "however";
 * - a space inside a phrase matches any run of whitespace ("let me  check" across a line break counts);
 * - a hyphen inside a phrase matches "-", "‐" (U+2010), "‑" (U+2011) or "–" (U+2013), since tokenizers and
 *   models emit all of them; "re-check" and "recheck" stay separate phrases (both are in the default list);
 * - matches of one phrase do not overlap; different phrases may overlap ("double-check" does not contain
 *   "re-check", but a custom list with "check" and "let me check" would count both).
 */

/**
 * The default reflection phrases. Each marks the model stepping back to test its own reasoning:
 * - "re-evaluate", "reevaluate": re-assessing a step or the answer;
 * - "recheck", "re-check", "double-check", "verify", "let me check": explicitly checking a result;
 * - "wait": the R1-style "Wait, …" interruption that starts most self-corrections;
 * - "however": a contrastive turn that usually introduces a correction or a caveat.
 * "verify" also counts in plain answers ("we verify that…"), so compare its trend rather than its level.
 */
export const DEFAULT_REFLECTION_PHRASES: readonly string[] = Object.freeze([
  're-evaluate',
  'reevaluate',
  'recheck',
  're-check',
  'wait',
  'however',
  'let me check',
  'double-check',
  'verify',
]);

/** Reflection phrase counts in one text. */
export interface ReflectionCounts {
  /** Occurrences of each phrase, keyed by the phrase as given (every phrase present, 0 when absent). */
  counts: Record<string, number>;
  /** Sum of all per-phrase counts. */
  total: number;
}

/** Reflection statistics over the completions of one step (StepMetrics.reflection). */
export interface ReflectionStats {
  /** Occurrences of all phrases, summed over the step's completions (a count). */
  total: number;
  /** Mean occurrences per completion (total / number of completions). */
  perCompletion: number;
  /** Share of completions containing at least one phrase, in [0, 1]. */
  fracWithAny: number;
  /** Occurrences per phrase, summed over the step's completions. */
  counts: Record<string, number>;
}

const HYPHENS = '[-\u2010\u2011\u2013]';

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function phrasePattern(phrase: string): string {
  // Split on whitespace and hyphens, escape the pieces, and join with the flexible separators.
  const out: string[] = [];
  let word = '';
  for (const ch of phrase.trim()) {
    if (/\s/u.test(ch)) {
      if (word) out.push(escapeRegex(word));
      word = '';
      if (out[out.length - 1] !== '\\s+') out.push('\\s+');
    } else if (ch === '-' || ch === '\u2010' || ch === '\u2011' || ch === '\u2013') {
      if (word) out.push(escapeRegex(word));
      word = '';
      out.push(HYPHENS);
    } else {
      word += ch;
    }
  }
  if (word) out.push(escapeRegex(word));
  return out.join('');
}

const cache = new Map<string, RegExp>();

function regexFor(phrase: string): RegExp {
  let re = cache.get(phrase);
  if (!re) {
    // Lookarounds instead of \b: \b is ASCII-only and treats "-" as a boundary in the wrong places.
    re = new RegExp(`(?<![\\p{L}\\p{N}_])${phrasePattern(phrase)}(?![\\p{L}\\p{N}_])`, 'giu');
    if (cache.size > 1024) cache.clear();
    cache.set(phrase, re);
  }
  re.lastIndex = 0;
  return re;
}

function checkPhrases(phrases: readonly string[]): void {
  if (!Array.isArray(phrases)) throw new TypeError(`reflection phrases must be an array of strings, got ${typeof phrases}`);
  for (const [i, p] of phrases.entries()) {
    if (typeof p !== 'string') throw new TypeError(`reflection phrases[${i}] must be a string, got ${typeof p}`);
    if (p.trim() === '') throw new RangeError(`reflection phrases[${i}] is empty`);
  }
}

/**
 * Count reflection phrases in one text.
 * @param text a completion
 * @param phrases the phrases to count (default {@link DEFAULT_REFLECTION_PHRASES})
 * @returns per-phrase counts (every phrase present) and their total
 * @example countReflections('Wait, let me recheck.') // { counts: { wait: 1, recheck: 1, …: 0 }, total: 2 }
 */
export function countReflections(text: string, phrases: readonly string[] = DEFAULT_REFLECTION_PHRASES): ReflectionCounts {
  if (typeof text !== 'string') throw new TypeError(`countReflections: text must be a string, got ${typeof text}`);
  checkPhrases(phrases);
  // A Map, then Object.fromEntries: phrases such as "__proto__" or "constructor" stay plain own keys.
  const counts = new Map<string, number>();
  let total = 0;
  for (const phrase of phrases) {
    if (counts.has(phrase)) continue; // a phrase listed twice is counted once
    const re = regexFor(phrase);
    let n = 0;
    while (re.exec(text) !== null) n++;
    counts.set(phrase, n);
    total += n;
  }
  return { counts: Object.fromEntries(counts), total };
}

/**
 * Reflection statistics over a step's completions (for StepMetrics.reflection).
 * @param texts the completions of one step
 * @param phrases the phrases to count (default {@link DEFAULT_REFLECTION_PHRASES})
 */
export function reflectionStats(texts: readonly string[], phrases: readonly string[] = DEFAULT_REFLECTION_PHRASES): ReflectionStats {
  if (!Array.isArray(texts)) throw new TypeError(`reflectionStats: texts must be an array of strings, got ${typeof texts}`);
  checkPhrases(phrases);
  const counts = new Map<string, number>();
  for (const p of phrases) counts.set(p, 0);
  let total = 0;
  let withAny = 0;
  for (const [i, text] of texts.entries()) {
    if (typeof text !== 'string') throw new TypeError(`reflectionStats: texts[${i}] must be a string, got ${typeof text}`);
    const c = countReflections(text, phrases);
    for (const [p, n] of Object.entries(c.counts)) counts.set(p, (counts.get(p) ?? 0) + n);
    total += c.total;
    if (c.total > 0) withAny++;
  }
  const n = texts.length;
  return { total, perCompletion: n ? total / n : 0, fracWithAny: n ? withAny / n : 0, counts: Object.fromEntries(counts) };
}
