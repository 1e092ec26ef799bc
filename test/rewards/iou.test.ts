import { describe, expect, it } from 'vitest';

import { boxIou, groundTruthBoxes, parseBoxes, rescaleBox, rewardFunctions, type RewardSample } from '../../src/rewards/index.js';

/** Plain reference: count unit pixels covered by each box on an integer grid. */
function pixelIou(a: number[], b: number[]): number {
  let inter = 0;
  let union = 0;
  const [minX, maxX] = [Math.min(a[0]!, b[0]!), Math.max(a[2]!, b[2]!)];
  const [minY, maxY] = [Math.min(a[1]!, b[1]!), Math.max(a[3]!, b[3]!)];
  for (let x = minX; x < maxX; x++) {
    for (let y = minY; y < maxY; y++) {
      const inA = x >= a[0]! && x < a[2]! && y >= a[1]! && y < a[3]!;
      const inB = x >= b[0]! && x < b[2]! && y >= b[1]! && y < b[3]!;
      if (inA && inB) inter++;
      if (inA || inB) union++;
    }
  }
  return union === 0 ? 0 : inter / union;
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const wrap = (a: string) => `<think>looking at the image</think><answer>${a}</answer>`;
const iou = (answer: string, groundTruth: unknown, extra: Partial<RewardSample> = {}) =>
  rewardFunctions.iou({ completion: wrap(answer), groundTruth, ...extra });

describe('boxIou', () => {
  it('matches pixel counting on fresh random integer boxes', () => {
    const r = rng(Date.now());
    for (let t = 0; t < 300; t++) {
      const box = () => {
        const x1 = Math.floor(r() * 30);
        const y1 = Math.floor(r() * 30);
        return [x1, y1, x1 + 1 + Math.floor(r() * 20), y1 + 1 + Math.floor(r() * 20)];
      };
      const a = box();
      const b = box();
      expect(boxIou(a, b)).toBeCloseTo(pixelIou(a, b), 12);
    }
  });

  it('handles identical, disjoint, touching, contained and 1-pixel overlaps', () => {
    expect(boxIou([0, 0, 10, 10], [0, 0, 10, 10])).toBe(1);
    expect(boxIou([0, 0, 10, 10], [20, 20, 30, 30])).toBe(0);
    expect(boxIou([0, 0, 10, 10], [10, 0, 20, 10])).toBe(0);
    expect(boxIou([0, 0, 10, 10], [2, 2, 7, 7])).toBeCloseTo(25 / 100, 12);
    expect(boxIou([0, 0, 10, 10], [9, 0, 19, 10])).toBeCloseTo(10 / 190, 12); // peers' formula gives 0 here
    expect(boxIou([0.5, 0.5, 1.5, 1.5], [1, 1, 2, 2])).toBeCloseTo(0.25 / 1.75, 12);
  });

  it('gives 0 for degenerate or inverted boxes instead of dividing by zero', () => {
    expect(boxIou([5, 5, 5, 5], [5, 5, 5, 5])).toBe(0);
    expect(boxIou([10, 10, 0, 0], [0, 0, 10, 10])).toBe(0);
    expect(boxIou([0, 0, NaN, 10], [0, 0, 10, 10])).toBe(0);
  });
});

describe('box parsing', () => {
  it('reads Qwen2.5-VL JSON (fenced, nested, single quotes, trailing commas) with labels', () => {
    expect(parseBoxes('```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}, {"bbox_2d": [5, 6, 7, 8], "label": "dog"}]\n```')).toEqual([
      { box: [1, 2, 3, 4], label: 'cat' },
      { box: [5, 6, 7, 8], label: 'dog' },
    ]);
    expect(parseBoxes(`{'bbox_2d': [1.5, 2, 3, 4], 'label': 'x',}`)).toEqual([{ box: [1.5, 2, 3, 4], label: 'x' }]);
    expect(parseBoxes('{"objects": [{"bbox": [1, 2, 3, 4]}]}')).toEqual([{ box: [1, 2, 3, 4] }]);
    // Truncated JSON (no closing brace): the bare-list fallback still finds the box.
    expect(parseBoxes('[{"bbox_2d": [1, 2, 3, 4], "label": "a"')).toEqual([{ box: [1, 2, 3, 4] }]);
    expect(parseBoxes('{"bbox_2d": [1, 2, 3, 4], "label": "cat" oops}')).toEqual([{ box: [1, 2, 3, 4], label: 'cat' }]);
  });

  it('reads bare [x1, y1, x2, y2] lists with integers, decimals and signs', () => {
    expect(parseBoxes('box [10, 20, 30, 40] and [1.5,2.25, 3e1, -4]')).toEqual([
      { box: [10, 20, 30, 40] },
      { box: [1.5, 2.25, 30, -4] },
    ]);
    expect(parseBoxes('[1, 2, 3]')).toEqual([]);
    expect(parseBoxes('')).toEqual([]);
  });

  it('reads ground truths without eval()', () => {
    expect(groundTruthBoxes([1, 2, 3, 4])).toEqual([{ box: [1, 2, 3, 4] }]);
    expect(groundTruthBoxes([[1, 2, 3, 4], [5, 6, 7, 8]])).toHaveLength(2);
    expect(groundTruthBoxes('<answer>[1, 2, 3, 4]</answer>')).toEqual([{ box: [1, 2, 3, 4] }]);
    expect(groundTruthBoxes({ bbox_2d: [1, 2, 3, 4], label: 'cat' })).toEqual([{ box: [1, 2, 3, 4], label: 'cat' }]);
    expect(groundTruthBoxes('__import__("os").system("echo hi")')).toEqual([]);
    expect(groundTruthBoxes(null)).toEqual([]);
  });
});

describe('iou reward', () => {
  it('scores identical, disjoint and partial boxes', () => {
    expect(iou('[0, 0, 10, 10]', [0, 0, 10, 10])).toBe(1);
    expect(iou('[0, 0, 10, 10]', [20, 20, 30, 30])).toBe(0);
    expect(iou('[0, 0, 10, 10]', [5, 0, 15, 10])).toBeCloseTo(1 / 3, 12);
    expect(iou('[{"bbox_2d": [0, 0, 10, 10], "label": "cat"}]', '[0, 0, 10, 10]')).toBe(1);
    expect(iou('[10.0, 20.5, 30.0, 40.5]', [10, 20.5, 30, 40.5])).toBe(1);
  });

  it('uses only the first predicted box and the best ground-truth box', () => {
    expect(iou('[50, 50, 60, 60] [0, 0, 10, 10]', [0, 0, 10, 10])).toBe(0);
    expect(iou('[0, 0, 10, 10]', [[50, 50, 60, 60], [0, 0, 10, 10]])).toBe(1);
  });

  it('reads the last <answer> span and gives 0 without a box or with an empty answer', () => {
    expect(rewardFunctions.iou({ completion: '<answer>[50,50,60,60]</answer><answer>[0,0,10,10]</answer>', groundTruth: [0, 0, 10, 10] })).toBe(1);
    expect(rewardFunctions.iou({ completion: '<think>[0,0,10,10]</think><answer></answer>', groundTruth: [0, 0, 10, 10] })).toBe(0);
    expect(iou('the cat', [0, 0, 10, 10])).toBe(0);
    expect(iou('[10, 10, 0, 0]', [0, 0, 10, 10])).toBe(0);
    expect(iou('[0, 0, 10, 10]', 'no box here')).toBe(0);
  });

  it('rescales the predicted box from the model-input frame to the original image', () => {
    // The model saw a 500×400 resize of a 1000×1200 image: x scales by 2, y by 3.
    const sizes = { images: [{ width: 1000, height: 1200 }], inputImages: [{ width: 500, height: 400 }] };
    expect(iou('[50, 40, 100, 80]', [100, 120, 200, 240], sizes)).toBeCloseTo(1, 12);
    expect(iou('[50, 40, 100, 80]', [50, 40, 100, 80], sizes)).toBeCloseTo(pixelIou([100, 120, 200, 240], [50, 40, 100, 80]), 12);
    // Without both sizes, no rescaling.
    expect(iou('[50, 40, 100, 80]', [50, 40, 100, 80], { images: sizes.images })).toBe(1);
    expect(rescaleBox([1, 2, 3, 4], { width: 10, height: 10 }, { width: 20, height: 5 })).toEqual([2, 1, 6, 2]);
  });

  it('picks the image with options.imageIndex and rejects malformed sizes', () => {
    const sizes = {
      images: [{ width: 100, height: 100 }, { width: 200, height: 200 }],
      inputImages: [{ width: 100, height: 100 }, { width: 100, height: 100 }],
    };
    expect(iou('[0, 0, 10, 10]', [0, 0, 20, 20], { ...sizes, options: { imageIndex: 1 } })).toBe(1);
    expect(iou('[0, 0, 10, 10]', [0, 0, 20, 20], sizes)).toBeCloseTo(0.25, 12);
    expect(() => iou('[0, 0, 10, 10]', [0, 0, 10, 10], { images: [{ width: 0, height: 10 }], inputImages: [{ width: 10, height: 10 }] })).toThrow(
      /images\[0\] must be \{ width, height \}/,
    );
  });

  it('thresholds at options.threshold (≥) and iou50 at 0.5', () => {
    // IoU exactly 0.5: [0,0,10,10] vs [0,0,10,20].
    expect(iou('[0, 0, 10, 10]', [0, 0, 10, 20])).toBeCloseTo(0.5, 12);
    expect(iou('[0, 0, 10, 10]', [0, 0, 10, 20], { options: { threshold: 0.5 } })).toBe(1);
    expect(iou('[0, 0, 10, 10]', [0, 0, 10, 21], { options: { threshold: 0.5 } })).toBe(0);
    expect(rewardFunctions.iou50({ completion: wrap('[0, 0, 10, 10]'), groundTruth: [0, 0, 10, 20] })).toBe(1);
    expect(rewardFunctions.iou50({ completion: wrap('[0, 0, 10, 10]'), groundTruth: [0, 0, 10, 30] })).toBe(0);
    expect(iou('[0, 0, 10, 10]', [0, 0, 10, 30], { options: { threshold: 0.3 } })).toBe(1);
    expect(() => iou('[0,0,1,1]', [0, 0, 1, 1], { options: { threshold: 1.5 } })).toThrow(/threshold/);
    expect(() => iou('[0,0,1,1]', [0, 0, 1, 1], { options: { treshold: 0.5 } })).toThrow(/Did you mean 'threshold'/);
  });
});
