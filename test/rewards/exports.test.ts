import { describe, expect, it } from 'vitest';

import * as root from '../../src/index.js';
import { rewardFunctions } from '../../src/rewards/index.js';

describe('package root', () => {
  it('re-exports the reward surface', () => {
    expect(root.rewardFunctions).toBe(rewardFunctions);
    expect(typeof root.createRewardScorer).toBe('function');
    expect(typeof root.loadRewardScorer).toBe('function');
    expect(typeof root.rewards.parseBoxes).toBe('function');
    expect(new root.RewardError('ERR_REWARD_UNKNOWN', 'm', 'r')).toBeInstanceOf(root.VlmGrpoError);
  });
});
