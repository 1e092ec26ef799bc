/**
 * Reading a final value out of an answer text: which sub-string is the final answer, its number, its
 * multiple-choice letter, its yes/no, and a normalised string for plain-text comparison.
 *
 * Peers (peers.md §b.0, §b.3): VLM-R1/Ocean/OpenV `extract_choice` (any isolated capital letter, scored by nearby
 * keywords, ties broken by position — so "A and B" still picks one letter), VLM-R1 yes_no (first `(yes|no)`
 * anywhere, and two missing answers compare equal ⇒ reward 1), `numeric_reward` (`float()` of the whole cleaned
 * answer), Math-Verify's `any_match` extraction over the whole text (boxed, "final answer is", any expression).
 *
 * Our rules (deliberate):
 * - Final-answer candidates, in order: the last `\boxed{}` if present (and then nothing else); otherwise the whole
 *   answer, the remainder after the last "answer is / answer: / 答案是", and the right side of the last `=` or `≈`.
 *   The first candidate that yields a value decides. Failing all, a number is taken from running text only when
 *   exactly ONE distinct number occurs there ("There are 3 cats" → 3; "3 or 4" → nothing).
 * - Choice letters: a lone letter (`B`, `(B)`, `B.`, `[b]`), a leading option (`B. 45°`, `(B) 45°`), an anchored
 *   phrase (`The answer is B`, `Option C`, `答案是B`), else exactly one distinct isolated capital letter (the
 *   article "A …" and pronoun "I …" before a lower-case word are ignored, except before and/or/is/was/…, so
 *   "A and B" names two letters). Several letters ⇒ no choice (listing options never scores).
 *   Case-insensitive only for the lone-letter form.
 * - Yes/no: the leading word, an anchored "answer is yes", else exactly one of {yes, no} present. A hedge
 *   ("yes or no", "yes/no"), neither, or both without a leading/anchored one ⇒ no answer, and no answer never
 *   matches (fixes the VLM-R1 '' == '' ⇒ 1 bug).
 * - Plain text: NFKC, LaTeX text commands unwrapped, lower-case, punctuation removed, articles (a/an/the)
 *   removed, whitespace collapsed (SQuAD-style) — but math symbols (`<`, `>`, `=`, `+`, `^`, `-`, `/`, `%`) are
 *   kept (SQuAD would make `x<3` equal `x>3`), with the spaces around them removed. No Levenshtein partial
 *   credit (the peers' 0.1 / continuous fuzzy credit rewards near-misses; peers.md §e.14).
 */
import { extractBoxed, findNumbers, normalizeLatex, parsePlainNumber, stripUnits } from './numbers.js';
import { evaluateConstant } from './symbolic.js';

const ANCHOR = /(?:final answer|answer|result)\s*(?:is|:|=|would be|should be)\s*:?|答案\s*(?:是|为|：|:)/gi;

/** The text after the last "answer is"-style anchor, up to the end of that sentence; undefined if none. */
export function anchoredRemainder(answer: string): string | undefined {
  let end = -1;
  for (const m of answer.matchAll(ANCHOR)) end = (m.index ?? 0) + m[0].length;
  if (end < 0) return undefined;
  const rest = answer.slice(end).trim();
  const sentence = /^([\s\S]*?)(?:[.;!?。；！？](?=\s|$)|\n|$)/.exec(rest);
  const out = (sentence?.[1] ?? rest).trim();
  return out.length > 0 ? out : undefined;
}

/** Final-answer candidate strings (see the rule at the top of this file), most specific first. */
export function answerCandidates(answer: string): string[] {
  const boxed = extractBoxed(answer);
  if (boxed !== undefined) return boxed.trim() ? [boxed.trim()] : [];
  const out = [answer];
  const anchored = anchoredRemainder(answer);
  if (anchored !== undefined) out.push(anchored);
  const eq = Math.max(answer.lastIndexOf('='), answer.lastIndexOf('≈'));
  if (eq >= 0) {
    const rhs = answer.slice(eq + 1).trim();
    if (rhs) out.push(rhs);
  }
  return [...new Set(out)];
}

/**
 * Numeric readings of one candidate string: `1,000` → [1000], `45°` → [45], `3 cm` → [3], `\frac{1}{2}` → [0.5],
 * `x = 5` → [5], `50%` → [50, 0.5]. Empty when it is not a number. Never throws.
 */
export function numericValues(text: string): number[] {
  const normalized = normalizeLatex(text);
  if (!normalized || normalized.length > 400) return [];
  const { text: bare, percent } = stripUnits(normalized);
  if (!bare) return [];
  const v = parsePlainNumber(bare) ?? evaluateConstant(bare);
  if (v === undefined || Number.isNaN(v)) return [];
  return percent ? [v, v / 100] : [v];
}

/** The distinct values in a list (NaN-free), by exact equality. */
function distinct(values: number[]): number[] {
  return [...new Set(values)];
}

/**
 * The numeric value(s) of an answer: the first candidate that reads as a number, else the single distinct number
 * in the anchored remainder or the whole text. Undefined when there is none or it is ambiguous.
 */
export function readAnswerNumber(answer: string): number[] | undefined {
  const candidates = answerCandidates(answer);
  for (const c of candidates) {
    const v = numericValues(c);
    if (v.length > 0) return v;
  }
  if (extractBoxed(answer) !== undefined) return undefined;
  for (const scope of [anchoredRemainder(answer), answer]) {
    if (scope === undefined) continue;
    const nums = distinct(findNumbers(normalizeLatex(scope)));
    if (nums.length === 1 && nums[0] !== undefined) return nums;
    if (nums.length > 1) return undefined;
  }
  return undefined;
}

const LONE_LETTER = /^[([{]?\s*([A-Za-z])\s*[)\]}]?\s*[.:)]?$/;
const LEADING_OPTION = /^(?:[([]([A-Z])[)\]]|([A-Z])\s*[.:)])(?:\s|$)/;
const CHOICE_ANCHOR =
  /(?:answer|option|choice|choose|select|pick)\s*(?:is|:|would be|should be)?\s*:?\s*(?:option\s*)?[([]?\s*([A-Za-z])(?![A-Za-z])|(?:答案|选择|选)\s*(?:是|为|：|:)?\s*[([（]?\s*([A-Z])(?![A-Za-z])/gi;

/** Strips Markdown emphasis, quotes, boxes and LaTeX wrappers around a short answer. */
function cleanShort(text: string): string {
  const boxed = extractBoxed(text);
  const s = normalizeLatex(boxed ?? text);
  return s.replace(/[*_`"'“”‘’]/g, '').trim();
}

/** A multiple-choice letter in the answer (upper-case), or undefined (see the rule at the top of this file). */
export function extractChoice(text: string): string | undefined {
  const s = cleanShort(text);
  if (!s) return undefined;
  const lone = LONE_LETTER.exec(s);
  if (lone?.[1]) return lone[1].toUpperCase();
  const lead = LEADING_OPTION.exec(s);
  const leadLetter = lead?.[1] ?? lead?.[2];
  if (leadLetter) return leadLetter;
  let anchored: string | undefined;
  for (const m of s.matchAll(CHOICE_ANCHOR)) {
    const letter = m[1] ?? m[2];
    if (letter && /[A-Z]/.test(letter)) anchored = letter;
  }
  if (anchored) return anchored;
  const letters = new Set<string>();
  for (const m of s.matchAll(/(?<![A-Za-z])([A-Z])(?![A-Za-z])/g)) {
    const c = m[1] ?? '';
    const after = s.slice((m.index ?? 0) + 1, (m.index ?? 0) + 16);
    const articleOrPronoun = (c === 'A' || c === 'I') && /^\s+[a-z]/.test(after);
    if (articleOrPronoun && !/^\s+(?:and|or|nor|is|was|are|were|but|vs|versus|then)\b/.test(after)) continue;
    letters.add(c);
  }
  return letters.size === 1 ? [...letters][0] : undefined;
}

/** Whether a ground-truth text is a choice letter: a lone letter or a leading option ("B" / "(B)" / "B. text"). */
export function isChoiceGroundTruth(text: string): boolean {
  const s = cleanShort(text);
  return /^[([]?\s*[A-Z]\s*[)\]]?\s*[.:)]?$/.test(s) || LEADING_OPTION.test(s);
}

/** 'yes' | 'no' | undefined (see the rule at the top of this file). */
export function extractYesNo(text: string): 'yes' | 'no' | undefined {
  const s = normalizeText(cleanShort(text), false);
  if (!s) return undefined;
  if (/\byes\s*(?:or|\/)\s*no\b|\bno\s*(?:or|\/)\s*yes\b/.test(s)) return undefined;
  const first = /^(yes|no)\b/.exec(s);
  if (first) return first[1] as 'yes' | 'no';
  let anchored: 'yes' | 'no' | undefined;
  for (const m of s.matchAll(/\banswer\s*(?:is)?\s*(yes|no)\b/g)) anchored = m[1] as 'yes' | 'no';
  if (anchored) return anchored;
  const hasYes = /\byes\b/.test(s);
  const hasNo = /\bno\b/.test(s);
  if (hasYes !== hasNo) return hasYes ? 'yes' : 'no';
  return undefined;
}

/** SQuAD-style normalisation for plain-text answers (see the top of this file). */
export function normalizeText(text: string, dropArticles = true): string {
  let s = normalizeLatex(text.normalize('NFKC')).toLowerCase();
  // Punctuation goes; math symbols (< > = + ^ …, '-', '/', '%') stay, without spaces around them.
  s = s.replace(/[^\p{L}\p{N}\p{S}\s\-/%]/gu, ' ');
  if (dropArticles) s = s.replace(/(?<![\p{L}\p{N}])(?:a|an|the)(?![\p{L}\p{N}])/gu, ' ');
  s = s.replace(/\s+/g, ' ');
  s = s.replace(/ ?([\p{S}\-/%]) ?/gu, '$1');
  return s.trim();
}
