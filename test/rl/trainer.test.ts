// The GRPO trainer end to end on a tiny model: rewards, advantages, losses and checkpoints agree with each other;
// groups stay with their own prompts; resume reproduces the uninterrupted run exactly; abort saves and resolves;
// and a rewarded behaviour is learned.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../src/model/vlm-model.js';
import type { StepMetrics } from '../../src/report/step-metrics.js';
import { GrpoTrainer } from '../../src/rl/trainer.js';
import type { Rollout } from '../../src/rl/types.js';
import { fixturePrompts, GROUND_TRUTH_REWARD, LETTERS_REWARD, ListSource, rewardModule, tinyModelDir } from './helpers.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'vg-rl-'));
  dirs.push(d);
  return d;
}
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const modelDir = tinyModelDir();
dirs.push(modelDir);

function baseConfig(out: string, reward: string, over: Record<string, unknown> = {}) {
  return {
    model: { path: modelDir },
    data: { train: [{ path: join(modelDir, 'config.json') }] },  // prompts come from the test's source
    rewards: [{ name: 'custom', module: reward }],
    rollout: { groupSize: 4, promptsPerStep: 2, maxNewTokens: 6, temperature: 1 },
    optim: { lr: 3e-3, microBatchSize: 3, maxGradNorm: 1 },
    train: { steps: 3, outDir: out, saveEvery: 2, keepLast: 2, seed: 5 },
    ...over,
  };
}

describe('GrpoTrainer', () => {
  it('runs steps whose rewards, advantages, losses and checkpoints are consistent', async () => {
    const out = tmp();
    const reward = rewardModule(out, 'gt', GROUND_TRUTH_REWARD);
    const t = new GrpoTrainer(baseConfig(out, reward), { prompts: new ListSource(fixturePrompts()) });
    const steps: StepMetrics[] = [];
    const batches: Rollout[][] = [];
    t.on('step', (m) => steps.push(m));
    t.on('rollouts', (r) => batches.push([...r.rollouts]));
    const res = await t.train();
    expect(res.steps).toBe(3);
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3]);
    for (const [k, rs] of batches.entries()) {
      const m = steps[k]!;
      expect(rs).toHaveLength(8);
      // every completion is scored against its own prompt and normalised within its own group
      for (const r of rs) expect(r.reward).toBeCloseTo(Number(r.prompt.groundTruth) + 0.01 * (r.text.match(/[A-Za-z]/g) ?? []).length, 6);
      for (let g = 0; g < 2; g++) {
        const grp = rs.filter((r) => r.group === g);
        expect(grp).toHaveLength(4);
        expect(new Set(grp.map((r) => r.prompt.id)).size).toBe(1);
        const mean = grp.reduce((a, r) => a + r.reward, 0) / 4;
        const std = Math.sqrt(grp.reduce((a, r) => a + (r.reward - mean) ** 2, 0) / 3);
        for (const r of grp) expect(r.advantage).toBeCloseTo((r.reward - mean) / (std + 1e-6), 4);
      }
      expect(rs[0]!.prompt.id).not.toBe(rs[4]!.prompt.id);
      expect(m.reward.mean).toBeCloseTo(rs.reduce((a, r) => a + r.reward, 0) / rs.length, 6);
      // μ = 1, β = 0: the token-mean loss is −Σ A·n / Σ n (ratio 1 everywhere)
      const num = rs.reduce((a, r) => a + r.advantage * r.tokens.length, 0);
      const den = rs.reduce((a, r) => a + r.tokens.length, 0);
      expect(m.loss).toBeCloseTo(-num / den, 4);
      expect(m.extra!['update/ratio_mean']).toBeCloseTo(1, 5);
      expect(m.gradNorm).toBeGreaterThan(0);
    }
    // The run folder holds one metrics line and one rollouts file per step.
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).step)).toEqual([1, 2, 3]);
    expect(readdirSync(join(out, 'rollouts')).sort()).toEqual(['step-000001.parquet', 'step-000002.parquet', 'step-000003.parquet']);
    // Checkpoints: step 2 and the final step 3, each a loadable model folder equal to the trained weights.
    const names = readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('step-'));
    expect(names.sort()).toEqual(['step-000002', 'step-000003']);
    const m = await loadModel(join(out, 'checkpoints', 'step-000003'));
    const reloaded = m.parameters();
    const src = await loadModel(modelDir);
    const base = src.parameters();
    let changed = 0;
    for (let i = 0; i < reloaded.length; i++) if (reloaded[i] !== base[i]) changed++;
    expect(changed).toBeGreaterThan(0);  // training moved the weights and the checkpoint holds them
    await m.dispose();
    await src.dispose();
  });

  it('a resumed run reproduces the uninterrupted run exactly', async () => {
    const a = tmp(), b = tmp();
    const reward = rewardModule(a, 'letters', LETTERS_REWARD);
    await new GrpoTrainer(baseConfig(a, reward, { train: { steps: 4, outDir: a, saveEvery: 2, keepLast: 3, seed: 9 } }), { prompts: new ListSource(fixturePrompts()) }).train();
    await new GrpoTrainer(baseConfig(b, reward, { train: { steps: 2, outDir: b, saveEvery: 2, keepLast: 3, seed: 9 } }), { prompts: new ListSource(fixturePrompts()) }).train();
    await new GrpoTrainer(baseConfig(b, reward, { train: { steps: 4, outDir: b, saveEvery: 2, keepLast: 3, seed: 9 } }), { prompts: new ListSource(fixturePrompts()) }).train({ resume: true });
    const ma = await loadModel(join(a, 'checkpoints', 'step-000004'));
    const mb = await loadModel(join(b, 'checkpoints', 'step-000004'));
    expect(Buffer.from(mb.parameters().buffer).equals(Buffer.from(ma.parameters().buffer))).toBe(true);
    await ma.dispose();
    await mb.dispose();
  });

  it('runs every loss variant: μ = 2 with dual-clip, GSPO, CISPO, seq-mean aggregations, dynamic sampling', async () => {
    const out = tmp();
    const reward = rewardModule(out, 'letters', LETTERS_REWARD);
    const variants = [
      { algorithm: { updatesPerRollout: 2, dualClip: 3 } },
      { algorithm: { ratioLevel: 'sequence', lossAgg: 'seq-mean-token-mean' } },
      { algorithm: { policyLoss: 'cispo', lossAgg: 'seq-mean-token-sum' } },
      { algorithm: { lossAgg: 'seq-mean-token-sum-norm', scaleRewards: 'none', entropyCoef: 0.01 } },
      { algorithm: { advantage: 'rloo', scaleRewards: 'none' }, rollout: { groupSize: 4, promptsPerStep: 2, maxNewTokens: 6, dynamicSampling: true, maskTruncated: true, overlongBuffer: 2 } },
    ];
    for (const [i, v] of variants.entries()) {
      const dir = join(out, `v${i}`);
      const steps: StepMetrics[] = [];
      const t = new GrpoTrainer(baseConfig(dir, reward, { ...v, train: { steps: 2, outDir: dir, saveEvery: 0, seed: i } }), { prompts: new ListSource(fixturePrompts()) });
      t.on('step', (m) => steps.push(m));
      await t.train();
      expect(steps, JSON.stringify(v)).toHaveLength(2);
      for (const m of steps) {
        if (m.loss !== null) expect(Number.isFinite(m.loss), JSON.stringify(v)).toBe(true);
        expect(m.entropy === null || m.entropy >= 0).toBe(true);
      }
    }
  });

  it('never blocks the event loop while it trains', async () => {
    const out = tmp();
    const reward = rewardModule(out, 'letters', LETTERS_REWARD);
    const t = new GrpoTrainer(baseConfig(out, reward, {
      rollout: { groupSize: 8, promptsPerStep: 2, maxNewTokens: 24, temperature: 1 },
      train: { steps: 3, outDir: out, saveEvery: 0, seed: 3 },
    }), { prompts: new ListSource(fixturePrompts()) });
    let ticks = 0, worstGap = 0, last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      ticks++;
    }, 2);
    const t0 = performance.now();
    await t.train();
    clearInterval(timer);
    const ms = performance.now() - t0;
    // The heavy work runs on the model's native thread: the loop keeps ticking throughout.
    expect(ticks, `${ticks} ticks in ${ms.toFixed(0)} ms`).toBeGreaterThan(ms / 50);
    expect(worstGap).toBeLessThan(Math.max(500, ms / 3));
  });

  it('an AbortSignal stops after the current step, saves a checkpoint and resolves', async () => {
    const out = tmp();
    const reward = rewardModule(out, 'letters', LETTERS_REWARD);
    const ac = new AbortController();
    const t = new GrpoTrainer(baseConfig(out, reward, { train: { steps: 50, outDir: out, saveEvery: 0, seed: 1 } }), { prompts: new ListSource(fixturePrompts()) });
    t.on('step', (m) => { if (m.step === 2) ac.abort('test'); });
    const res = await t.train({ signal: ac.signal });
    expect(res.stoppedEarly).toBe(true);
    expect(res.steps).toBe(2);
    expect(res.lastCheckpoint).toMatch(/step-000002$/);
  });

  it('learns a rewarded behaviour: mean reward rises clearly above its start, across seeds', async () => {
    for (const seed of [1, 2]) {
      const out = tmp();
      const reward = rewardModule(out, 'letters', LETTERS_REWARD);
      const cfg = baseConfig(out, reward, {
        rollout: { groupSize: 8, promptsPerStep: 2, maxNewTokens: 6, temperature: 1 },
        optim: { lr: 1e-2, microBatchSize: 16, maxGradNorm: 1 },
        train: { steps: 30, outDir: out, saveEvery: 0, seed },
      });
      const rewards: number[] = [];
      const t = new GrpoTrainer(cfg, { prompts: new ListSource(fixturePrompts()) });
      t.on('step', (m) => rewards.push(m.reward.mean));
      await t.train();
      const first = rewards.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
      const last = rewards.slice(-5).reduce((a, b) => a + b, 0) / 5;
      expect(last, `seed ${seed}: reward went from ${first.toFixed(3)} to ${last.toFixed(3)}`).toBeGreaterThan(first + 0.2);
    }
  }, 300_000);
});
