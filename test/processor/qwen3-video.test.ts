// Qwen3-VL video prompt text (src/processor/qwen3-video.ts) against hand-computed HF Qwen3VLProcessor results:
// _calculate_timestamps (pad by repeating the last frame time, mean of each temporal group's first and last time),
// Python's "{:.1f}" (ties to even on exactly representable halves), and the per-step placeholder layout.
import { describe, expect, it } from 'vitest';

import { expandQwen3VideoText, formatSeconds, qwen3VideoPlaceholder, qwen3VideoTimestamps } from '../../src/processor/qwen3-video.js';

const VS = '<|vision_start|>', VE = '<|vision_end|>', VP = '<|video_pad|>';

describe('Qwen3-VL video timestamps', () => {
  it('averages the first and last time of each temporal patch, padding by repeating the last time', () => {
    // frames sampled at source indices 0, 12, 24, 36 of a 24 fps video: times 0, 0.5, 1, 1.5 → (0+0.5)/2, (1+1.5)/2
    expect(qwen3VideoTimestamps([0, 12 / 24, 24 / 24, 36 / 24], 2)).toEqual([0.25, 1.25]);
    // 3 frames → padded to 4 with the last time repeated: (0+0.5)/2, (1+1)/2
    expect(qwen3VideoTimestamps([0, 0.5, 1], 2)).toEqual([0.25, 1]);
    // temporal patch 3: first and last of each group of three
    expect(qwen3VideoTimestamps([0, 1, 2, 3, 4], 3)).toEqual([1, 3.5]);
    expect(() => qwen3VideoTimestamps([], 2)).toThrow(/frameTimes is empty/);
    expect(() => qwen3VideoTimestamps([0, Number.NaN], 2)).toThrow(/frameTimes\[1\] is NaN/);
    expect(() => qwen3VideoTimestamps([0, 1], 0)).toThrow(/temporalPatchSize must be a positive integer, got 0/);
  });

  it('formats like Python f"{x:.1f}" (exact halves to even, everything else correctly rounded)', () => {
    // Python: [f"{x:.1f}" for x in (0.25, 0.75, 1.25, 2.35, 0.05, 0.15, 12.5, 0, 3.96, 1.75, 10.25)]
    const cases: [number, string][] = [[0.25, '0.2'], [0.75, '0.8'], [1.25, '1.2'], [2.35, '2.4'], [0.05, '0.1'], [0.15, '0.1'],
      [12.5, '12.5'], [0, '0.0'], [3.96, '4.0'], [1.75, '1.8'], [10.25, '10.2']];
    for (const [x, s] of cases) expect(formatSeconds(x), String(x)).toBe(s);
    expect(() => formatSeconds(-1)).toThrow(/finite number ≥ 0, got -1/);
  });

  it('writes one timestamped vision_start … video_pad … vision_end run per temporal step', () => {
    const run = VS + VP.repeat(4) + VE;  // h·w / merge² = 4·4 / 4
    expect(qwen3VideoPlaceholder([2, 4, 4], [0.25, 1.25], 2)).toBe(`<0.2 seconds>${run}<1.2 seconds>${run}`);
    expect(() => qwen3VideoPlaceholder([2, 4, 4], [0.25], 2)).toThrow(/1 timestamps for a video grid with t = 2/);
  });

  it('replaces the template triple per video in order, else a bare video_pad; counts must match', () => {
    const v1 = { grid: [1, 2, 2] as const, timestamps: [0.5] };
    const v2 = { grid: [2, 2, 4] as const, timestamps: [1, 3] };
    const text = `a${VS}${VP}${VE}b${VS}${VP}${VE}c`;
    expect(expandQwen3VideoText(text, [v1, v2], 2)).toBe(
      `a<0.5 seconds>${VS}${VP}${VE}b<1.0 seconds>${VS}${VP.repeat(2)}${VE}<3.0 seconds>${VS}${VP.repeat(2)}${VE}c`);
    expect(expandQwen3VideoText(`x${VP}y`, [v1], 2)).toBe(`x<0.5 seconds>${VS}${VP}${VE}y`);
    expect(() => expandQwen3VideoText(text, [v1], 2)).toThrow(/more video placeholders than the 1 videos/);
    expect(() => expandQwen3VideoText('none', [v1], 2)).toThrow(/1 videos given but the prompt holds only 0/);
  });
});
