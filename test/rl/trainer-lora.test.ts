// GRPO with LoRA: only the adapters train, the frozen base (adapters off) is the KL reference, checkpoints hold
// merged weights plus a PEFT adapter, and a resumed run reproduces the uninterrupted one.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../src/model/vlm-model.js';
import type { StepMetrics } from '../../src/report/step-metrics.js';
import { GrpoTrainer } from '../../src/rl/trainer.js';
import { fixturePrompts, LETTERS_REWARD, ListSource, rewardModule, tinyModelDir } from './helpers.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'vg-lora-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const modelDir = tinyModelDir();
dirs.push(modelDir);

function cfg(out: string, reward: string, steps: number, lora: Record<string, unknown> = {}) {
  return {
    model: { path: modelDir, lora: { enabled: true, r: 4, alpha: 8, dropout: 0, ...lora } },
    data: { train: [{ path: join(modelDir, 'config.json') }] },
    rewards: [{ name: 'custom', module: reward }],
    rollout: { groupSize: 4, promptsPerStep: 2, maxNewTokens: 6 },
    algorithm: { klCoef: 0.05 },
    optim: { lr: 1e-2, microBatchSize: 4 },
    train: { steps, outDir: out, saveEvery: 2, keepLast: 3, seed: 4 },
  };
}

describe('GRPO with LoRA', () => {
  it('trains only the adapters, with the frozen base as KL reference, and saves merged weights + a PEFT adapter', async () => {
    const out = tmp();
    const reward = rewardModule(out, 'letters', LETTERS_REWARD);
    const base = await loadModel(modelDir);
    const baseParams = base.parameters().slice();
    const t = new GrpoTrainer(cfg(out, reward, 3), { prompts: new ListSource(fixturePrompts()), model: base });
    const steps: StepMetrics[] = [];
    t.on('step', (m) => steps.push(m));
    await t.train();
    expect(Buffer.from(base.parameters().buffer).equals(Buffer.from(baseParams.buffer))).toBe(true);  // base untouched
    expect(steps[0]!.kl).toBe(0);                 // B = 0 at the start: policy == reference
    expect(steps[2]!.kl!).toBeGreaterThan(0);     // the adapters moved the policy
    const ck = join(out, 'checkpoints', 'step-000003');
    expect(existsSync(join(ck, 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(ck, 'adapter_model.safetensors'))).toBe(true);
    // The checkpoint's model.safetensors is the merged model: it reproduces the adapted model's logits.
    const merged = await loadModel(ck);
    const input = fixturePrompts()[1]!.input;
    const a = await base.forward({ ...input, returnLogits: true });
    const b = await merged.forward({ ...input, returnLogits: true });
    let worst = 0;
    for (let i = 0; i < a.logits!.length; i++) worst = Math.max(worst, Math.abs(a.logits![i]! - b.logits![i]!));
    expect(worst).toBeLessThan(1e-4);
    await merged.dispose();
    await base.dispose();
  });

  it('KL in the reward with an adaptive β, and rollout importance weights near 1 (same kernels for rollout and training)', async () => {
    const out = tmp();
    const reward = rewardModule(out, 'letters', LETTERS_REWARD);
    const c = cfg(out, reward, 4);
    c.algorithm = { klCoef: 0.05, klInReward: true, klTarget: 0.01, klHorizon: 10, rolloutCorrection: 'token-truncate' } as typeof c.algorithm;
    const t = new GrpoTrainer(c, { prompts: new ListSource(fixturePrompts()) });
    const steps: StepMetrics[] = [];
    t.on('step', (m) => steps.push(m));
    await t.train();
    expect(Object.keys(steps[0]!.rewards)).toContain('kl_penalty');
    const coefs = steps.map((m) => m.extra!['kl/coef']!);
    expect(coefs[0]).toBe(0.05);
    expect(new Set(coefs).size).toBeGreaterThan(1);  // β adapts
    for (const m of steps) expect(m.extra!['rollout_correction/weight_mean']!).toBeGreaterThan(0.99);
    for (const m of steps) expect(m.extra!['rollout_correction/weight_mean']!).toBeLessThan(1.01);
  });

  it('a resumed LoRA run reproduces the uninterrupted run exactly', async () => {
    const a = tmp(), b = tmp();
    const reward = rewardModule(a, 'letters', LETTERS_REWARD);
    await new GrpoTrainer(cfg(a, reward, 4), { prompts: new ListSource(fixturePrompts()) }).train();
    await new GrpoTrainer(cfg(b, reward, 2), { prompts: new ListSource(fixturePrompts()) }).train();
    await new GrpoTrainer(cfg(b, reward, 4), { prompts: new ListSource(fixturePrompts()) }).train({ resume: true });
    const ma = await loadModel(join(a, 'checkpoints', 'step-000004'));
    const mb = await loadModel(join(b, 'checkpoints', 'step-000004'));
    expect(Buffer.from(mb.parameters().buffer).equals(Buffer.from(ma.parameters().buffer))).toBe(true);
    await ma.dispose();
    await mb.dispose();
  });
});
