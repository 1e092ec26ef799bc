/**
 * Object-detection rewards (VLM-R1's OVD accuracy methods): COCO mAP over Qwen2.5-VL's `[{"bbox_2d", "label"}]`
 * lists (`map`, `od_ap`, `od_ap50`, `od_length`), the position/label/completeness `weighted_sum`, and `all_match`.
 *
 * Peers (peers.md §b.3; VLM-R1 `grpo_jsonl.py`): `map_reward` builds a one-image COCO dataset (dummy 2048×2048,
 * one category per distinct ground-truth label, every prediction scored 1.0, predictions with an unknown label
 * dropped) and returns pycocotools' stats[0] (AP@[.5:.95]) or stats[1] (AP@.5); both lists empty → 1, exactly one
 * empty → 0. `od_reward` applies it to the LAST `<answer>` span ("None" == "None" → 1, no span → 0);
 * `odLength_reward` multiplies by min(1, |gt| / |pred|). `detection_score` greedily matches the max-IoU
 * (pred, gt) pair until the best IoU is below 0.5 and returns (α·position + β·label + γ·completeness)/(α+β+γ).
 *
 * COCO evaluation, implemented here exactly as pycocotools' COCOeval (bbox, one image, useCats, area range
 * "all", maxDets 100):
 * - IoU thresholds and recall thresholds are numpy's `linspace(.5, .95, 10)` and `linspace(0, 1, 101)` bit for
 *   bit (e.g. 0.8999999999999999, 0.35000000000000003), so boundary cases fall the same way.
 * - Per category: detections in their written order (all scores are 1.0 and COCO sorts with a stable mergesort),
 *   the first maxDets kept; at each threshold t each detection takes the unmatched ground truth with the highest
 *   IoU ≥ t (ties: the later ground truth, as COCO's `<` comparison does), else it is a false positive.
 * - Precision/recall over the detection order, precision made monotone from the right, sampled at the 101
 *   recall thresholds with `searchsorted(…, 'left')` (0 past the last recall reached); AP = mean of the samples.
 * - mAP = mean over categories that have ground truth and over the thresholds; AP50 = the same at t = 0.5.
 * - IoU is maskUtils' bbIou: the standard area formula with no +1 pixel (iou.ts `boxIou`).
 *
 * Our rules (deliberate differences):
 * - Which text is compared: `map`, `weighted_sum` and `all_match` use answer.ts (the last `<answer>` span, else the
 *   completion without its thinking); `od_*` require a complete `<answer>` span like VLM-R1. An empty answer
 *   scores 0. Boxes are parsed with boxes.ts (JSON `bbox_2d` objects with or without ```json fences, decimals
 *   allowed; bare `[x1,y1,x2,y2]` lists as boxes without label) instead of `json.loads` of the first/last fence,
 *   so a truncated or malformed list scores what could be read from it, and nothing (→ 0) when no box is legible.
 * - Labels are compared after trimming; case-sensitive for the mAP family (COCO categories are exact strings),
 *   lower-cased for `weighted_sum` (as VLM-R1). A box without a label has the label ''.
 * - pycocotools divides precision by tp+fp+2.2e-16, so its perfect score is 0.9999999999999998; we divide exactly
 *   (a perfect answer scores 1).
 * - A predicted box that is invalid (x2 ≤ x1, y2 ≤ y1, non-finite) is a false positive; COCO silently ignores an
 *   unmatched detection with negative area. Invalid ground-truth boxes are dropped (they are data errors).
 * - `weighted_sum`: a box without a label no longer reuses the previous pair's label (VLM-R1 assigns an unused
 *   variable in its `except`), and IoU is the standard formula rather than the peers' `x2 − 1` variant.
 * - Predicted boxes are rescaled from the model-input frame (`inputImages[i]`) to the original image
 *   (`images[i]`) when both are given, like `iou` (i = options.imageIndex, default 0).
 * - all_match: VLM-R1's clean_text (a newline after whitespace is dropped, any other newline becomes a space,
 *   trim, trailing dots removed, lower-case) on both sides, equal and non-empty. (The `accuracy` reward's per-row
 *   method `all_match` stays an alias of the whitespace-tolerant `exact`, see accuracy.ts.)
 * - `accuracy` dispatches the per-row methods map, od_ap, od_ap50, odLength and weighted_sum here (default options).
 */
import { z } from 'zod';

import { extractAnswer, groundTruthText, lastAnswerSpan } from './answer.js';
import { type Box, groundTruthBoxes, isValidBox, type ParsedBox, parseBoxes } from './boxes.js';
import { boxIou, checkSize, rescaleBox } from './iou.js';
import { readOptions } from './options.js';
import type { RewardSample } from './types.js';

/** numpy.linspace(start, stop, num) bit for bit: start + i·((stop − start)/(num − 1)), the last value = stop. */
export function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (!Number.isInteger(num) || num < 1) throw new RangeError(`numpyLinspace: num must be an integer ≥ 1, got ${num}.`);
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** pycocotools' Params.iouThrs: np.linspace(.5, .95, 10). */
export const COCO_IOU_THRESHOLDS: readonly number[] = Object.freeze(numpyLinspace(0.5, 0.95, 10));
/** pycocotools' Params.recThrs: np.linspace(0, 1, 101). */
export const COCO_RECALL_THRESHOLDS: readonly number[] = Object.freeze(numpyLinspace(0, 1, 101));

/** COCO average precision of one image's detections against its ground truth. */
export interface CocoApResult {
  /** AP@[.5:.95]: mean over categories with ground truth and the 10 IoU thresholds (pycocotools stats[0]). */
  map: number;
  /** AP@.5 (pycocotools stats[1]). */
  ap50: number;
  /** AP per category label (those with ground truth), per IoU threshold. */
  perCategory: Map<string, number[]>;
}

const labelOf = (b: ParsedBox): string => (b.label ?? '').trim();

/**
 * AP at each IoU threshold of `dets` (in score order) against `gts`, one category, COCOeval.evaluateImg +
 * accumulate with every detection scored equally.
 */
function categoryAp(dets: readonly Box[], gts: readonly Box[]): number[] {
  const D = dets.length;
  const G = gts.length;
  const ious = dets.map((d) => gts.map((g) => boxIou(d, g)));
  const R = COCO_RECALL_THRESHOLDS;
  return COCO_IOU_THRESHOLDS.map((t) => {
    const gtMatched = new Array<boolean>(G).fill(false);
    const tp = new Float64Array(D);
    const fp = new Float64Array(D);
    let tps = 0;
    let fps = 0;
    for (let d = 0; d < D; d++) {
      let best = Math.min(t, 1 - 1e-10);
      let m = -1;
      const row = ious[d] as number[];
      for (let g = 0; g < G; g++) {
        if (gtMatched[g]) continue;
        const v = row[g] as number;
        if (v < best) continue;
        best = v;
        m = g;
      }
      if (m >= 0) {
        gtMatched[m] = true;
        tps++;
      } else fps++;
      tp[d] = tps;
      fp[d] = fps;
    }
    // Precision at each detection, made non-increasing from the right (the interpolated PR curve).
    const recall = Array.from(tp, (x) => x / G);
    const precision = Array.from(tp, (x, i) => (x + (fp[i] as number) > 0 ? x / (x + (fp[i] as number)) : 0));
    for (let i = D - 1; i > 0; i--) {
      if ((precision[i] as number) > (precision[i - 1] as number)) precision[i - 1] = precision[i] as number;
    }
    // q[r] = precision at the first detection whose recall reaches R[r] (searchsorted 'left'), else 0.
    let sum = 0;
    let i = 0;
    for (const r of R) {
      while (i < D && (recall[i] as number) < r) i++;
      if (i >= D) break;
      sum += precision[i] as number;
    }
    return sum / R.length;
  });
}

/**
 * COCO bbox AP of `predictions` (in the order written, all scored 1.0) against `groundTruths` for one image:
 * categories are labels; only categories with ground truth count; at most `maxDets` detections per category.
 * Invalid ground-truth boxes are dropped; invalid predictions are false positives. Both empty → map = ap50 = 1;
 * one side empty → 0.
 */
export function cocoAveragePrecision(
  predictions: readonly ParsedBox[],
  groundTruths: readonly ParsedBox[],
  options: { maxDets?: number } = {},
): CocoApResult {
  const maxDets = options.maxDets ?? 100;
  const gts = groundTruths.filter((g) => isValidBox(g.box));
  const perCategory = new Map<string, number[]>();
  if (gts.length === 0 || predictions.length === 0) {
    const v = gts.length === 0 && predictions.length === 0 ? 1 : 0;
    for (const g of gts) perCategory.set(labelOf(g), COCO_IOU_THRESHOLDS.map(() => 0));
    return { map: v, ap50: v, perCategory };
  }
  const gtByLabel = new Map<string, Box[]>();
  for (const g of gts) {
    const k = labelOf(g);
    let list = gtByLabel.get(k);
    if (!list) gtByLabel.set(k, (list = []));
    list.push(g.box);
  }
  const detByLabel = new Map<string, Box[]>();
  for (const p of predictions) {
    const k = labelOf(p);
    if (!gtByLabel.has(k)) continue; // a category without ground truth does not enter the mean
    let list = detByLabel.get(k);
    if (!list) detByLabel.set(k, (list = []));
    if (list.length < maxDets) list.push(p.box);
  }
  let sum = 0;
  let sum50 = 0;
  for (const [label, g] of gtByLabel) {
    const aps = categoryAp(detByLabel.get(label) ?? [], g);
    perCategory.set(label, aps);
    for (const a of aps) sum += a;
    sum50 += aps[0] as number;
  }
  const K = gtByLabel.size;
  return { map: sum / (K * COCO_IOU_THRESHOLDS.length), ap50: sum50 / K, perCategory };
}

/** The sample's predicted boxes in `text`, rescaled to the original image frame when both sizes are given. */
export function predictedBoxes(text: string, sample: RewardSample, imageIndex = 0): ParsedBox[] {
  const boxes = parseBoxes(text);
  const original = sample.images?.[imageIndex];
  const input = sample.inputImages?.[imageIndex];
  if (original === undefined || input === undefined || boxes.length === 0) return boxes;
  const from = checkSize(input, `inputImages[${imageIndex}]`);
  const to = checkSize(original, `images[${imageIndex}]`);
  return boxes.map((b) => ({ ...b, box: rescaleBox(b.box, from, to) }));
}

/**
 * VLM-R1's clean_text on an already extracted text: a newline (or CR) preceded by whitespace is dropped, any
 * other becomes a space; then trim, strip trailing dots, lower-case.
 */
export function cleanAnswerText(text: string): string {
  const s = text.replace(/(?<=\s)\n/g, '').replace(/(?<!\s)\n/g, ' ').replace(/(?<=\s)\r/g, '').replace(/(?<!\s)\r/g, ' ');
  const t = s.trim();
  let end = t.length;
  while (end > 0 && t.charCodeAt(end - 1) === 46 /* . */) end--; // a loop: /\.+$/ is quadratic on '....x'
  return t.slice(0, end).toLowerCase();
}

const imageIndex = z.number().int().min(0).optional();

export const mapOptionsSchema = z.strictObject({
  /** Which image the boxes refer to, for rescaling (default 0). */
  imageIndex,
  /** Detections kept per category, in the order written (COCO maxDets, default 100). */
  maxDets: z.number().int().min(1).optional(),
});
export type MapOptions = z.output<typeof mapOptionsSchema>;

/** mAP (or AP50) of the boxes in `answer` against the ground truth; the caller has checked `answer` is non-empty. */
function apOf(answer: string, sample: RewardSample, opts: MapOptions, which: 'map' | 'ap50'): number {
  const preds = predictedBoxes(answer, sample, opts.imageIndex ?? 0);
  const gts = groundTruthBoxes(sample.groundTruth);
  const r = cocoAveragePrecision(preds, gts, opts.maxDets === undefined ? {} : { maxDets: opts.maxDets });
  return which === 'map' ? r.map : r.ap50;
}

/** `map` with validated options: COCO AP@[.5:.95] of the answer's boxes (see the top of this file). */
export function mapScore(sample: RewardSample, opts: MapOptions): number {
  const answer = extractAnswer(sample.completion);
  return answer ? apOf(answer, sample, opts, 'map') : 0;
}

/** The last complete `<answer>` span, or undefined (od_* need one, like VLM-R1). */
function odAnswer(completion: unknown): string | undefined {
  return typeof completion === 'string' ? lastAnswerSpan(completion) : undefined;
}

const isNone = (s: string) => s.trim().toLowerCase() === 'none';

/** `od_ap` / `od_ap50` with validated options. */
export function odApScore(sample: RewardSample, opts: MapOptions, which: 'map' | 'ap50' = 'map'): number {
  const answer = odAnswer(sample.completion);
  if (!answer) return 0;
  if (isNone(answer) && isNone(groundTruthText(sample.groundTruth))) return 1;
  return apOf(answer, sample, opts, which);
}

/** `od_length` with validated options: od_ap × min(1, |gt| / |pred|). */
export function odLengthScore(sample: RewardSample, opts: MapOptions): number {
  const answer = odAnswer(sample.completion);
  if (!answer) return 0;
  if (isNone(answer) && isNone(groundTruthText(sample.groundTruth))) return 1;
  const preds = predictedBoxes(answer, sample, opts.imageIndex ?? 0);
  const gts = groundTruthBoxes(sample.groundTruth);
  const ap = cocoAveragePrecision(preds, gts, opts.maxDets === undefined ? {} : { maxDets: opts.maxDets }).map;
  const nGt = gts.filter((g) => isValidBox(g.box)).length;
  return preds.length <= nGt ? ap : (ap * nGt) / preds.length;
}

export const weightedSumOptionsSchema = z
  .strictObject({
    /** A (pred, gt) pair is matched only when its IoU is at least this (default 0.5). */
    iouThreshold: z.number().gt(0).lte(1).optional(),
    /** Weight of position accuracy: Σ IoU of label-correct matches / |gt| (default 0.7). */
    alpha: z.number().min(0).optional(),
    /** Weight of label accuracy: label-correct matches / |gt| (default 0). */
    beta: z.number().min(0).optional(),
    /** Weight of completeness: 1 − (miss rate + false-alarm rate)/2 (default 0.3). */
    gamma: z.number().min(0).optional(),
    imageIndex,
  })
  .refine((o) => (o.alpha ?? 0.7) + (o.beta ?? 0) + (o.gamma ?? 0.3) > 0, {
    message: 'alpha + beta + gamma must be > 0',
  });
export type WeightedSumOptions = z.output<typeof weightedSumOptionsSchema>;

/** The parts of VLM-R1's detection_score, for tests and diagnostics. */
export interface DetectionScoreParts {
  score: number;
  position: number;
  label: number;
  completeness: number;
  matches: Array<{ pred: number; gt: number; iou: number; labelCorrect: boolean }>;
}

/**
 * VLM-R1 detection_score on parsed boxes: greedy max-IoU matching (ties: the lowest prediction index, then the
 * lowest ground-truth index), stopping when the best remaining IoU is below the threshold.
 */
export function detectionScore(preds: readonly ParsedBox[], gts: readonly ParsedBox[], opts: WeightedSumOptions = {}): DetectionScoreParts {
  const alpha = opts.alpha ?? 0.7;
  const beta = opts.beta ?? 0;
  const gamma = opts.gamma ?? 0.3;
  const thr = opts.iouThreshold ?? 0.5;
  if (gts.length === 0 || preds.length === 0) {
    const v = gts.length === 0 && preds.length === 0 ? 1 : 0;
    return { score: v, position: v, label: v, completeness: v, matches: [] };
  }
  // Sorting the qualifying pairs by (−IoU, pred, gt) and taking each whose ends are both free is the same as
  // repeatedly taking the maximum over the unmatched pairs, without the cubic loop.
  const pairs: Array<[number, number, number]> = [];
  preds.forEach((p, i) =>
    gts.forEach((g, j) => {
      const v = boxIou(p.box, g.box);
      if (v >= thr) pairs.push([v, i, j]);
    }),
  );
  pairs.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
  const usedP = new Uint8Array(preds.length);
  const usedG = new Uint8Array(gts.length);
  const matches: DetectionScoreParts['matches'] = [];
  for (const [v, i, j] of pairs) {
    if (usedP[i] || usedG[j]) continue;
    usedP[i] = 1;
    usedG[j] = 1;
    const labelCorrect = labelOf(preds[i] as ParsedBox).toLowerCase() === labelOf(gts[j] as ParsedBox).toLowerCase();
    matches.push({ pred: i, gt: j, iou: labelCorrect ? v : 0, labelCorrect });
  }
  const position = matches.reduce((s, m) => s + m.iou, 0) / gts.length;
  const label = matches.filter((m) => m.labelCorrect).length / gts.length;
  const missRate = (gts.length - matches.length) / gts.length;
  const falseAlarmRate = (preds.length - matches.length) / preds.length;
  const completeness = 1 - (missRate + falseAlarmRate) / 2;
  const score = (alpha * position + beta * label + gamma * completeness) / (alpha + beta + gamma);
  return { score, position, label, completeness, matches };
}

/** `weighted_sum` with validated options (VLM-R1's detection_score, with its "none" rule). */
export function weightedSumScore(sample: RewardSample, opts: WeightedSumOptions): number {
  const answer = extractAnswer(sample.completion);
  if (!answer) return 0;
  if (cleanAnswerText(groundTruthText(sample.groundTruth)) === 'none') return cleanAnswerText(answer) === 'none' ? 1 : 0;
  const preds = predictedBoxes(answer, sample, opts.imageIndex ?? 0);
  const gts = groundTruthBoxes(sample.groundTruth).filter((g) => isValidBox(g.box));
  return detectionScore(preds, gts, opts).score;
}

/** `all_match` score: VLM-R1 clean_text of the answer equals that of the ground truth (non-empty). */
export function allMatchScore(sample: RewardSample): number {
  const a = cleanAnswerText(extractAnswer(sample.completion));
  return a.length > 0 && a === cleanAnswerText(groundTruthText(sample.groundTruth)) ? 1 : 0;
}

const fixedMap = (name: string, which: 'map' | 'ap50', od: boolean) => (sample: RewardSample): number => {
  const o = readOptions(name, mapOptionsSchema, sample.options);
  return od ? odApScore(sample, o, which) : mapScore(sample, o);
};

/** `map`: COCO AP@[.5:.95] of the answer's `{bbox_2d, label}` list against the ground truth's. */
export const mapReward = fixedMap('map', 'map', false);
/** `od_ap`: COCO AP@[.5:.95] over the last `<answer>` span ("None" vs "None" → 1; no span → 0). */
export const odApReward = fixedMap('od_ap', 'map', true);
/** `od_ap50`: like od_ap at IoU 0.5. */
export const odAp50Reward = fixedMap('od_ap50', 'ap50', true);

/** `od_length`: od_ap × min(1, |gt| / |pred|) (VLM-R1 `odLength`). */
export function odLengthReward(sample: RewardSample): number {
  return odLengthScore(sample, readOptions('od_length', mapOptionsSchema, sample.options));
}

/** `weighted_sum`: VLM-R1 detection_score (position 0.7, label 0, completeness 0.3 at IoU 0.5). */
export function weightedSumReward(sample: RewardSample): number {
  return weightedSumScore(sample, readOptions('weighted_sum', weightedSumOptionsSchema, sample.options));
}

export const allMatchOptionsSchema = z.strictObject({});

/** `all_match`: VLM-R1 clean_text equality. */
export function allMatchReward(sample: RewardSample): number {
  readOptions('all_match', allMatchOptionsSchema, sample.options);
  return allMatchScore(sample);
}
