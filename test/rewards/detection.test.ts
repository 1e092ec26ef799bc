import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  boxIou,
  cleanAnswerText,
  COCO_IOU_THRESHOLDS,
  COCO_RECALL_THRESHOLDS,
  cocoAveragePrecision,
  createRewardScorer,
  detectionScore,
  numpyLinspace,
  RewardError,
  rewardFunctions,
  type ParsedBox,
  type RewardSample,
} from '../../src/rewards/index.js';

type Obj = { bbox_2d: number[]; label?: string };
const json = (objs: Obj[]) => '```json\n' + JSON.stringify(objs) + '\n```';
const answer = (objs: Obj[]) => `<think>I see them</think><answer>${json(objs)}</answer>`;
const gtOf = (objs: Obj[]) => `<answer> ${json(objs)} </answer>`;
const sample = (pred: Obj[], gt: Obj[], extra: Partial<RewardSample> = {}): RewardSample => ({ completion: answer(pred), groundTruth: gtOf(gt), ...extra });
const P = (objs: Obj[]): ParsedBox[] => objs.map((o) => (o.label === undefined ? { box: o.bbox_2d as ParsedBox['box'] } : { box: o.bbox_2d as ParsedBox['box'], label: o.label }));

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const A = [0, 0, 100, 100];
const B = [200, 200, 300, 300];
const A60 = [0, 0, 60, 100]; // IoU with A = 6000 / 10000 = 0.6 exactly

/**
 * Plain reference for COCO AP (one image), written from the definitions rather than the pycocotools loop:
 * interpolated precision p(r) = max{precision_i : recall_i ≥ r} (0 when no detection reaches r), averaged over
 * the 101 recall points, the 10 IoU thresholds and the labels that have ground truth.
 */
function referenceAp(preds: ParsedBox[], gts: ParsedBox[]): { map: number; ap50: number } {
  const labels = [...new Set(gts.map((g) => (g.label ?? '').trim()))];
  let sum = 0;
  let sum50 = 0;
  for (const label of labels) {
    const G = gts.filter((g) => (g.label ?? '').trim() === label).map((g) => g.box);
    const D = preds.filter((p) => (p.label ?? '').trim() === label).slice(0, 100).map((p) => p.box);
    COCO_IOU_THRESHOLDS.forEach((t, ti) => {
      const used = new Set<number>();
      const points: Array<{ recall: number; precision: number }> = [];
      let tp = 0;
      D.forEach((d, k) => {
        // The unmatched ground truth with the highest IoU ≥ t; on ties the later one (COCO's `<` comparison).
        let m = -1;
        let best = -1;
        G.forEach((g, j) => {
          const v = boxIou(d, g);
          if (!used.has(j) && v >= Math.min(t, 1 - 1e-10) && v >= best) {
            best = v;
            m = j;
          }
        });
        if (m >= 0) {
          used.add(m);
          tp++;
        }
        points.push({ recall: tp / G.length, precision: tp / (k + 1) });
      });
      let ap = 0;
      for (const r of COCO_RECALL_THRESHOLDS) {
        const reach = points.filter((p) => p.recall >= r);
        ap += reach.length ? Math.max(...reach.map((p) => p.precision)) : 0;
      }
      ap /= COCO_RECALL_THRESHOLDS.length;
      sum += ap;
      if (ti === 0) sum50 += ap;
    });
  }
  return { map: sum / (labels.length * COCO_IOU_THRESHOLDS.length), ap50: sum50 / labels.length };
}

describe('COCO thresholds', () => {
  it('reproduce numpy.linspace bit for bit', () => {
    // Values printed by numpy 1.24: np.linspace(.5, .95, 10) and the entries of np.linspace(0, 1, 101) ≠ i/100.
    expect(COCO_IOU_THRESHOLDS).toEqual([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95]);
    const odd = COCO_RECALL_THRESHOLDS.map((v, i) => [i, v] as const).filter(([i, v]) => v !== i / 100);
    expect(odd).toEqual([
      [35, 0.35000000000000003], [41, 0.41000000000000003], [47, 0.47000000000000003], [57, 0.5700000000000001],
      [69, 0.6900000000000001], [70, 0.7000000000000001], [82, 0.8200000000000001], [83, 0.8300000000000001],
      [94, 0.9400000000000001], [95, 0.9500000000000001],
    ]);
    expect(numpyLinspace(2, 3, 1)).toEqual([2]);
    expect(() => numpyLinspace(0, 1, 0)).toThrow(RangeError);
  });
});

describe('cocoAveragePrecision (hand-computed)', () => {
  it('a perfect answer scores exactly 1', () => {
    const r = cocoAveragePrecision(P([{ bbox_2d: A, label: 'dog' }]), P([{ bbox_2d: A, label: 'dog' }]));
    expect(r.map).toBe(1);
    expect(r.ap50).toBe(1);
  });

  it('one box at IoU 0.6 hits thresholds .50, .55, .60: AP@[.5:.95] = 3/10, AP50 = 1', () => {
    expect(boxIou(A60, A)).toBe(0.6);
    const r = cocoAveragePrecision(P([{ bbox_2d: A60, label: 'dog' }]), P([{ bbox_2d: A, label: 'dog' }]));
    expect(r.map).toBeCloseTo(0.3, 15);
    expect(r.ap50).toBe(1);
    expect(r.perCategory.get('dog')).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('duplicates are false positives: [A, A, B] vs {A, B} gives (51·1 + 50·2/3)/101 = 253/303', () => {
    // tp = [1,1,2], fp = [0,1,1] → recall [.5,.5,1], precision [1,.5,2/3] → interpolated [1, 2/3, 2/3];
    // recall points 0.00…0.50 (51 of them) read precision 1, 0.51…1.00 (50) read 2/3.
    const gts = P([{ bbox_2d: A, label: 'dog' }, { bbox_2d: B, label: 'dog' }]);
    const r = cocoAveragePrecision(P([{ bbox_2d: A, label: 'dog' }, { bbox_2d: A, label: 'dog' }, { bbox_2d: B, label: 'dog' }]), gts);
    expect(r.map).toBeCloseTo(253 / 303, 14);
    expect(r.ap50).toBeCloseTo(253 / 303, 14);
    // A duplicate AFTER every gt is found costs nothing (COCO's interpolation), one BEFORE costs half.
    expect(cocoAveragePrecision(P([{ bbox_2d: A }, { bbox_2d: A }]), P([{ bbox_2d: A }])).map).toBe(1);
    expect(cocoAveragePrecision(P([{ bbox_2d: B }, { bbox_2d: A }]), P([{ bbox_2d: A }])).map).toBeCloseTo(0.5, 15);
  });

  it('averages over categories that have ground truth', () => {
    const gts = P([{ bbox_2d: A, label: 'cat' }, { bbox_2d: B, label: 'dog' }]);
    const preds = P([{ bbox_2d: A60, label: 'cat' }, { bbox_2d: B, label: 'dog' }, { bbox_2d: [5, 5, 9, 9], label: 'zebra' }]);
    const r = cocoAveragePrecision(preds, gts);
    expect(r.map).toBeCloseTo((0.3 + 1) / 2, 15); // the zebra has no ground truth: it does not count
    expect(r.ap50).toBe(1);
  });

  it('a wrong label scores 0; empty sides follow VLM-R1', () => {
    expect(cocoAveragePrecision(P([{ bbox_2d: A, label: 'cat' }]), P([{ bbox_2d: A, label: 'dog' }])).map).toBe(0);
    expect(cocoAveragePrecision([], []).map).toBe(1);
    expect(cocoAveragePrecision(P([{ bbox_2d: A }]), []).map).toBe(0);
    expect(cocoAveragePrecision([], P([{ bbox_2d: A }])).map).toBe(0);
    // An inverted prediction is a false positive (COCO would silently ignore it because its area is negative).
    expect(cocoAveragePrecision(P([{ bbox_2d: [100, 100, 0, 0] }, { bbox_2d: A }]), P([{ bbox_2d: A }])).map).toBeCloseTo(0.5, 15);
  });

  it('keeps at most maxDets detections per category, in the written order', () => {
    const gts = P([{ bbox_2d: A }]);
    const preds = P([{ bbox_2d: B }, { bbox_2d: A }]);
    expect(cocoAveragePrecision(preds, gts, { maxDets: 1 }).map).toBe(0);
    expect(cocoAveragePrecision(preds, gts, { maxDets: 2 }).map).toBeCloseTo(0.5, 15);
  });
});

describe('cocoAveragePrecision against references', () => {
  it('equals the plain reference on fresh random inputs', () => {
    const seed = Date.now();
    const r = rng(seed);
    const labels = ['a', 'b', 'c'];
    const box = (near?: number[]): number[] => {
      if (near && r() < 0.75) {
        const j = () => Math.floor(r() * 21) - 10;
        const b = [near[0]! + j(), near[1]! + j(), near[2]! + j(), near[3]! + j()];
        return r() < 0.05 ? [b[2]!, b[3]!, b[0]!, b[1]!] : b; // sometimes invalid
      }
      const x = Math.floor(r() * 150);
      const y = Math.floor(r() * 150);
      return [x, y, x + 1 + Math.floor(r() * 60), y + 1 + Math.floor(r() * 60)];
    };
    for (let it = 0; it < 200; it++) {
      const gts: ParsedBox[] = Array.from({ length: 1 + Math.floor(r() * 5) }, () => ({ box: box() as ParsedBox['box'], label: labels[Math.floor(r() * 3)]! }));
      const preds: ParsedBox[] = Array.from({ length: 1 + Math.floor(r() * 7) }, () => {
        const g = gts[Math.floor(r() * gts.length)]!;
        return { box: box(g.box) as ParsedBox['box'], label: r() < 0.8 ? g.label! : labels[Math.floor(r() * 3)]! };
      });
      const got = cocoAveragePrecision(preds, gts);
      const want = referenceAp(preds, gts);
      if (Math.abs(got.map - want.map) > 1e-12 || Math.abs(got.ap50 - want.ap50) > 1e-12) {
        throw new Error(`seed ${seed}: ${JSON.stringify({ preds, gts })} gave ${got.map}/${got.ap50}, reference ${want.map}/${want.ap50}`);
      }
    }
  });

  it("matches pycocotools' values on the stored cases (within its 2.2e-16 precision offset)", () => {
    const file = join(import.meta.dirname, 'fixtures', 'coco-map-cases.json');
    const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: Array<{ preds: Obj[]; gts: Obj[]; map: number; ap50: number }> };
    expect(cases.length).toBeGreaterThanOrEqual(50);
    for (const c of cases) {
      const r = cocoAveragePrecision(P(c.preds), P(c.gts));
      expect(Math.abs(r.map - c.map), JSON.stringify(c)).toBeLessThan(1e-12);
      expect(Math.abs(r.ap50 - c.ap50), JSON.stringify(c)).toBeLessThan(1e-12);
    }
  });
});

describe('map / od_ap / od_ap50 / od_length rewards', () => {
  it('score the answer against the ground truth text', () => {
    const gt = [{ bbox_2d: A, label: 'dog' }];
    expect(rewardFunctions.map(sample(gt, gt))).toBe(1);
    expect(rewardFunctions.map(sample([{ bbox_2d: A60, label: 'dog' }], gt))).toBeCloseTo(0.3, 15);
    expect(rewardFunctions.od_ap(sample([{ bbox_2d: A60, label: 'dog' }], gt))).toBeCloseTo(0.3, 15);
    expect(rewardFunctions.od_ap50(sample([{ bbox_2d: A60, label: 'dog' }], gt))).toBe(1);
    expect(rewardFunctions.map(sample([{ bbox_2d: A, label: 'cat' }], gt))).toBe(0);
    // The ground truth may also be a parsed list.
    expect(rewardFunctions.map({ completion: answer(gt), groundTruth: gt })).toBe(1);
  });

  it('malformed or missing JSON scores 0; an empty answer never matches', () => {
    const gt = gtOf([{ bbox_2d: A, label: 'dog' }]);
    expect(rewardFunctions.map({ completion: '<answer>```json\n[{"bbox_2d": [0, 0, 10', groundTruth: gt })).toBe(0);
    expect(rewardFunctions.map({ completion: '<answer>[{"bbox_2d": "here", "label": "dog"}]</answer>', groundTruth: gt })).toBe(0);
    expect(rewardFunctions.od_ap({ completion: '<answer>a dog</answer>', groundTruth: gt })).toBe(0);
    expect(rewardFunctions.map({ completion: '<answer></answer>', groundTruth: '<answer>None</answer>' })).toBe(0);
    expect(rewardFunctions.od_ap({ completion: '<answer> </answer>', groundTruth: '<answer>None</answer>' })).toBe(0);
  });

  it('od_* need an <answer> span and take the last one; None vs None scores 1', () => {
    const gt = [{ bbox_2d: A, label: 'dog' }];
    expect(rewardFunctions.od_ap({ completion: json(gt), groundTruth: gtOf(gt) })).toBe(0);
    expect(rewardFunctions.map({ completion: json(gt), groundTruth: gtOf(gt) })).toBe(1); // map reads the bare text
    const twoSpans = `<answer>${json([{ bbox_2d: B, label: 'dog' }])}</answer> no wait <answer>${json(gt)}</answer>`;
    expect(rewardFunctions.od_ap({ completion: twoSpans, groundTruth: gtOf(gt) })).toBe(1);
    expect(rewardFunctions.od_ap({ completion: '<answer>None</answer>', groundTruth: '<answer> None </answer>' })).toBe(1);
    expect(rewardFunctions.od_length({ completion: '<answer>None</answer>', groundTruth: 'None' })).toBe(1);
    expect(rewardFunctions.od_ap({ completion: '<answer>None</answer>', groundTruth: gtOf(gt) })).toBe(0);
    expect(rewardFunctions.od_ap({ completion: answer(gt), groundTruth: '<answer>None</answer>' })).toBe(0);
  });

  it('od_length multiplies by min(1, |gt|/|pred|)', () => {
    const gt = [{ bbox_2d: A, label: 'dog' }];
    // Two predictions, the first perfect: AP 1 (the extra one comes after the hit), × 1/2.
    expect(rewardFunctions.od_length(sample([{ bbox_2d: A, label: 'dog' }, { bbox_2d: B, label: 'dog' }], gt))).toBeCloseTo(0.5, 15);
    expect(rewardFunctions.odLength(sample([{ bbox_2d: A, label: 'dog' }, { bbox_2d: B, label: 'dog' }], gt))).toBeCloseTo(0.5, 15);
    expect(rewardFunctions.od_length(sample([{ bbox_2d: A60, label: 'dog' }], gt))).toBeCloseTo(0.3, 15);
  });

  it('rescales predicted boxes from the model-input frame to the original image', () => {
    const gt = [{ bbox_2d: [0, 0, 200, 100], label: 'dog' }];
    const pred = [{ bbox_2d: [0, 0, 100, 50], label: 'dog' }]; // in a 500×250 input of a 1000×500 image
    expect(rewardFunctions.map(sample(pred, gt))).toBe(0);
    const sizes = { images: [{ width: 1000, height: 500 }], inputImages: [{ width: 500, height: 250 }] };
    expect(rewardFunctions.map(sample(pred, gt, sizes))).toBe(1);
    expect(rewardFunctions.od_ap(sample(pred, gt, sizes))).toBe(1);
    expect(rewardFunctions.weighted_sum(sample(pred, gt, sizes))).toBeCloseTo(1, 15);
    // Only one of the two sizes: no rescaling.
    expect(rewardFunctions.map(sample(pred, gt, { images: sizes.images }))).toBe(0);
    // options.imageIndex picks the image.
    const two = { images: [{ width: 10, height: 10 }, sizes.images[0]!], inputImages: [{ width: 10, height: 10 }, sizes.inputImages[0]!] };
    expect(rewardFunctions.map(sample(pred, gt, { ...two, options: { imageIndex: 1 } }))).toBe(1);
    expect(() => rewardFunctions.map(sample(pred, gt, { images: [{ width: 0, height: 5 }], inputImages: sizes.inputImages }))).toThrow(RewardError);
  });
});

describe('weighted_sum (VLM-R1 detection_score)', () => {
  it('matches the hand-computed score', () => {
    // Pairs ≥ 0.5: (B,B) IoU 1 then (A',A) IoU 0.8; C is a false alarm.
    // position (1 + 0.8)/2 = 0.9, completeness 1 − (0 + 1/3)/2 = 5/6 → 0.7·0.9 + 0.3·5/6 = 0.88.
    const A80 = [0, 0, 80, 100];
    const gt = [{ bbox_2d: A, label: 'dog' }, { bbox_2d: B, label: 'cat' }];
    const pred = [{ bbox_2d: A80, label: 'dog' }, { bbox_2d: [400, 400, 450, 450], label: 'dog' }, { bbox_2d: B, label: 'Cat' }];
    expect(rewardFunctions.weighted_sum(sample(pred, gt))).toBeCloseTo(0.88, 14);
    const parts = detectionScore(P(pred), P(gt));
    expect(parts.matches).toEqual([
      { pred: 2, gt: 1, iou: 1, labelCorrect: true },
      { pred: 0, gt: 0, iou: 0.8, labelCorrect: true },
    ]);
    // A wrong label keeps the match (completeness) but earns no position credit.
    const wrong = [{ bbox_2d: A80, label: 'wolf' }, { bbox_2d: B, label: 'cat' }];
    expect(rewardFunctions.weighted_sum(sample(wrong, gt))).toBeCloseTo(0.7 * 0.5 + 0.3 * 1, 14);
    // β weights label accuracy; the threshold is an option.
    expect(rewardFunctions.weighted_sum(sample(wrong, gt, { options: { alpha: 0, beta: 1, gamma: 0 } }))).toBeCloseTo(0.5, 14);
    expect(rewardFunctions.weighted_sum(sample([{ bbox_2d: A60, label: 'dog' }], [gt[0]!], { options: { iouThreshold: 0.7 } }))).toBeCloseTo(0.3 * 0, 14);
    expect(rewardFunctions.weighted_sum(sample([{ bbox_2d: A60, label: 'dog' }], [gt[0]!]))).toBeCloseTo(0.7 * 0.6 + 0.3, 14);
  });

  it('handles "none" and empty lists like VLM-R1', () => {
    expect(rewardFunctions.weighted_sum({ completion: '<answer>None.</answer>', groundTruth: '<answer> none </answer>' })).toBe(1);
    expect(rewardFunctions.weighted_sum({ completion: answer([{ bbox_2d: A }]), groundTruth: 'None' })).toBe(0);
    expect(rewardFunctions.weighted_sum({ completion: '<answer>nothing</answer>', groundTruth: '<answer>```json\n[]\n```</answer>' })).toBe(1);
    expect(rewardFunctions.weighted_sum({ completion: '<answer>nothing</answer>', groundTruth: gtOf([{ bbox_2d: A }]) })).toBe(0);
  });

  it('greedy matching equals the plain cubic loop on fresh random inputs', () => {
    const seed = Date.now();
    const r = rng(seed);
    const cubic = (preds: ParsedBox[], gts: ParsedBox[]) => {
      const up = preds.map((_, i) => i);
      const ug = gts.map((_, j) => j);
      let pos = 0;
      let matched = 0;
      while (up.length && ug.length) {
        let best = -1, bi = -1, bj = -1;
        for (const i of up) for (const j of ug) {
          const v = boxIou(preds[i]!.box, gts[j]!.box);
          if (v > best) [best, bi, bj] = [v, i, j];
        }
        if (best < 0.5) break;
        if ((preds[bi]!.label ?? '').toLowerCase() === (gts[bj]!.label ?? '').toLowerCase()) pos += best;
        matched++;
        up.splice(up.indexOf(bi), 1);
        ug.splice(ug.indexOf(bj), 1);
      }
      const completeness = 1 - ((gts.length - matched) / gts.length + (preds.length - matched) / preds.length) / 2;
      return 0.7 * (pos / gts.length) + 0.3 * completeness;
    };
    for (let it = 0; it < 300; it++) {
      const q = () => Math.floor(r() * 6) * 10; // coarse grid: many ties
      const mk = (): ParsedBox => {
        const x = q(), y = q();
        return { box: [x, y, x + 10 + q(), y + 10 + q()], label: r() < 0.5 ? 'a' : 'b' };
      };
      const gts = Array.from({ length: 1 + Math.floor(r() * 4) }, mk);
      const preds = Array.from({ length: 1 + Math.floor(r() * 5) }, mk);
      const got = detectionScore(preds, gts).score;
      const want = cubic(preds, gts);
      if (Math.abs(got - want) > 1e-12) throw new Error(`seed ${seed}: ${JSON.stringify({ preds, gts })}: ${got} vs ${want}`);
    }
  });
});

describe('all_match', () => {
  it("is VLM-R1's clean_text equality", () => {
    expect(cleanAnswerText('  The Cat.\nsat \nhere...  ')).toBe('the cat. sat here');
    expect(rewardFunctions.all_match({ completion: '<answer>Paris.</answer>', groundTruth: '<answer> paris </answer>' })).toBe(1);
    expect(rewardFunctions.all_match({ completion: '<answer>the\ncat</answer>', groundTruth: 'the cat' })).toBe(1);
    expect(rewardFunctions.all_match({ completion: '<answer>the cat</answer>', groundTruth: 'the  cat' })).toBe(0);
    expect(rewardFunctions.all_match({ completion: '<answer>...</answer>', groundTruth: '' })).toBe(0);
    expect(rewardFunctions.all_match({ completion: '<think>Paris</think>', groundTruth: 'Paris' })).toBe(0);
  });
});

describe('registration', () => {
  it('per-row accuracy methods dispatch to the detection rewards', () => {
    const gt = [{ bbox_2d: A, label: 'dog' }];
    const s = (m: string) => rewardFunctions.accuracy({ ...sample([{ bbox_2d: A60, label: 'dog' }], gt), row: { accu_reward_method: m } });
    expect(s('map')).toBeCloseTo(0.3, 15);
    expect(s('od_ap')).toBeCloseTo(0.3, 15);
    expect(s('od_ap50')).toBe(1);
    expect(s('odLength')).toBeCloseTo(0.3, 15);
    expect(s('weighted_sum')).toBeCloseTo(0.7 * 0.6 + 0.3, 14);
  });

  it('validates options when the scorer is built', () => {
    expect(() => createRewardScorer([{ name: 'weighted_sum', options: { alpha: -1 } }])).toThrow(/alpha/);
    expect(() => createRewardScorer([{ name: 'weighted_sum', options: { alpha: 0, gamma: 0 } }])).toThrow(/alpha \+ beta \+ gamma/);
    expect(() => createRewardScorer([{ name: 'map', options: { maxDet: 5 } }])).toThrow(/Did you mean 'maxDets'/);
    expect(() => createRewardScorer([{ name: 'od_ap', options: { maxDets: 10 } }, 'od_length', 'all_match'])).not.toThrow();
  });

  it('is fast on a completion with thousands of boxes', () => {
    const many = Array.from({ length: 3000 }, (_, i) => ({ bbox_2d: [i % 500, i % 300, (i % 500) + 20, (i % 300) + 20], label: 'dog' }));
    const gt = Array.from({ length: 30 }, (_, i) => ({ bbox_2d: [i * 10, i * 5, i * 10 + 20, i * 5 + 20], label: 'dog' }));
    const t0 = Date.now();
    for (const name of ['map', 'od_ap', 'od_length', 'weighted_sum'] as const) {
      const v = rewardFunctions[name](sample(many, gt));
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
