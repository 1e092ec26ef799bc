// Scene sampling of the counting task: the PRNG, the A/B split of colour×shape pairs, answers equal to what is
// placed, geometry (objects inside the image, centres visible, overlaps present), and option errors.
import { describe, expect, it } from 'vitest';

import {
  ALL_COMBOS,
  CELL,
  COLOR_JITTER,
  COLOR_RGB,
  COLORS,
  CONDITION_A,
  CONDITION_B,
  Rng,
  SHAPES,
  centresVisible,
  comboCondition,
  comboName,
  countMatches,
  countingCompletion,
  objectContains,
  questionText,
  questionsFor,
  sampleScene,
  type Scene,
} from '../../src/demo/scenes.js';

describe('Rng', () => {
  it('is deterministic per key and differs between keys', () => {
    const a = Rng.fromKey('k', 1);
    const b = Rng.fromKey('k', 1);
    const c = Rng.fromKey('k', 2);
    const xa = Array.from({ length: 8 }, () => a.uint32());
    expect(Array.from({ length: 8 }, () => b.uint32())).toEqual(xa);
    expect(Array.from({ length: 8 }, () => c.uint32())).not.toEqual(xa);
  });

  it('int covers its inclusive range uniformly and normal() has mean 0, variance 1', () => {
    const r = Rng.fromKey('dist');
    const hist = new Array(6).fill(0);
    for (let i = 0; i < 60000; i++) hist[r.int(0, 5)]++;
    for (const h of hist) expect(Math.abs(h - 10000)).toBeLessThan(400); // ≈ 4σ of a binomial(60000, 1/6)
    let s = 0;
    let s2 = 0;
    const n = 50000;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.02);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.03);
    expect(() => r.int(3, 2)).toThrow(RangeError);
  });
});

describe('conditions A and B', () => {
  it('split the 12 colour×shape pairs 6/6, every colour and shape in both', () => {
    expect(ALL_COMBOS).toHaveLength(12);
    expect(CONDITION_A).toHaveLength(6);
    expect(CONDITION_B).toHaveLength(6);
    expect(CONDITION_A.map(comboName).sort()).toEqual(
      ['blue circle', 'blue triangle', 'green square', 'red circle', 'red triangle', 'yellow square'],
    );
    const a = new Set(CONDITION_A.map(comboName));
    for (const c of CONDITION_B) expect(a.has(comboName(c))).toBe(false);
    for (const col of COLORS) {
      expect(CONDITION_A.some((c) => c.color === col)).toBe(true);
      expect(CONDITION_B.some((c) => c.color === col)).toBe(true);
    }
    for (const sh of SHAPES) {
      expect(CONDITION_A.filter((c) => c.shape === sh)).toHaveLength(2);
      expect(CONDITION_B.filter((c) => c.shape === sh)).toHaveLength(2);
    }
    expect(comboCondition('red', 'square')).toBe('B');
  });

  it('questions: only those with a matching pair in the condition', () => {
    const qa = questionsFor(CONDITION_A).map(questionText);
    expect(qa).toContain('How many red objects are there?');
    expect(qa).toContain('How many squares are there?');
    expect(qa).toContain('How many red circles are there?');
    expect(qa).toContain('How many objects are there?');
    expect(qa).not.toContain('How many red squares are there?');
    expect(questionsFor(CONDITION_B).map(questionText)).toContain('How many red squares are there?');
    expect(qa).toHaveLength(4 + 3 + 6 + 1);
  });

  it('completion text names what is counted, singular and plural', () => {
    expect(countingCompletion({ kind: 'color', color: 'red' }, 3)).toBe('<think>I see 3 red objects.</think><answer>3</answer>');
    expect(countingCompletion({ kind: 'shape', shape: 'circle' }, 1)).toBe('<think>I see 1 circle.</think><answer>1</answer>');
    expect(countingCompletion({ kind: 'color_shape', color: 'blue', shape: 'square' }, 0)).toBe('<think>I see 0 blue squares.</think><answer>0</answer>');
  });
});

describe('objectContains', () => {
  it('circle, square and triangle (pointing up) interiors', () => {
    expect(objectContains({ shape: 'circle', cx: 10, cy: 10, r: 5 }, 13, 14)).toBe(true);
    expect(objectContains({ shape: 'circle', cx: 10, cy: 10, r: 5 }, 14, 14)).toBe(false);
    // square half-side 0.9·r = 4.5
    expect(objectContains({ shape: 'square', cx: 10, cy: 10, r: 5 }, 14.4, 5.6)).toBe(true);
    expect(objectContains({ shape: 'square', cx: 10, cy: 10, r: 5 }, 14.6, 10)).toBe(false);
    // triangle circumradius 6: apex (10, 4), base y = 13
    expect(objectContains({ shape: 'triangle', cx: 10, cy: 10, r: 5 }, 10, 4.5)).toBe(true);
    expect(objectContains({ shape: 'triangle', cx: 10, cy: 10, r: 5 }, 13, 6)).toBe(false);
    expect(objectContains({ shape: 'triangle', cx: 10, cy: 10, r: 5 }, 14, 12.5)).toBe(true);
    expect(objectContains({ shape: 'triangle', cx: 10, cy: 10, r: 5 }, 10, 13.5)).toBe(false);
  });
});

function scenes(n: number, combos = CONDITION_A, countRange: [number, number] = [0, 5], imageSize = 112): Scene[] {
  return Array.from({ length: n }, (_, i) => sampleScene(Rng.fromKey('scenes-test', i), { imageSize, combos, countRange }));
}

describe('sampleScene', () => {
  const many = scenes(1500);

  it('the answer is the number of objects the question counts, within the count range', () => {
    for (const s of many) {
      expect(s.answer).toBe(countMatches(s.question, s.objects));
      expect(s.answer).toBeGreaterThanOrEqual(0);
      expect(s.answer).toBeLessThanOrEqual(5);
    }
    const answers = new Set(many.map((s) => s.answer));
    expect([...answers].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(new Set(many.map((s) => s.question.kind))).toEqual(new Set(['color', 'shape', 'color_shape', 'total']));
  });

  it('uses only the allowed pairs, with colours near their nominal RGB', () => {
    const allowed = new Set(CONDITION_A.map(comboName));
    for (const s of many) {
      for (const o of s.objects) {
        expect(allowed.has(comboName(o))).toBe(true);
        const base = COLOR_RGB[o.color];
        for (let c = 0; c < 3; c++) expect(Math.abs(o.rgb[c]! - base[c]!)).toBeLessThanOrEqual(COLOR_JITTER);
      }
    }
    for (const s of scenes(200, CONDITION_B)) for (const o of s.objects) expect(comboCondition(o.color, o.shape)).toBe('B');
  });

  it('objects stay inside the image and inside their cell unless overlapping; centres are visible', () => {
    let pairs = 0;
    let shifts = 0;
    for (const s of many) {
      expect(centresVisible(s.objects)).toBe(true);
      for (const o of s.objects) {
        // bounding box half-extents [x, up, down]: circle r; square 0.9r; triangle (circumradius 1.2r) 1.04r, 1.2r, 0.6r
        const [hx, up, down] = o.shape === 'circle' ? [o.r, o.r, o.r] : o.shape === 'square' ? [0.9 * o.r, 0.9 * o.r, 0.9 * o.r] : [1.04 * o.r, 1.2 * o.r, 0.6 * o.r];
        expect(o.cx - hx).toBeGreaterThanOrEqual(0);
        expect(o.cy - up).toBeGreaterThanOrEqual(0);
        expect(o.cx + hx).toBeLessThanOrEqual(s.width);
        expect(o.cy + down).toBeLessThanOrEqual(s.height);
        const [row, col] = o.cell;
        if (s.overlap === 'none') {
          // the centre lies in its own cell, and no two objects share a cell
          expect(Math.floor(o.cx / CELL)).toBe(col);
          expect(Math.floor(o.cy / CELL)).toBe(row);
        }
      }
      const cells = s.objects.map((o) => o.cell.join(','));
      if (s.overlap === 'pair') {
        pairs++;
        expect(new Set(cells).size).toBe(cells.length - 1);
      } else expect(new Set(cells).size).toBe(cells.length);
      if (s.overlap === 'shift') shifts++;
    }
    // about 15% overlap, split between the two kinds
    expect(pairs).toBeGreaterThan(50);
    expect(shifts).toBeGreaterThan(50);
    expect(pairs + shifts).toBeLessThan(0.25 * many.length);
  });

  it('"pair" overlaps really overlap: some point lies inside both objects', () => {
    let overlapping = 0;
    let total = 0;
    for (const s of many.filter((x) => x.overlap === 'pair')) {
      const a = s.objects[0]!;
      const b = s.objects[s.objects.length - 1]!;
      total++;
      let both = false;
      for (let y = a.cy - 10; y <= a.cy + 10 && !both; y += 0.25) {
        for (let x = a.cx - 10; x <= a.cx + 10 && !both; x += 0.25) both = objectContains(a, x, y) && objectContains(b, x, y);
      }
      if (both) overlapping++;
    }
    expect(overlapping / total).toBeGreaterThan(0.95);
  });

  it('counts beyond the training range fit the grid; a 3×3 grid works', () => {
    for (const s of scenes(100, CONDITION_A, [6, 8])) {
      expect(s.answer).toBeGreaterThanOrEqual(6);
      expect(s.answer).toBeLessThanOrEqual(8);
    }
    for (const s of scenes(100, CONDITION_A, [0, 5], 84)) {
      expect(s.grid).toBe(3);
      expect(s.objects.length).toBeLessThanOrEqual(8);
    }
  });

  it('rejects sizes off the 28-pixel grid and impossible count ranges', () => {
    const rng = Rng.fromKey('bad');
    expect(() => sampleScene(rng, { imageSize: 100, combos: CONDITION_A, countRange: [0, 5] })).toThrow(/multiple of 28/);
    expect(() => sampleScene(rng, { imageSize: 56, combos: CONDITION_A, countRange: [0, 1] })).toThrow(RangeError);
    expect(() => sampleScene(rng, { imageSize: 84, combos: CONDITION_A, countRange: [0, 10] })).toThrow(/countRange/);
    expect(() => sampleScene(rng, { imageSize: 112, combos: [], countRange: [0, 5] })).toThrow(/combos/);
  });
});
