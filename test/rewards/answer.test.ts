import { describe, expect, it } from 'vitest';

import { extractAnswer, groundTruthText, hasAnswerSpan } from '../../src/rewards/index.js';
import { stripThinking } from '../../src/rewards/answer.js';

describe('extractAnswer: which text is compared', () => {
  it('takes the content of the last complete <answer> span, trimmed', () => {
    expect(extractAnswer('<think>x</think><answer> 42 </answer>')).toBe('42');
    expect(extractAnswer('<answer>3</answer> then <answer>5</answer>')).toBe('5');
    expect(extractAnswer('<answer>5</answer> then <answer>3</answer>')).toBe('3');
  });

  it('allows multi-line answers and tolerant tag spelling', () => {
    expect(extractAnswer('<answer>\nline one\nline two\n</answer>')).toBe('line one\nline two');
    expect(extractAnswer('< answer >7</ answer >')).toBe('7');
    expect(extractAnswer('<ANSWER>7</Answer>')).toBe('7');
  });

  it('keeps only the text after a nested opening tag, and stops at the first closing tag', () => {
    expect(extractAnswer('<answer>draft <answer>final</answer>')).toBe('final');
    expect(extractAnswer('<answer>a<answer>b</answer>c</answer>')).toBe('b');
    expect(extractAnswer('<answer>a</answer> stray </answer>')).toBe('a');
    expect(extractAnswer('<answer>a</answer><answer>b')).toBe('a');
  });

  it('returns an empty string for an empty span (which never matches)', () => {
    expect(extractAnswer('<think>long reasoning 42</think><answer></answer>')).toBe('');
    expect(extractAnswer('<answer>   \n </answer>')).toBe('');
  });

  it('uses the text after an unclosed <answer> for a truncated completion', () => {
    expect(extractAnswer('<think>t</think><answer>12')).toBe('12');
  });

  it('never grades the thinking when there is no answer tag', () => {
    expect(extractAnswer('<think>the answer is 5</think>')).toBe('');
    expect(extractAnswer('<think>it is 5</think> 6')).toBe('6');
    expect(extractAnswer('<think>unfinished 5')).toBe('');
    expect(extractAnswer('template opened think, 5</think>\n7')).toBe('7');
    expect(extractAnswer('plain 9')).toBe('plain 9');
    expect(stripThinking('a<think>b</think>c<think>d</think>e')).toBe('a c e');
    expect(stripThinking('a<think>b</think>c</think>d')).toBe('d');
  });

  it('never throws on non-strings or odd text', () => {
    expect(extractAnswer(undefined)).toBe('');
    expect(extractAnswer(42)).toBe('');
    expect(extractAnswer('😀<answer>中文</answer>')).toBe('中文');
    expect(hasAnswerSpan('<answer>x</answer>')).toBe(true);
    expect(hasAnswerSpan('<answer>x')).toBe(false);
  });
});

describe('groundTruthText', () => {
  it('reduces strings with an <answer> span and converts other values', () => {
    expect(groundTruthText('<answer> 5 </answer>')).toBe('5');
    expect(groundTruthText('  Paris ')).toBe('Paris');
    expect(groundTruthText(3)).toBe('3');
    expect(groundTruthText(true)).toBe('yes');
    expect(groundTruthText(false)).toBe('no');
    expect(groundTruthText([1, 2, 3, 4])).toBe('[1,2,3,4]');
    expect(groundTruthText(null)).toBe('');
    expect(groundTruthText(undefined)).toBe('');
    expect(groundTruthText(NaN)).toBe('');
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(groundTruthText(cyclic)).toBe('');
  });
});
