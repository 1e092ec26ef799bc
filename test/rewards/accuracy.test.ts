import { describe, expect, it } from 'vitest';

import { ACCURACY_METHODS, RewardError, rewardFunctions, type RewardSample } from '../../src/rewards/index.js';
import { extractChoice, extractYesNo } from '../../src/rewards/values.js';

const wrap = (answer: string) => `<think>Let me think about it carefully.</think>\n<answer>${answer}</answer>`;
const acc = (answer: string, groundTruth: unknown, extra: Partial<RewardSample> = {}) =>
  rewardFunctions.accuracy({ completion: wrap(answer), groundTruth, ...extra });

describe('accuracy: numbers, fractions and LaTeX', () => {
  it.each([
    ['\\boxed{\\frac{1}{2}}', '0.5'],
    ['0.5', '\\boxed{\\frac{1}{2}}'],
    ['\\dfrac{1}{2}', '1/2'],
    ['1,000', '1000'],
    ['1000', '1,000'],
    ['45°', '45'],
    ['45^\\circ', '45'],
    ['45', '45^{\\circ}'],
    ['3 cm', '3'],
    ['3', '3 cm'],
    ['−3', '-3'],
    ['x = 5', '5'],
    ['The answer is 42.', '42'],
    ['There are 3 cats', '3'],
    ['\\sqrt{2}', '1.41421356'],
    ['$5', '5.00'],
    ['50%', '0.5'],
    ['12', 12],
  ])('%s matches %s', (answer, gt) => {
    expect(acc(answer, gt)).toBe(1);
  });

  it.each([
    ['0.51', '0.5'],
    ['1,00', '100'],
    ['-3', '3'],
    ['3 or 4', '3'],
    ['3.14', '\\pi'],
    ['1.414', '\\sqrt{2}'],
    ['\\boxed{}', '0'],
    ['forty-two', '42'],
  ])('%s does not match %s', (answer, gt) => {
    expect(acc(answer, gt)).toBe(0);
  });

  it('honours the tolerance options', () => {
    expect(acc('3.14', '\\pi', { options: { tolerance: 1e-3 } })).toBe(1);
    expect(acc('3.14', '\\pi', { options: { tolerance: 1e-5 } })).toBe(0);
    expect(acc('0.00001', '0', { options: { absTolerance: 1e-4 } })).toBe(1);
  });
});

describe('accuracy: multiple choice and yes/no', () => {
  it.each(['(B)', 'B.', 'B', 'b', 'The answer is B', 'B. 45 degrees', '**B**', '\\boxed{B}', 'I think B is correct', 'Option B'])(
    '%s picks B',
    (answer) => {
      expect(acc(answer, 'B')).toBe(1);
      expect(acc(answer, '(B)')).toBe(1);
      expect(acc(answer, 'C')).toBe(0);
    },
  );

  it('gives no credit for listing several letters or none', () => {
    expect(acc('A and B', 'B')).toBe(0);
    expect(acc('A, B, C or D', 'B')).toBe(0);
    expect(acc('a cat', 'B')).toBe(0);
    expect(extractChoice('A cat sits')).toBeUndefined();
  });

  it.each([
    ['Yes.', 'yes', 1],
    ['yes', 'Yes', 1],
    ['YES, because the dog is there', 'yes', 1],
    ['There is no dog.', 'no', 1],
    ['No', 'yes', 0],
    ['yes or no', 'yes', 0],
    ['maybe', 'no', 0],
    ['yes', true, 1],
  ])('%s vs %s → %d', (answer, gt, want) => {
    expect(acc(answer, gt)).toBe(want);
  });

  it('treats a missing yes/no as no answer (VLM-R1 scored two misses as a match)', () => {
    expect(extractYesNo('perhaps')).toBeUndefined();
    expect(rewardFunctions.yes_no({ completion: wrap('perhaps'), groundTruth: 'maybe' })).toBe(0);
  });
});

describe('accuracy: expressions, tuples and text', () => {
  it('uses symbolic equivalence for expressions', () => {
    expect(acc('2(x+1)', '2x+2')).toBe(1);
    expect(acc('2x+2', '2(x+1)')).toBe(1);
    expect(acc('2(x+2)', '2x+2')).toBe(0);
    expect(acc('y = 2x + 2', '2(x+1)')).toBe(1);
  });

  it('compares tuples, intervals and sets element-wise', () => {
    expect(acc('(1, 2)', '(1,2)')).toBe(1);
    expect(acc('(2, 1)', '(1,2)')).toBe(0);
    expect(acc('[0, 1)', '[0,1)')).toBe(1);
    expect(acc('[0, 1]', '[0,1)')).toBe(0);
    expect(acc('\\{2, 1\\}', '\\{1, 2\\}')).toBe(1);
    expect(acc('(\\frac{1}{2}, 2x)', '(0.5, x+x)')).toBe(1);
  });

  it('compares text after SQuAD-style normalisation, keeping math symbols', () => {
    expect(acc('Paris.', 'paris')).toBe(1);
    expect(acc('The Eiffel Tower', 'eiffel tower')).toBe(1);
    expect(acc('x > 3', 'x>3')).toBe(1);
    expect(acc('x < 3', 'x>3')).toBe(0);
    expect(acc('Lyon', 'Paris')).toBe(0);
    expect(acc('Parris', 'Paris')).toBe(0); // no Levenshtein partial credit
  });

  it('accepts any of a list of ground truths', () => {
    expect(acc('kitten', ['cat', 'kitten'])).toBe(1);
    expect(acc('dog', ['cat', 'kitten'])).toBe(0);
  });
});

describe('accuracy: which text is compared', () => {
  it('never matches an empty answer, even against an empty ground truth', () => {
    expect(rewardFunctions.accuracy({ completion: '<think>5</think><answer></answer>', groundTruth: '5' })).toBe(0);
    expect(rewardFunctions.accuracy({ completion: '<answer></answer>', groundTruth: '' })).toBe(0);
    expect(rewardFunctions.accuracy({ completion: '<answer>5</answer>', groundTruth: '' })).toBe(0);
    expect(rewardFunctions.accuracy({ completion: '<answer> </answer>', groundTruth: ' ' })).toBe(0);
  });

  it('uses the last <answer> span', () => {
    expect(rewardFunctions.accuracy({ completion: '<answer>3</answer><answer>5</answer>', groundTruth: '5' })).toBe(1);
    expect(rewardFunctions.accuracy({ completion: '<answer>5</answer><answer>3</answer>', groundTruth: '5' })).toBe(0);
  });

  it('ignores the right answer inside the thinking', () => {
    expect(rewardFunctions.accuracy({ completion: '<think>it is 5</think><answer>6</answer>', groundTruth: '5' })).toBe(0);
    expect(rewardFunctions.accuracy({ completion: '<think>it is 5</think>', groundTruth: '5' })).toBe(0);
  });

  it('reads VLM-R1-style solutions with <answer> tags', () => {
    expect(rewardFunctions.accuracy({ completion: wrap('7'), groundTruth: '<answer> 7 </answer>' })).toBe(1);
  });
});

describe('accuracy: per-row method', () => {
  const box = (b: string) => wrap(b);
  it('dispatches on reward_method / accu_reward_method / reward_func', () => {
    expect(acc('B', 'B', { row: { accu_reward_method: 'mcq' } })).toBe(1);
    expect(acc('b', 'yes', { row: { reward_method: 'yes_no' } })).toBe(0);
    expect(rewardFunctions.accuracy({ completion: box('[0, 0, 10, 10]'), groundTruth: [0, 0, 10, 20], row: { reward_func: 'iou' } })).toBeCloseTo(0.5, 12);
    expect(rewardFunctions.accuracy({ completion: box('[0, 0, 10, 10]'), groundTruth: [0, 0, 10, 20], row: { reward_func: 'iou_bin' } })).toBe(1);
    expect(rewardFunctions.accuracy({ completion: box('[0, 0, 10, 10]'), groundTruth: [0, 0, 10, 30], row: { reward_func: 'iou_bin' } })).toBe(0);
    expect(acc('three', 3, { row: { reward_method: 'counting' } })).toBe(1);
    expect(acc('Three', 'three', { row: { reward_method: 'exact' } })).toBe(1);
    expect(acc('3', '3.0', { row: { reward_method: 'exact' } })).toBe(0);
  });

  it('uses options.method when the row has none, and the row when it has one', () => {
    expect(acc('3.0', '3', { options: { method: 'exact' } })).toBe(0);
    expect(acc('3.0', '3', { options: { method: 'exact' }, row: { reward_method: 'numeric' } })).toBe(1);
    expect(acc('3.0', '3', { options: { method: 'exact', methodColumn: null }, row: { reward_method: 'numeric' } })).toBe(0);
    expect(acc('3.0', '3', { options: { methodColumn: 'kind' }, row: { kind: 'exact', reward_method: 'numeric' } })).toBe(0);
  });

  it('throws a RewardError with a suggestion for an unknown method', () => {
    const run = () => acc('B', 'B', { row: { accu_reward_method: 'mqc' } });
    expect(run).toThrow(RewardError);
    expect(run).toThrow(/unknown method 'mqc'.*Did you mean 'mcq'/);
    try {
      run();
    } catch (e) {
      expect((e as RewardError).code).toBe('ERR_REWARD_UNKNOWN_METHOD');
    }
    expect(ACCURACY_METHODS).toContain('iou_bin');
  });

  it('rejects unknown options with a suggestion', () => {
    expect(() => acc('1', '1', { options: { tolerence: 0.1 } })).toThrow(/unknown option 'tolerence'.*Did you mean 'tolerance'/);
    expect(() => acc('1', '1', { options: { tolerance: -1 } })).toThrow(/tolerance/);
  });
});

describe('fixed-method built-ins', () => {
  it('numeric, math, mcq, yes_no and exact ignore the row method', () => {
    const row = { reward_method: 'exact' };
    expect(rewardFunctions.numeric({ completion: wrap('1,000'), groundTruth: '1000', row })).toBe(1);
    expect(rewardFunctions.math({ completion: wrap('2(x+1)'), groundTruth: '2x+2', row })).toBe(1);
    expect(rewardFunctions.mcq({ completion: wrap('(C)'), groundTruth: 'C', row })).toBe(1);
    expect(rewardFunctions.yes_no({ completion: wrap('No.'), groundTruth: 'no', row })).toBe(1);
    expect(rewardFunctions.exact({ completion: wrap('A  Cat'), groundTruth: 'a cat', row })).toBe(1);
    expect(rewardFunctions.numeric({ completion: wrap('ten'), groundTruth: '10' })).toBe(0);
  });
});
