/**
 * IoU reward for referring-expression grounding (REC): one predicted box against the ground-truth box(es).
 *
 * Peers (peers.md §b.0, §b.3, per-system notes): VLM-R1 (Qwen) `iou_reward` — continuous IoU since commit
 * 5faf4b1, predicted box rescaled by (orig_w / (grid_w·14), orig_h / (grid_h·14)) since 00755a2; Ocean-R1 and
 * OpenV-R1 `iou_bin` — 1 if IoU > 0.5 else 0, no rescaling. Their IoU is
 * `inter = (min(x2)-1 - max(x1) + 1)·(…)` only when `inter_x1 < inter_x2` (after subtracting 1 from x2), over
 * areas without the +1.
 *
 * Our rule (deliberate differences):
 * - Standard area formula with exclusive corners: inter = max(0, min(ax2,bx2) − max(ax1,bx1)) ·
 *   max(0, min(ay2,by2) − max(ay1,by1)); IoU = inter / (areaA + areaB − inter). For integer boxes this equals the
 *   peers' value except that a 1-pixel-wide overlap counts (theirs gives 0), and degenerate boxes give 0 instead of
 *   a ZeroDivisionError or a negative area.
 * - The predicted box is the FIRST box in the compared text (answer.ts: last `<answer>` span; boxes.ts: JSON
 *   `bbox_2d` or `[x1,y1,x2,y2]`, decimals allowed). Writing many boxes does not help: only the first counts.
 *   When the ground truth holds several boxes, the best IoU against any of them counts.
 * - Rescaling: when both `images[i]` (original) and `inputImages[i]` (what the model saw) are given, the
 *   predicted box is mapped x·(W_orig/W_in), y·(H_orig/H_in) before comparing with the ground truth, which is
 *   in original pixels. With only one of them, no rescaling. i = options.imageIndex (default 0).
 * - options.threshold t ∈ (0, 1]: reward 1 when IoU ≥ t else 0 (the peers' binary form uses > 0.5; `iou50`
 *   uses ≥ 0.5). Without it: the continuous IoU.
 */
import { z } from 'zod';

import { extractAnswer } from './answer.js';
import { type Box, groundTruthBoxes, isValidBox, parseBoxes } from './boxes.js';
import { RewardError } from './errors.js';
import { readOptions } from './options.js';
import type { ImageSize, RewardSample } from './types.js';

/** Intersection over union of two boxes with the standard area formula; 0 when either box is invalid. */
export function boxIou(a: readonly number[], b: readonly number[]): number {
  if (!isValidBox(a) || !isValidBox(b)) return 0;
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = iw > 0 && ih > 0 ? iw * ih : 0;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  if (!(union > 0)) return 0;
  return Math.min(1, Math.max(0, inter / union));
}

/** `size` as an ImageSize, or a RewardError naming `field` when it is not positive finite width/height. */
export function checkSize(size: unknown, field: string): ImageSize {
  const s = size as Partial<ImageSize> | undefined;
  if (
    !s ||
    typeof s.width !== 'number' ||
    typeof s.height !== 'number' ||
    !(s.width > 0) ||
    !(s.height > 0) ||
    !Number.isFinite(s.width) ||
    !Number.isFinite(s.height)
  ) {
    throw new RewardError(
      'ERR_REWARD_BAD_SAMPLE',
      `${field} must be { width, height } with positive finite numbers, got ${JSON.stringify(size)}.`,
      'Pass the original image sizes in `images` and the resized sizes the model saw in `inputImages`.',
    );
  }
  return s as ImageSize;
}

/** Maps a box from the `from` frame (model input) to the `to` frame (original image). */
export function rescaleBox(box: Box, from: ImageSize, to: ImageSize): Box {
  const sx = to.width / from.width;
  const sy = to.height / from.height;
  return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy];
}

export const iouOptionsSchema = z.strictObject({
  /** Binary reward: 1 when IoU ≥ threshold. Continuous IoU when absent. */
  threshold: z.number().gt(0).lte(1).optional(),
  /** Which image the box refers to (default 0). */
  imageIndex: z.number().int().min(0).optional(),
});
export type IouOptions = z.output<typeof iouOptionsSchema>;

/** The IoU reward for a sample with already-validated options. */
export function iouScore(sample: RewardSample, opts: IouOptions): number {
  const answer = extractAnswer(sample.completion);
  if (!answer) return 0;
  const first = parseBoxes(answer)[0];
  if (!first || !isValidBox(first.box)) return 0;
  const truths = groundTruthBoxes(sample.groundTruth).filter((b) => isValidBox(b.box));
  if (truths.length === 0) return 0;
  let pred = first.box;
  const i = opts.imageIndex ?? 0;
  const original = sample.images?.[i];
  const input = sample.inputImages?.[i];
  if (original !== undefined && input !== undefined) {
    pred = rescaleBox(pred, checkSize(input, `inputImages[${i}]`), checkSize(original, `images[${i}]`));
  }
  let best = 0;
  for (const t of truths) best = Math.max(best, boxIou(pred, t.box));
  if (opts.threshold !== undefined) return best >= opts.threshold ? 1 : 0;
  return best;
}

/** `iou`: continuous IoU of the first predicted box, or binary with options.threshold. */
export function iou(sample: RewardSample): number {
  return iouScore(sample, readOptions('iou', iouOptionsSchema, sample.options));
}

export const iou50OptionsSchema = z.strictObject({ imageIndex: z.number().int().min(0).optional() });

/** `iou50`: 1 when IoU ≥ 0.5 else 0 (RefCOCO Acc@0.5; the peers' `iou_bin` uses > 0.5). */
export function iou50(sample: RewardSample): number {
  const o = readOptions('iou50', iou50OptionsSchema, sample.options);
  return iouScore(sample, { ...o, threshold: 0.5 });
}
