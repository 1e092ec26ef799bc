import { describe, expect, it } from 'vitest';

import { distinctNgramRatio, rewardFunctions, type RewardSample } from '../../src/rewards/index.js';
import { repetitionTokens } from '../../src/rewards/length-penalty.js';

/** Plain reference: distinct n-grams / total n-grams by string keys in a Map. */
function refRatio(words: string[], n: number): number {
  if (words.length < n) return 1;
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= words.length; i++) {
    const k = JSON.stringify(words.slice(i, i + n));
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts.size / (words.length - n + 1);
}

const rep = (completion: string, options?: Record<string, unknown>) =>
  rewardFunctions.repetition({ completion, groundTruth: '', ...(options && { options }) });

describe('repetition', () => {
  it('is 1 without repeats and falls with repeated n-grams', () => {
    expect(rep('the quick brown fox jumps over the lazy dog')).toBe(1);
    // "a b c" ×4: 10 trigrams, 3 distinct.
    expect(rep('a b c a b c a b c a b c')).toBeCloseTo(3 / 10, 12);
    expect(rep('A B C a b c')).toBeCloseTo(3 / 4, 12); // lower-cased
    expect(rep('word '.repeat(1000))).toBeCloseTo(1 / 998, 12);
    expect(rep('too short')).toBe(1);
    expect(rep('')).toBe(1);
  });

  it('uses options.ngram (VLM-R1 uses 6)', () => {
    const text = 'one two three four five one two three four five six';
    expect(rep(text, { ngram: 1 })).toBeCloseTo(6 / 11, 12);
    expect(rep(text, { ngram: 6 })).toBe(1);
    expect(() => rep(text, { ngram: 0 })).toThrow(/ngram/);
  });

  it('matches a plain n-gram count on fresh random word sequences', () => {
    let s = Date.now() >>> 0;
    const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    for (let t = 0; t < 50; t++) {
      const words = Array.from({ length: Math.floor(r() * 60) }, () => `w${Math.floor(r() * 5)}`);
      const n = 1 + Math.floor(r() * 4);
      expect(distinctNgramRatio(words, n)).toBeCloseTo(refRatio(words, n), 12);
      expect(rep(words.join(' '), { ngram: n })).toBeCloseTo(refRatio(words, n), 12);
    }
  });

  it('splits CJK text into characters', () => {
    expect(repetitionTokens('我爱你 ok')).toEqual(['我', '爱', '你', 'ok']);
    expect(rep('哈哈哈哈哈哈哈哈')).toBeCloseTo(1 / 6, 12);
  });
});

describe('length (soft overlong)', () => {
  const len = (n: number, options: Record<string, unknown>, extra: Partial<RewardSample> = {}) =>
    rewardFunctions.length({ completion: 'x'.repeat(n), groundTruth: '', options, ...extra });
  it('is 1 up to maxLength − buffer, linear to 0 at maxLength, 0 beyond', () => {
    const o = { maxLength: 100, buffer: 20 };
    expect(len(10, o)).toBe(1);
    expect(len(80, o)).toBe(1);
    expect(len(90, o)).toBeCloseTo(0.5, 12);
    expect(len(100, o)).toBe(0);
    expect(len(500, o)).toBe(0);
  });

  it('counts characters, words or tokens', () => {
    expect(rewardFunctions.length({ completion: 'a b c d e', groundTruth: '', options: { maxLength: 4, buffer: 1, unit: 'words' } })).toBe(0);
    expect(rewardFunctions.length({ completion: 'a b c', groundTruth: '', options: { maxLength: 4, buffer: 1, unit: 'words' } })).toBe(1);
    expect(len(1, { maxLength: 100, buffer: 20 }, { completionTokens: 90 })).toBeCloseTo(0.5, 12);
    expect(len(1, { maxLength: 100, buffer: 20, unit: 'chars' }, { completionTokens: 90 })).toBe(1);
    expect(() => len(1, { unit: 'tokens' })).toThrow(/completionTokens/);
    expect(() => len(1, { maxLength: 10, buffer: 20 })).toThrow(/buffer must be at most maxLength/);
  });
});

describe('cosine (length-scaled correctness)', () => {
  const cos = (answer: string, gt: string, pad: number) =>
    rewardFunctions.cosine({
      completion: `<think>${'y'.repeat(pad)}</think><answer>${answer}</answer>`,
      groundTruth: gt,
      options: { maxLength: 1000 },
    });
  it('rewards short correct answers most and long wrong answers least badly, within [0, 1]', () => {
    const shortRight = cos('5', '5', 0);
    const longRight = cos('5', '5', 900);
    const shortWrong = cos('4', '5', 0);
    const longWrong = cos('4', '5', 900);
    expect(shortRight).toBeGreaterThan(longRight);
    expect(longRight).toBeGreaterThan(longWrong);
    expect(longWrong).toBeGreaterThan(shortWrong);
    expect(Math.min(shortRight, longRight)).toBeGreaterThanOrEqual(0.75);
    expect(Math.max(shortWrong, longWrong)).toBeLessThanOrEqual(0.25);
  });

  it('follows (TRL cosine + 1) / 2 exactly and clamps the length (no periodicity)', () => {
    const L = '<think></think><answer>5</answer>'.length + 300;
    const trl = 0.5 + 0.5 * 0.5 * (1 + Math.cos((Math.PI * L) / 1000)); // correct: v_min 0.5, v_max 1
    expect(cos('5', '5', 300)).toBeCloseTo((trl + 1) / 2, 12);
    expect(cos('5', '5', 5000)).toBeCloseTo(0.75, 12);
    expect(cos('4', '5', 5000)).toBeCloseTo(0.25, 12);
  });
});
