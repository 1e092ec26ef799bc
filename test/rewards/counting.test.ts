import { describe, expect, it } from 'vitest';

import { readCount, rewardFunctions } from '../../src/rewards/index.js';

const count = (answer: string, groundTruth: unknown) =>
  rewardFunctions.counting({ completion: `<think>counting objects</think><answer>${answer}</answer>`, groundTruth });

describe('counting', () => {
  it.each([
    ['3', 3],
    ['3', '3'],
    ['3.', '<answer> 3 </answer>'],
    ['\\boxed{3}', 3],
    ['There are 3 cubes.', 3],
    ['The answer is 3', 3],
    ['3 objects', 3],
    ['three', 3],
    ['Three.', 3],
    ['There are three cubes.', 3],
    ['twenty-one', 21],
    ['none', 0],
    ['zero', '0'],
    ['7', 'seven'],
    ['3.0', 3],
  ])('%s counts as %s', (answer, gt) => {
    expect(count(answer, gt)).toBe(1);
  });

  it.each([
    ['4', 3],
    ['3 or 4', 3],
    ['three cubes, one of them red', 3],
    ['2 red and 1 blue make 3', 3],
    ['3.5', 3],
    ['-3', 3],
    ['', 3],
    ['many', 3],
    ['3', 3.5],
    ['3', 'three or four'],
    ['3', null],
  ])('%s does not count as %s', (answer, gt) => {
    expect(count(answer, gt)).toBe(0);
  });

  it('prefers digits over words and needs one distinct count', () => {
    expect(readCount('one of the 4 spheres')).toBe(4);
    expect(readCount('three three three')).toBe(3);
    expect(readCount('I see someone')).toBeUndefined();
  });

  it('rejects options it does not know', () => {
    expect(() => rewardFunctions.counting({ completion: '3', groundTruth: 3, options: { words: false } })).toThrow(/unknown option 'words'/);
  });
});
