import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VlmGrpoError } from '../../src/errors.js';
import { roundHalfToEven, smartResize } from '../../src/processor/smart-resize.js';

interface Case {
  height: number;
  width: number;
  factor: number;
  min_pixels: number;
  max_pixels: number;
  out_height: number;
  out_width: number;
}

const cases = JSON.parse(
  readFileSync(new URL('../fixtures/smart_resize_cases.json', import.meta.url), 'utf8'),
) as Case[];

describe('smartResize', () => {
  it('matches all 57 reference cases exactly', () => {
    expect(cases.length).toBe(57);
    const mismatches: string[] = [];
    for (const c of cases) {
      const got = smartResize(c.height, c.width, { factor: c.factor, minPixels: c.min_pixels, maxPixels: c.max_pixels });
      if (got.height !== c.out_height || got.width !== c.out_width) {
        mismatches.push(`${c.height}×${c.width} → ${got.height}×${got.width}, want ${c.out_height}×${c.out_width}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('rounds halves to even like Python round()', () => {
    expect([0.5, 1.5, 2.5, 3.5, 4.5, -0.5, -1.5, 2.4999999, 2.5000001].map(roundHalfToEven)).toEqual([
      0, 2, 2, 4, 4, 0, -2, 2, 3,
    ]);
    // 70/28 = 2.5 → 2 → 56 (round half away from zero would give 84); 98/28 = 3.5 → 4; 126/28 = 4.5 → 4.
    expect(smartResize(70, 100, { minPixels: 3136, maxPixels: 12845056 })).toEqual({ height: 56, width: 112 });
    expect(smartResize(98, 126, { minPixels: 3136, maxPixels: 12845056 })).toEqual({ height: 112, width: 112 });
  });

  it('reproduces the spec worked examples (min 3136, max 12845056)', () => {
    const o = { minPixels: 3136, maxPixels: 12845056 };
    expect(smartResize(224, 224, o)).toEqual({ height: 224, width: 224 });
    expect(smartResize(480, 640, o)).toEqual({ height: 476, width: 644 });
    expect(smartResize(70, 70, o)).toEqual({ height: 56, width: 56 });
    expect(smartResize(1080, 1920, o)).toEqual({ height: 1092, width: 1932 });
    expect(smartResize(4000, 3000, o)).toEqual({ height: 4004, width: 2996 });
    expect(smartResize(30, 5000, o)).toEqual({ height: 28, width: 5012 });
  });

  it('keeps the area within the budget', () => {
    // Deterministic sweep: every result is a multiple of 28 and respects max_pixels.
    for (let h = 17; h < 3000; h += 211) {
      for (let w = 23; w < 3000; w += 197) {
        const r = smartResize(h, w, { minPixels: 3136, maxPixels: 28 * 28 * 256 });
        expect(r.height % 28).toBe(0);
        expect(r.width % 28).toBe(0);
        expect(r.height * r.width).toBeLessThanOrEqual(28 * 28 * 256);
        expect(r.height * r.width).toBeGreaterThanOrEqual(3136);
      }
    }
  });

  it('rejects aspect ratios above 200 with a VlmGrpoError', () => {
    expect(() => smartResize(10, 2001)).toThrow(VlmGrpoError);
    expect(() => smartResize(10, 2001)).toThrow(/aspect ratio of 200\.1/);
    expect(smartResize(10, 2000, { minPixels: 3136, maxPixels: 12845056 }).width % 28).toBe(0);
  });

  it('validates its arguments', () => {
    expect(() => smartResize(0, 10)).toThrow(RangeError);
    expect(() => smartResize(10.5, 10)).toThrow(/height must be a positive integer, got 10.5/);
    expect(() => smartResize('10' as unknown as number, 10)).toThrow(TypeError);
    expect(() => smartResize(100, 100, { minPixels: 10, maxPixels: 5 })).toThrow(/minPixels \(10\) must not exceed maxPixels \(5\)/);
    // A budget that leaves a side under the factor is an error, not a zero-size image.
    expect(() => smartResize(10, 600, { minPixels: 0, maxPixels: 12845056 })).toThrow(/ERR_IMAGE_TOO_SMALL|at least 28/);
  });
});
