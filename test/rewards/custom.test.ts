import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { loadCustomReward, loadRewardScorer, RewardError, type RewardSample } from '../../src/rewards/index.js';
import { splitModuleSpec } from '../../src/rewards/custom.js';

const fixtures = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures');
const quiet = { onError: () => {} };

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RewardError);
    return (e as RewardError).code;
  }
  return undefined;
}

describe('loading custom reward modules', () => {
  it('splits path:export specs without mistaking drive letters', () => {
    expect(splitModuleSpec('./r.ts:score')).toEqual({ path: './r.ts', exportName: 'score' });
    expect(splitModuleSpec('./r.ts')).toEqual({ path: './r.ts' });
    expect(splitModuleSpec('C:\\rewards\\r.js')).toEqual({ path: 'C:\\rewards\\r.js' });
  });

  it('loads a default export, a `reward` export, a named export, and detects batched modules', async () => {
    const sync = await loadCustomReward('sync-reward.ts', { cwd: fixtures });
    expect([sync.name, sync.exportName, sync.batched]).toEqual(['sync-reward', 'default', false]);
    const asyncR = await loadCustomReward(join(fixtures, 'async-reward.mjs'));
    expect([asyncR.exportName, asyncR.batched]).toEqual(['reward', false]);
    const batched = await loadCustomReward('batched-reward.ts', { cwd: fixtures });
    expect(batched.batched).toBe(true);
    const flagged = await loadCustomReward('flagged-batched.js:score', { cwd: fixtures });
    expect([flagged.name, flagged.exportName, flagged.batched]).toEqual(['flagged-batched:score', 'score', true]);
    const only = await loadCustomReward('throwing-reward.js', { cwd: fixtures });
    expect(only.exportName).toBe('default');
  });

  it('names the path and the fix for missing modules, non-functions and import errors', async () => {
    expect(await codeOf(loadCustomReward('does-not-exist.ts', { cwd: fixtures }))).toBe('ERR_REWARD_MODULE_NOT_FOUND');
    await expect(loadCustomReward('does-not-exist.ts', { cwd: fixtures })).rejects.toThrow(/not found: .*does-not-exist\.ts/);
    await expect(loadCustomReward('does-not-exist.ts', { cwd: fixtures })).rejects.toThrow(/Check the path/);
    expect(await codeOf(loadCustomReward('not-a-function.js', { cwd: fixtures }))).toBe('ERR_REWARD_NOT_A_FUNCTION');
    await expect(loadCustomReward('not-a-function.js', { cwd: fixtures })).rejects.toThrow(
      /does not export a reward function \('default' is number\)\. Its exports: default \(number\), name \(string\)/,
    );
    await expect(loadCustomReward('two-functions.js', { cwd: fixtures })).rejects.toThrow(/several functions \(first, second\).*two-functions\.js:first/s);
    await expect(loadCustomReward('sync-reward.ts:missing', { cwd: fixtures })).rejects.toThrow(/has no export 'missing'/);
    expect(await codeOf(loadCustomReward('import-error.js', { cwd: fixtures }))).toBe('ERR_REWARD_MODULE_LOAD');
    await expect(loadCustomReward('import-error.js', { cwd: fixtures })).rejects.toThrow(/this module fails while loading/);
    expect(await codeOf(loadCustomReward('.', { cwd: fixtures }))).toBe('ERR_REWARD_MODULE_NOT_FOUND');
  });
});

describe('custom rewards in a scorer', () => {
  it('runs a sync per-sample module with the row and ground truth', async () => {
    const scorer = await loadRewardScorer(['./sync-reward.ts'], { cwd: fixtures, ...quiet });
    const r = await scorer.score([
      { completion: 'cat 5', groundTruth: 5, row: { keyword: 'cat' } },
      { completion: 'dog 5', groundTruth: 5, row: { keyword: 'cat' } },
      { completion: 'cat 4', groundTruth: 5, row: { keyword: 'cat' } },
    ]);
    expect(r.perReward['sync-reward']).toEqual([1, 0, 0]);
  });

  it('runs an async module with image sizes and options; a throwing sample scores 0 and is counted', async () => {
    const scorer = await loadRewardScorer([{ name: 'area', module: './async-reward.mjs', options: { scale: 2 }, weight: 0.5 }], {
      cwd: fixtures,
      ...quiet,
    });
    const r = await scorer.score([
      { completion: 'a', groundTruth: '', images: [{ width: 1000, height: 500 }] },
      { completion: 'b', groundTruth: '' },
    ]);
    expect(r.perReward['async-reward']).toEqual([1, 0]);
    expect(r.total).toEqual([0.5, 0]);
    expect(r.errors['async-reward']).toBe(1);
    expect(scorer.errorStats()['async-reward']?.messages).toEqual(["sample 'b' has no image"]);
  });

  it('runs batched modules and isolates a bad batch result', async () => {
    const scorer = await loadRewardScorer(['batched-reward.ts', 'flagged-batched.js:score', 'format'], { cwd: fixtures, ...quiet });
    const batch = (texts: string[]): RewardSample[] => texts.map((completion) => ({ completion, groundTruth: '' }));
    const r = await scorer.score(batch(['good', 'goodgood', 'bad']));
    expect(r.perReward['batched-reward']).toEqual([0.5, 1, 3 / 8]);
    expect(r.perReward['flagged-batched:score']).toEqual([1, 1, 0]);
    const bad = await scorer.score(batch(['good', 'short']));
    expect(bad.perReward['flagged-batched:score']).toEqual([0, 0]);
    expect(bad.errors['flagged-batched:score']).toBe(2);
    expect(scorer.errorStats()['flagged-batched:score']?.messages[0]).toMatch(/returned 1 values for 2 samples/);
    expect(bad.perReward['batched-reward']).toEqual([0.8, 1]);
  });

  it('scores throws, NaN, non-numbers and time-outs as 0, counts them, and keeps going', async () => {
    const events: string[] = [];
    const scorer = await loadRewardScorer(['throwing-reward.js', 'hanging-reward.js'], {
      cwd: fixtures,
      timeoutMs: 50,
      onError: (e) => events.push(`${e.reward}#${e.sampleIndex}: ${e.message}`),
    });
    const r = await scorer.score(['fine', 'boom', 'nan', 'str', 'hang'].map((completion) => ({ completion, groundTruth: '' })));
    expect(r.perReward['throwing-reward']).toEqual([1, 0, 0, 0, 1]);
    expect(r.perReward['hanging-reward']).toEqual([0.5, 0.5, 0.5, 0.5, 0]);
    expect(r.errors).toEqual({ 'throwing-reward': 3, 'hanging-reward': 1 });
    expect(events).toContain('throwing-reward#1: kaboom in boom');
    expect(events.some((e) => /throwing-reward#2: .*returned NaN/.test(e))).toBe(true);
    expect(events.some((e) => /throwing-reward#3: .*returned a string/.test(e))).toBe(true);
    expect(events.some((e) => /hanging-reward#4: .*did not settle within 50 ms/.test(e))).toBe(true);
  });

  it('fails up front when a module path does not exist', async () => {
    await expect(loadRewardScorer(['accuracy', './nope.ts'], { cwd: fixtures })).rejects.toThrow(/Custom reward module not found/);
  });
});
