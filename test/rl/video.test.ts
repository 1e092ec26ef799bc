// End to end with videos: GRPO training steps and evaluation on a VLM-R1 JSONL of two video prompts (frame lists
// and a frame directory) with the tiny model: the dataset prepares them, rollouts generate from them, the policy
// update's forward/backward runs through the video features, and evaluate() scores them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { loadPromptDatasets } from '../../src/data/dataset.js';
import { loadModel } from '../../src/model/vlm-model.js';
import { createRewardScorer } from '../../src/rewards/index.js';
import { evaluate } from '../../src/rl/evaluate.js';
import { GrpoTrainer } from '../../src/rl/trainer.js';
import type { Rollout } from '../../src/rl/types.js';
import { LETTERS_REWARD, rewardModule, tinyModelDir } from './helpers.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

async function videoData(): Promise<string> {
  const d = mkdtempSync(join(tmpdir(), 'vg-rl-video-'));
  dirs.push(d);
  mkdirSync(join(d, 'clip'));
  for (let i = 0; i < 3; i++) {
    const px = Buffer.alloc(56 * 56 * 3, 40 + 60 * i);
    writeFileSync(join(d, 'clip', `${i}.png`), await sharp(px, { raw: { width: 56, height: 56, channels: 3 } }).png().toBuffer());
  }
  const rows = [
    { id: 'v1', video: ['clip/0.png', 'clip/1.png'], conversations: [{ from: 'human', value: '<video>What changes?' }, { from: 'gpt', value: 'brightness' }] },
    { id: 'v2', video: 'clip', conversations: [{ from: 'human', value: 'Count the frames. <video>' }, { from: 'gpt', value: '3' }] },
  ];
  const file = join(d, 'videos.jsonl');
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

describe('videos end to end', () => {
  it('GrpoTrainer trains on video prompts and evaluate() scores them', async () => {
    const modelDir = tinyModelDir();
    dirs.push(modelDir);
    const data = await videoData();
    const out = mkdtempSync(join(tmpdir(), 'vg-rl-video-out-'));
    dirs.push(out);
    const reward = rewardModule(out, 'letters', LETTERS_REWARD);
    const video = { minPixels: 3136, maxPixels: 3136 };
    const t = new GrpoTrainer({
      model: { path: modelDir },
      data: { train: [{ path: data }], video, promptTemplate: 'none' },
      rewards: [{ name: 'custom', module: reward }],
      rollout: { groupSize: 2, promptsPerStep: 2, maxNewTokens: 4, temperature: 1 },
      optim: { lr: 1e-3, microBatchSize: 2, maxGradNorm: 1 },
      train: { steps: 2, outDir: out, saveEvery: 10, keepLast: 1, seed: 3 },
    }, {});
    const batches: Rollout[][] = [];
    t.on('rollouts', (r) => batches.push([...r.rollouts]));
    const res = await t.train();
    expect(res.steps).toBe(2);
    expect(batches).toHaveLength(2);
    const ids = new Set(batches.flat().map((r) => r.prompt.id));
    expect(ids).toEqual(new Set(['v1', 'v2']));
    for (const r of batches.flat()) {
      expect(r.prompt.input.videoGridThw).toEqual([[r.prompt.id === 'v1' ? 1 : 2, 4, 4]]);
      expect(r.prompt.input.secondPerGridTs).toEqual([1]);
      expect(r.tokens.length).toBeGreaterThan(0);
    }

    const model = await loadModel(modelDir);
    try {
      const { train } = await loadPromptDatasets({ sources: [data], shuffle: false, video }, { processor: model, log: () => {} });
      const scorer = createRewardScorer(['format']);
      const ev = await evaluate(model, train, scorer, { samples: 1, temperature: 0, maxNewTokens: 3, batchSize: 2, seed: 1 });
      expect(ev.prompts).toBe(2);
      expect(ev.details.map((d) => d.id)).toEqual(['v1', 'v2']);
    } finally {
      await model.dispose();
    }
  }, 60_000);
});
