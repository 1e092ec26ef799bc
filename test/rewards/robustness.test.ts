import { describe, expect, it } from 'vitest';

import { builtinRewardNames, builtinRewards, rewardFunctions, syncBuiltinRewardNames, type RewardSample } from '../../src/rewards/index.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PIECES = [
  '<think>', '</think>', '<answer>', '</answer>', '< answer >', '\\boxed{', '\\frac', '\\sqrt', '{', '}', '[', ']', '(', ')',
  ',', '.', '1', '23', '-', 'x', '=', '^', '°', '%', 'yes', 'no', 'A', 'B', ' ', '\n', '"bbox_2d":', '{"bbox_2d": [1,2,3,4]}',
  'é', '中文', '😀', '\u0000', '\uFFFF', '\uD800', '$', '\\text{', '*', '/', 'e', 'pi', '!', '9'.repeat(400), 'ones(9999,9999)',
  'three', 'NaN', 'Infinity', '1e309', '```json', "'", '"',
];
const TRUTHS: unknown[] = ['5', '0.5', 'B', 'yes', '2x+2', [0, 0, 10, 10], 3, '(1,2)', 'Paris', '', null, undefined, { bbox_2d: [1, 2, 3, 4] }, NaN, true, ['a', 'b']];

describe('every built-in is total on any completion', () => {
  it('exposes the required names', () => {
    for (const n of ['accuracy', 'format', 'iou']) expect(typeof rewardFunctions[n]).toBe('function');
    expect(Object.isFrozen(rewardFunctions)).toBe(true);
    expect(rewardFunctions['nope']).toBeUndefined();
    for (const n of builtinRewardNames) expect(builtinRewards[n].description.length).toBeGreaterThan(10);
  });

  it('returns a number in [0, 1] and never throws on fresh random garbage', () => {
    const seed = Date.now();
    const r = rng(seed);
    for (let it = 0; it < 600; it++) {
      let completion = '';
      const len = Math.floor(r() * 30);
      for (let k = 0; k < len; k++) completion += PIECES[Math.floor(r() * PIECES.length)];
      // `llm` calls a service; test/rewards/llm-judge.test.ts covers it against a local server.
      for (const name of syncBuiltinRewardNames) {
        const groundTruth = TRUTHS[Math.floor(r() * TRUTHS.length)];
        const v = rewardFunctions[name]({ completion, groundTruth });
        if (!(typeof v === 'number' && v >= 0 && v <= 1)) {
          throw new Error(`seed ${seed}: ${name} returned ${v} for ${JSON.stringify(completion)} vs ${JSON.stringify(groundTruth)}`);
        }
      }
    }
  });

  it('handles empty, huge and odd inputs quickly', () => {
    const huge =
      '<think>' + 'la '.repeat(200_000) + '</think><answer>' + '1'.repeat(2000) + '</answer>' + '{'.repeat(50_000) + '['.repeat(50_000);
    const samples: RewardSample[] = [
      { completion: '', groundTruth: '5' },
      { completion: huge, groundTruth: '5' },
      { completion: '<answer>' + '(('.repeat(5000) + '</answer>', groundTruth: 'x' },
      { completion: '<answer>' + '\\frac{'.repeat(3000) + '</answer>', groundTruth: '1' },
      { completion: '<answer>' + 'a '.repeat(50_000) + '</answer>', groundTruth: 'a' },
      // Degenerate repetitions an RL policy can produce; lazy tag regexes are quadratic on these.
      { completion: '<answer>'.repeat(20_000), groundTruth: '5' },
      { completion: '<think>'.repeat(20_000), groundTruth: '5' },
      { completion: '</think>'.repeat(20_000), groundTruth: 'B' },
      { completion: '<answer>' + '\\boxed{'.repeat(20_000) + '</answer>', groundTruth: '5' },
      { completion: '<answer>x' + ' '.repeat(100_000) + 'y</answer>', groundTruth: 'x y' },
      { completion: '<answer>' + '.'.repeat(100_000) + 'x</answer>', groundTruth: 'x' },
      { completion: '<answer>' + 'A B '.repeat(20_000) + '</answer>', groundTruth: 'B' },
      { completion: '<answer>' + '{"bbox_2d": ['.repeat(20_000) + '</answer>', groundTruth: [0, 0, 1, 1] },
      { completion: undefined as unknown as string, groundTruth: '5' },
      { completion: 42 as unknown as string, groundTruth: 42 },
    ];
    const t0 = Date.now();
    for (const s of samples) {
      for (const name of syncBuiltinRewardNames) {
        const v = rewardFunctions[name](s);
        expect(v, name).toBeGreaterThanOrEqual(0);
        expect(v, name).toBeLessThanOrEqual(1);
      }
    }
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});
