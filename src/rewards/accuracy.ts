/**
 * Accuracy: does the answer match the ground truth? Numbers, fractions and LaTeX, multiple-choice letters,
 * yes/no, tuples, symbolic expressions, plain text — chosen automatically from the ground truth or per row.
 *
 * Peers (peers.md §b.1–b.5): R1-V `accuracy` (math_verify over the WHOLE completion with swapped arguments, then
 * exact string equality); VLM-R1 `default` (math_verify on the extracted answer, then float equality, choice
 * letters, else Levenshtein ratio as a continuous reward) plus `mcq`, `yes_no`, `math`, `all_match`, `iou`, …
 * dispatched by `accu_reward_method`; OpenV-R1/Ocean-R1 the same cascade quantised to {0, 0.1, 1} and dispatched
 * by `reward_func`; EasyR1 `grade_answer` on the last `\boxed{}`.
 *
 * Our rule (deliberate differences, each fixing a peers.md §e.14 failure mode):
 * - The compared text is the last `<answer>` span (answer.ts), never the thinking; an empty answer or an empty
 *   ground truth scores 0.
 * - Binary reward: 1 or 0 (no Levenshtein or 0.1 partial credit, which rewards near-misses).
 * - `auto` classifies the ground truth, in order: (1) equal after light normalisation (LaTeX clean-up, case,
 *   whitespace, trailing period) ⇒ 1; (2) yes/no; (3) a choice letter (`B`, `(B)`, `B. text`); (4) a number
 *   (values.ts: `1,000`, `45°`, `3 cm`, `50%`, `\frac{1}{2}`, `\sqrt{2}`, `x = 5`) compared with relative tolerance
 *   `tolerance` (default 1e-6) and absolute floor `absTolerance` (default 1e-9); (5) a tuple/interval
 *   (`(1, 2)`, `[0, 1)`, `\{1, 2\}` — brackets must agree, sets ignore order) compared element-wise; (6) an
 *   expression with variables, compared for symbolic equivalence (symbolic.ts); (7) plain text, SQuAD-normalised.
 * - Numbers are compared by value, so `2/4` equals `0.5` (MathRuler insists unreduced fractions match as strings);
 *   angles are not converted (`60°` is not `\pi/3`).
 * - A ground truth given as an array of strings/numbers is a list of accepted answers (best match counts).
 * - Per-row method: the row columns `reward_method` / `accu_reward_method` / `reward_func` (combine.ts) name the
 *   method and override `options.method` (the default, `auto`). Methods: auto (aliases default, acc, accuracy),
 *   numeric (number), math (symbolic), mcq (choice), yes_no (yesno), exact (all_match, string), counting (count),
 *   iou (continuous, or binary with options.threshold), iou50 (iou_bin), and VLM-R1's detection methods map,
 *   od_ap, od_ap50, odLength (od_length), weighted_sum with their default options (detection.ts). VLM-R1's `llm`
 *   calls a service and is asynchronous: use the separate `llm` reward (llm-judge.ts).
 */
import { z } from 'zod';

import { extractAnswer, groundTruthText } from './answer.js';
import { DEFAULT_METHOD_COLUMNS, lookupMethod, rowMethod, unknownMethodError } from './combine.js';
import { countingScore } from './counting.js';
import { mapScore, odApScore, odLengthScore, weightedSumScore } from './detection.js';
import { RewardError } from './errors.js';
import { iouScore } from './iou.js';
import { normalizeLatex } from './numbers.js';
import { readOptions } from './options.js';
import { DEFAULT_TOLERANCE, mathEquivalent, numbersClose, parseMath, type Tolerance } from './symbolic.js';
import type { RewardSample } from './types.js';
import {
  answerCandidates,
  extractChoice,
  extractYesNo,
  isChoiceGroundTruth,
  normalizeText,
  numericValues,
  readAnswerNumber,
} from './values.js';

/** Light normalisation for exact comparison: LaTeX clean-up, lower-case, single spaces, no trailing period. */
export function lightNormalize(text: string): string {
  return normalizeLatex(text).toLowerCase().replace(/\s+/g, ' ').trim();
}

/** Numeric readings of a (clean) ground-truth text; empty when it is not a number. */
export function groundTruthNumbers(gt: string): number[] {
  for (const c of answerCandidates(gt)) {
    const v = numericValues(c);
    if (v.length > 0) return v;
  }
  return [];
}

/** 1 when some numeric reading of the answer is within tolerance of some reading of the ground truth. */
export function numericScore(answer: string, gtValues: readonly number[], tol: Tolerance): number {
  if (!answer || gtValues.length === 0) return 0;
  const got = readAnswerNumber(answer);
  if (!got) return 0;
  return got.some((a) => gtValues.some((b) => numbersClose(a, b, tol))) ? 1 : 0;
}

/** 1 when the first candidate that parses as math is equivalent to the ground truth (symbolic.ts). */
export function mathScore(answer: string, gt: string, tol: Tolerance): number {
  if (!answer || !gt) return 0;
  if (lightNormalize(answer) === lightNormalize(gt)) return 1;
  const gtNums = groundTruthNumbers(gt);
  if (gtNums.length > 0) return numericScore(answer, gtNums, tol);
  for (const c of answerCandidates(answer)) {
    if (parseMath(c)) return mathEquivalent(c, gt, tol) ? 1 : 0;
  }
  return 0;
}

/** 1 when the answer's choice letter equals the ground truth's; 0 when either has none. */
export function choiceScore(answer: string, gt: string): number {
  const want = extractChoice(gt);
  if (!want || !answer) return 0;
  return extractChoice(answer) === want ? 1 : 0;
}

/** 1 when the answer's yes/no equals the ground truth's; 0 when either has none. */
export function yesNoScore(answer: string, gt: string): number {
  const want = extractYesNo(gt);
  if (!want || !answer) return 0;
  return extractYesNo(answer) === want ? 1 : 0;
}

/** 1 when the answers are equal after light normalisation (VLM-R1 `all_match`, made whitespace-tolerant). */
export function exactScore(answer: string, gt: string): number {
  if (!answer || !gt) return 0;
  const a = lightNormalize(answer);
  return a.length > 0 && a === lightNormalize(gt) ? 1 : 0;
}

/** 1 when some final-answer candidate equals the ground truth after SQuAD-style normalisation. */
export function textScore(answer: string, gt: string): number {
  const want = normalizeText(gt);
  if (!want || !answer) return 0;
  return answerCandidates(answer).some((c) => normalizeText(c) === want) ? 1 : 0;
}

interface Tuple {
  open: string;
  close: string;
  items: string[];
}

/** Splits on commas outside brackets. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

/** A tuple, interval or set with at least two items; undefined otherwise. */
export function parseTuple(text: string): Tuple | undefined {
  const s = normalizeLatex(text).replace(/\\\{/g, '{').replace(/\\\}/g, '}');
  if (!s.includes(',')) return undefined;
  const m = /^([([{])([\s\S]*)([)\]}])$/.exec(s);
  if (m) {
    const items = splitTopLevel(m[2] ?? '');
    // "(1,2)+(3,4)" is not one tuple: the brackets must enclose everything.
    const inner = m[2] ?? '';
    let depth = 0;
    for (const c of inner) {
      if (c === '(' || c === '[' || c === '{') depth++;
      else if (c === ')' || c === ']' || c === '}') depth--;
      if (depth < 0) return undefined;
    }
    if (items.length >= 2 && items.every((x) => x.length > 0)) return { open: m[1] ?? '', close: m[3] ?? '', items };
    return undefined;
  }
  const items = splitTopLevel(s);
  return items.length >= 2 && items.every((x) => x.length > 0) ? { open: '', close: '', items } : undefined;
}

/** Whether two tuple items are the same value (number, expression or text). */
function itemsMatch(a: string, b: string, tol: Tolerance): boolean {
  const nb = groundTruthNumbers(b);
  if (nb.length > 0) {
    const na = groundTruthNumbers(a);
    return na.some((x) => nb.some((y) => numbersClose(x, y, tol)));
  }
  if (lightNormalize(a) === lightNormalize(b)) return true;
  if (parseMath(a) && parseMath(b)) return mathEquivalent(a, b, tol);
  const na = normalizeText(a);
  return na.length > 0 && na === normalizeText(b);
}

/** 1 when the answer's tuple equals the ground truth's element-wise (sets `{…}` ignore order). */
export function tupleScore(answer: string, gt: Tuple, tol: Tolerance): number {
  let got: Tuple | undefined;
  for (const c of answerCandidates(answer)) {
    got = parseTuple(c);
    if (got) break;
  }
  if (!got || got.items.length !== gt.items.length) return 0;
  if (gt.open && got.open && (gt.open !== got.open || gt.close !== got.close)) return 0;
  if (gt.open === '{' && got.open === '{') {
    const left = [...got.items];
    for (const want of gt.items) {
      const k = left.findIndex((x) => itemsMatch(x, want, tol));
      if (k < 0) return 0;
      left.splice(k, 1);
    }
    return 1;
  }
  return gt.items.every((want, i) => itemsMatch(got.items[i] ?? '', want, tol)) ? 1 : 0;
}

/** The automatic cascade (see the top of this file) for one answer against one ground-truth value. */
export function autoScore(answer: string, groundTruth: unknown, tol: Tolerance = DEFAULT_TOLERANCE): number {
  const gt = groundTruthText(groundTruth);
  if (!answer || !gt) return 0;
  if (exactScore(answer, gt) === 1) return 1;
  if (typeof groundTruth === 'boolean' || /^(?:yes|no)$/.test(normalizeText(gt, false))) return yesNoScore(answer, gt);
  if (isChoiceGroundTruth(gt)) return choiceScore(answer, gt);
  const gtNums = typeof groundTruth === 'number' ? [groundTruth] : groundTruthNumbers(gt);
  if (gtNums.length > 0) return numericScore(answer, gtNums, tol);
  const tuple = parseTuple(gt);
  if (tuple) return tupleScore(answer, tuple, tol);
  if (parseMath(gt)) return mathScore(answer, gt, tol);
  return textScore(answer, gt);
}

export const accuracyOptionsSchema = z.strictObject({
  /** Default method when the row names none (default 'auto'). */
  method: z.string().min(1).optional(),
  /** Row column(s) holding the per-row method; null disables per-row dispatch. */
  methodColumn: z.union([z.string().min(1), z.array(z.string().min(1)), z.null()]).optional(),
  /** Relative tolerance for numbers (default 1e-6). */
  tolerance: z.number().min(0).lt(1).optional(),
  /** Absolute tolerance floor for numbers (default 1e-9). */
  absTolerance: z.number().min(0).optional(),
  /** For the iou method: binary reward at this IoU. */
  threshold: z.number().gt(0).lte(1).optional(),
  /** For the iou methods: which image the box refers to. */
  imageIndex: z.number().int().min(0).optional(),
});
export type AccuracyOptions = z.output<typeof accuracyOptionsSchema>;

type Method = (answer: string, sample: RewardSample, opts: AccuracyOptions, tol: Tolerance) => number;

/** Applies `score` to each accepted answer when the ground truth is a list; best match wins. */
function anyOf(groundTruth: unknown, score: (gt: unknown) => number): number {
  const list =
    Array.isArray(groundTruth) &&
    groundTruth.length > 0 &&
    groundTruth.every((g) => typeof g === 'string' || typeof g === 'number');
  if (list) {
    let best = 0;
    for (const g of groundTruth) best = Math.max(best, score(g));
    return best;
  }
  return score(groundTruth);
}

const text = (g: unknown) => groundTruthText(g);
const METHODS: Record<string, Method> = {
  auto: (a, s, _o, tol) => anyOf(s.groundTruth, (g) => autoScore(a, g, tol)),
  numeric: (a, s, _o, tol) =>
    anyOf(s.groundTruth, (g) => numericScore(a, typeof g === 'number' ? [g] : groundTruthNumbers(text(g)), tol)),
  math: (a, s, _o, tol) => anyOf(s.groundTruth, (g) => mathScore(a, text(g), tol)),
  mcq: (a, s) => anyOf(s.groundTruth, (g) => choiceScore(a, text(g))),
  yes_no: (a, s) => anyOf(s.groundTruth, (g) => yesNoScore(a, text(g))),
  exact: (a, s) => anyOf(s.groundTruth, (g) => exactScore(a, text(g))),
  counting: (a, s) => anyOf(s.groundTruth, (g) => countingScore(a, g)),
  iou: (_a, s, o) => iouScore(s, { threshold: o.threshold, imageIndex: o.imageIndex }),
  iou50: (_a, s, o) => iouScore(s, { threshold: 0.5, imageIndex: o.imageIndex }),
  map: (_a, s, o) => mapScore(s, { imageIndex: o.imageIndex }),
  od_ap: (_a, s, o) => odApScore(s, { imageIndex: o.imageIndex }, 'map'),
  od_ap50: (_a, s, o) => odApScore(s, { imageIndex: o.imageIndex }, 'ap50'),
  od_length: (_a, s, o) => odLengthScore(s, { imageIndex: o.imageIndex }),
  weighted_sum: (_a, s, o) => weightedSumScore(s, { imageIndex: o.imageIndex }),
};
const ALIASES: Record<string, keyof typeof METHODS> = {
  auto: 'auto', default: 'auto', acc: 'auto', accuracy: 'auto',
  numeric: 'numeric', number: 'numeric',
  math: 'math', symbolic: 'math',
  mcq: 'mcq', choice: 'mcq',
  yes_no: 'yes_no', yesno: 'yes_no',
  exact: 'exact', all_match: 'exact', string: 'exact',
  counting: 'counting', count: 'counting',
  iou: 'iou',
  iou50: 'iou50', iou_bin: 'iou50',
  map: 'map',
  od_ap: 'od_ap',
  od_ap50: 'od_ap50',
  od_length: 'od_length', odlength: 'od_length',
  weighted_sum: 'weighted_sum',
};
/** Method names accepted by `accuracy` (options.method or the row's method column). */
export const ACCURACY_METHODS: readonly string[] = Object.keys(ALIASES);

/** The accuracy reward with validated options (per-row dispatch included). */
export function accuracyScore(sample: RewardSample, opts: AccuracyOptions): number {
  const mc = opts.methodColumn;
  const columns = mc === null ? [] : typeof mc === 'string' ? [mc] : (mc ?? DEFAULT_METHOD_COLUMNS);
  const methodName = rowMethod(sample, columns) ?? opts.method ?? 'auto';
  const key = lookupMethod(ALIASES, methodName);
  const method = key === undefined ? undefined : METHODS[key];
  if (!method && methodName.trim().toLowerCase() === 'llm') {
    throw new RewardError(
      'ERR_REWARD_UNKNOWN_METHOD',
      "Reward 'accuracy' got the per-row method 'llm', which asks a judge model and is asynchronous.",
      "Score those rows with the 'llm' reward (options.baseUrl, model), e.g. as a custom reward dispatchByRow({ default: rewardFunctions.accuracy, llm: rewardFunctions.llm }).",
    );
  }
  if (!method) throw unknownMethodError('accuracy', methodName, ACCURACY_METHODS);
  const tol: Tolerance = {
    relTol: opts.tolerance ?? DEFAULT_TOLERANCE.relTol,
    absTol: opts.absTolerance ?? DEFAULT_TOLERANCE.absTol,
  };
  const answer = extractAnswer(sample.completion);
  if (!answer && key !== 'iou' && key !== 'iou50') return 0;
  return method(answer, sample, opts, tol);
}

/** `accuracy`: 1 when the answer matches the ground truth (see the rules at the top of this file), else 0. */
export function accuracy(sample: RewardSample): number {
  return accuracyScore(sample, readOptions('accuracy', accuracyOptionsSchema, sample.options));
}

/** A built-in that runs one fixed accuracy method (no per-row dispatch). */
function fixed(name: string, method: string) {
  const schema = z.strictObject({
    tolerance: z.number().min(0).lt(1).optional(),
    absTolerance: z.number().min(0).optional(),
  });
  const fn = (sample: RewardSample): number => {
    const o = readOptions(name, schema, sample.options);
    return accuracyScore(sample, { ...o, method, methodColumn: null });
  };
  return { fn, schema };
}

export const numericAccuracy = fixed('numeric', 'numeric');
export const mathAccuracy = fixed('math', 'math');
export const mcqAccuracy = fixed('mcq', 'mcq');
export const yesNoAccuracy = fixed('yes_no', 'yes_no');
export const exactAccuracy = fixed('exact', 'exact');
