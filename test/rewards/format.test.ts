import { describe, expect, it } from 'vitest';

import { rewardFunctions } from '../../src/rewards/index.js';

const strict = (completion: string) => rewardFunctions.format_strict({ completion, groundTruth: '' });
const lenient = (completion: string) => rewardFunctions.format_lenient({ completion, groundTruth: '' });
const fmt = (completion: string, options?: Record<string, unknown>) =>
  rewardFunctions.format({ completion, groundTruth: '', ...(options && { options }) });

describe('format: <think>…</think><answer>…</answer>', () => {
  it('accepts the R1 structure with whitespace or newlines between the blocks', () => {
    for (const c of [
      '<think>reason</think><answer>5</answer>',
      '<think>reason</think>\n<answer>5</answer>',
      '<think>\nmulti\nline\n</think>\n\n<answer>\n5\n</answer>',
      '<think></think><answer>5</answer>',
    ]) {
      expect(strict(c), c).toBe(1);
      expect(lenient(c), c).toBe(1);
      expect(fmt(c), c).toBe(1);
    }
  });

  it('strict rejects surrounding whitespace, tag spacing/case and a missing <think>; lenient accepts them', () => {
    for (const c of [
      ' <think>r</think><answer>5</answer>',
      '<think>r</think><answer>5</answer>\n',
      '\n\n<think>r</think>\n<answer>5</answer>\n\n',
      '< think >r</ think >< answer >5</ answer >',
      '<THINK>r</THINK><Answer>5</Answer>',
      'the template opened the think block</think>\n<answer>5</answer>',
    ]) {
      expect(strict(c), c).toBe(0);
      expect(lenient(c), c).toBe(1);
      expect(fmt(c, { mode: 'lenient' }), c).toBe(1);
    }
  });

  it('both reject an empty answer, repeated or missing tags, and text outside the blocks', () => {
    for (const c of [
      '<think>r</think><answer></answer>',
      '<think>r</think><answer>  \n </answer>',
      '<think>a</think><answer>b</answer><answer>c</answer>', // R1-V's fullmatch accepts this one
      '<think>a</think><think>b</think><answer>c</answer>',
      '<think>r</think>',
      '<answer>5</answer>',
      '<think>r</think> so: <answer>5</answer>',
      '<think>r</think><answer>5</answer> trailing',
      'preamble <think>r</think><answer>5</answer>',
      '<think>r<answer>5</answer></think>',
      '',
    ]) {
      expect(strict(c), c).toBe(0);
      expect(lenient(c), c).toBe(0);
    }
  });

  it('format_rec requires a box in the answer (JSON bbox_2d or a list, decimals allowed)', () => {
    const rec = (a: string, mode?: 'strict' | 'lenient') =>
      rewardFunctions.format_rec({ completion: `<think>r</think><answer>${a}</answer>`, groundTruth: '', ...(mode && { options: { mode } }) });
    expect(rec('[{"bbox_2d": [10, 20, 30, 40], "label": "cat"}]')).toBe(1);
    expect(rec('```json\n[{"bbox_2d": [10.5, 20, 30, 40]}]\n```')).toBe(1);
    expect(rec('[10, 20, 30, 40]')).toBe(1);
    expect(rec('the cat on the left')).toBe(0);
    expect(rec('[30, 20, 10, 40]')).toBe(0);
    expect(rewardFunctions.format_rec({ completion: ' <think>r</think><answer>[1,2,3,4]</answer>', groundTruth: '', options: { mode: 'lenient' } })).toBe(1);
    expect(fmt('<think>r</think><answer>[1,2,3,4]</answer>', { requireBox: true })).toBe(1);
    expect(fmt('<think>r</think><answer>four</answer>', { requireBox: true })).toBe(0);
  });

  it('format_boxed wants <think>…</think> then a non-empty \\boxed{}', () => {
    const boxed = (c: string) => rewardFunctions.format_boxed({ completion: c, groundTruth: '' });
    expect(boxed('<think>r</think> so the result is \\boxed{\\frac{1}{2}}.')).toBe(1);
    expect(boxed('<think>r</think>\\boxed{}')).toBe(0);
    expect(boxed('<think>r \\boxed{5}</think> five')).toBe(0);
    expect(boxed('\\boxed{5}')).toBe(0);
    expect(boxed('<think>a</think><think>b</think>\\boxed{5}')).toBe(0);
  });

  it('rejects bad options', () => {
    expect(() => fmt('<think>r</think><answer>5</answer>', { mode: 'loose' })).toThrow(/mode/);
    expect(() => fmt('<think>r</think><answer>5</answer>', { strict: true })).toThrow(/unknown option 'strict'/);
  });
});
