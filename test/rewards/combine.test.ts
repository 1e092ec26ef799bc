import { describe, expect, it, vi } from 'vitest';

import {
  createRewardScorer,
  dispatchByRow,
  parseRewardArg,
  RewardError,
  rewardFunctions,
  rowMethod,
  weightedSum,
  type RewardSample,
} from '../../src/rewards/index.js';
import { didYouMean } from '../../src/rewards/errors.js';

const good = '<think>r</think><answer>5</answer>';
const wrongAnswer = '<think>r</think><answer>4</answer>';
const noFormat = 'the answer is 5';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as RewardError).code;
  }
  return undefined;
}

describe('weighted sums', () => {
  it('computes Σ w·r and the normalised form', () => {
    expect(weightedSum([1, 0.5], [0.9, 0.1])).toBeCloseTo(0.95, 12);
    expect(weightedSum([1, 1], [2, 2], true)).toBe(1);
    expect(weightedSum([1, 1], [1, -1])).toBe(0);
  });

  it('scores a batch with 0.9·accuracy + 0.1·format (EasyR1 weights)', async () => {
    const scorer = createRewardScorer([
      { name: 'accuracy', weight: 0.9 },
      { name: 'format', weight: 0.1 },
    ]);
    const samples: RewardSample[] = [good, wrongAnswer, noFormat].map((completion) => ({ completion, groundTruth: '5' }));
    const r = await scorer.score(samples);
    // Without tags the compared text is the whole completion (answer.ts), so the third is right but unformatted.
    expect(r.perReward['accuracy']).toEqual([1, 0, 1]);
    expect(r.perReward['format']).toEqual([1, 1, 0]);
    expect(r.total[0]).toBeCloseTo(1, 12);
    expect(r.total[1]).toBeCloseTo(0.1, 12);
    expect(r.total[2]).toBeCloseTo(0.9, 12);
    expect(r.errors).toEqual({ accuracy: 0, format: 0 });
    expect(scorer.names).toEqual(['accuracy', 'format']);
    expect(scorer.weights).toEqual([0.9, 0.1]);
  });

  it('passes per-spec options and labels repeated rewards', async () => {
    const scorer = createRewardScorer(
      [
        { name: 'iou' },
        { name: 'iou', options: { threshold: 0.5 }, weight: 2 },
      ],
      { normalizeWeights: true },
    );
    const r = await scorer.score([{ completion: '<answer>[0,0,10,10]</answer>', groundTruth: [0, 0, 10, 20] }]);
    expect(scorer.names).toEqual(['iou', 'iou#2']);
    expect(r.perReward['iou']?.[0]).toBeCloseTo(0.5, 12);
    expect(r.perReward['iou#2']).toEqual([1]);
    expect(r.total[0]).toBeCloseTo((0.5 + 2) / 3, 12);
  });

  it('rejects bad weights, unknown names (with a suggestion) and bad options up front', () => {
    expect(() => createRewardScorer([{ name: 'accuracy', weight: NaN }])).toThrow(/Weight of reward 'accuracy' must be a finite number, got NaN/);
    expect(codeOf(() => createRewardScorer([{ name: 'accuracy', weight: Infinity }]))).toBe('ERR_REWARD_BAD_WEIGHT');
    expect(codeOf(() => createRewardScorer([{ name: 'accuracy', weight: '1' as unknown as number }]))).toBe('ERR_REWARD_BAD_WEIGHT');
    expect(() => createRewardScorer([{ name: 'accuracy', weight: 0 }, { name: 'format', weight: 0 }])).toThrow(/All reward weights are 0/);
    expect(() => createRewardScorer(['acuracy'])).toThrow(/Unknown reward 'acuracy'\. Did you mean 'accuracy'\?/);
    expect(codeOf(() => createRewardScorer(['fromat']))).toBe('ERR_REWARD_UNKNOWN');
    expect(() => createRewardScorer(['fromat'])).toThrow(/Did you mean 'format'/);
    expect(() => createRewardScorer([{ name: 'iou', options: { threshold: 2 } }])).toThrow(/Bad options for reward 'iou': threshold/);
    expect(codeOf(() => createRewardScorer([]))).toBe('ERR_REWARD_BAD_SPEC');
    expect(codeOf(() => createRewardScorer(['./my-reward.ts']))).toBe('ERR_REWARD_BAD_SPEC');
    expect(codeOf(() => createRewardScorer([{ name: 'x', fn: 3 as unknown as () => number }]))).toBe('ERR_REWARD_NOT_A_FUNCTION');
    const e = (() => {
      try {
        createRewardScorer(['acuracy']);
      } catch (err) {
        return err as RewardError;
      }
    })();
    expect(e?.remedy).toMatch(/custom module path/);
    expect(didYouMean('zzzzzz', ['accuracy', 'format'])).toBeUndefined();
  });
});

describe('parseRewardArg (CLI form)', () => {
  it('parses names, weights and module paths', () => {
    expect(parseRewardArg('accuracy=0.9, format=0.1')).toEqual([
      { name: 'accuracy', weight: 0.9 },
      { name: 'format', weight: 0.1 },
    ]);
    expect(parseRewardArg('iou,./rewards/mine.ts:score=-0.5')).toEqual([
      { name: 'iou' },
      { name: './rewards/mine.ts:score', module: './rewards/mine.ts:score', weight: -0.5 },
    ]);
    expect(() => parseRewardArg('accuracy=abc')).toThrow(/Weight of reward 'accuracy' must be a finite number, got "abc"/);
    expect(() => parseRewardArg('accuracy=')).toThrow(RewardError);
    expect(() => parseRewardArg(' , ')).toThrow(/empty/);
  });
});

describe('per-row method', () => {
  it('reads the method from the row columns in order', () => {
    expect(rowMethod({ completion: '', groundTruth: '', row: { reward_func: 'iou' } })).toBe('iou');
    expect(rowMethod({ completion: '', groundTruth: '', row: { reward_method: 'mcq', reward_func: 'iou' } })).toBe('mcq');
    expect(rowMethod({ completion: '', groundTruth: '', row: { reward_method: '' } })).toBeUndefined();
    expect(rowMethod({ completion: '', groundTruth: '' })).toBeUndefined();
  });

  it('dispatchByRow picks whole reward functions per row (OpenV-R1 reward_func)', async () => {
    const acc = dispatchByRow({ acc: rewardFunctions.accuracy, iou: rewardFunctions.iou50 }, { name: 'acc_or_iou', defaultMethod: 'acc' });
    const scorer = createRewardScorer([{ name: 'acc_or_iou', fn: acc }], { onError: () => {} });
    const r = await scorer.score([
      { completion: '<answer>5</answer>', groundTruth: '5', row: { reward_func: 'acc' } },
      { completion: '<answer>[0,0,10,10]</answer>', groundTruth: [0, 0, 10, 12], row: { reward_func: 'iou' } },
      { completion: '<answer>5</answer>', groundTruth: '5' },
      { completion: '<answer>5</answer>', groundTruth: '5', row: { reward_func: 'ioo' } },
    ]);
    expect(r.perReward['acc_or_iou']).toEqual([1, 1, 1, 0]);
    expect(r.errors['acc_or_iou']).toBe(1);
    expect(scorer.errorStats()['acc_or_iou']?.messages[0]).toMatch(/unknown method 'ioo'.*Did you mean 'iou'/);
    expect(() => dispatchByRow({ acc: rewardFunctions.accuracy }, { defaultMethod: 'nope' })).toThrow(/unknown method 'nope'/);
    const noDefault = dispatchByRow({ acc: rewardFunctions.accuracy });
    expect(() => noDefault({ completion: '', groundTruth: '' })).toThrow(/found no method in the row/);
  });
});

describe('error isolation', () => {
  it('a throwing function scores 0 for that sample, is counted and logged once per distinct message', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const flaky = (s: RewardSample) => {
        if (s.completion === 'bad') throw new Error('cannot score bad');
        return 1;
      };
      const scorer = createRewardScorer([{ name: 'flaky', fn: flaky }, 'format']);
      const batch = ['ok', 'bad', 'ok', 'bad'].map((completion) => ({ completion, groundTruth: '' }));
      const r = await scorer.score(batch);
      expect(r.perReward['flaky']).toEqual([1, 0, 1, 0]);
      expect(r.total).toEqual([1, 0, 1, 0]);
      expect(r.errors).toEqual({ flaky: 2, format: 0 });
      await scorer.score(batch);
      expect(scorer.errorStats()['flaky']).toEqual({ count: 4, messages: ['cannot score bad'] });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]?.[0])).toMatch(/reward 'flaky' failed on sample 1 .*cannot score bad/);
    } finally {
      warn.mockRestore();
    }
  });

  it('reports every failure to onError, including non-finite results', async () => {
    const events: Array<{ reward: string; sampleIndex: number; message: string; count: number }> = [];
    const scorer = createRewardScorer([{ name: 'nan', fn: () => NaN }], { onError: (e) => events.push(e) });
    const r = await scorer.score([{ completion: 'a', groundTruth: '' }, { completion: 'b', groundTruth: '' }]);
    expect(r.total).toEqual([0, 0]);
    expect(events.map((e) => [e.sampleIndex, e.count])).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect(events[0]?.message).toMatch(/returned NaN instead of a finite number/);
  });
});
