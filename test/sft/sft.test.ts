// Supervised fine-tuning: the completion cross-entropy falls, the model then generates the target answer,
// and a resumed run reproduces the uninterrupted one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../src/model/vlm-model.js';
import { SftTrainer, type SftStepMetrics } from '../../src/sft/sft-trainer.js';
import { fixturePrompts, ListSource, tinyModelDir } from '../rl/helpers.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'vg-sft-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const modelDir = tinyModelDir();
dirs.push(modelDir);

// The image prompt's answer is 3, the text prompt's 7.
function prompts() {
  const [img, txt] = fixturePrompts();
  return [{ ...img!, groundTruth: '3' }, { ...txt!, groundTruth: '<answer> 7 </answer>' }];
}

function cfg(out: string, steps: number) {
  return {
    model: { path: modelDir },
    data: { train: [{ path: join(modelDir, 'config.json') }] },
    optim: { lr: 3e-3, microBatchSize: 2 },
    sft: { batchSize: 2 },
    train: { steps, outDir: out, saveEvery: 10, seed: 1 },
  };
}

describe('SftTrainer', () => {
  it('lowers the completion loss until the model answers with the target', async () => {
    const out = tmp();
    const losses: SftStepMetrics[] = [];
    const t = new SftTrainer(cfg(out, 40), { prompts: new ListSource(prompts()) });
    t.on('step', (m) => losses.push(m));
    const res = await t.train();
    expect(losses[0]!.tokens).toBeGreaterThan(4);
    expect(losses.at(-1)!.loss).toBeLessThan(0.2 * losses[0]!.loss);
    const m = await loadModel(res.lastCheckpoint);
    const [img, txt] = prompts();
    const gens = await m.generate([img!.input, txt!.input], { maxNewTokens: 40, temperature: 0 });
    expect(gens.map((g) => g.text)).toEqual(['<answer>3</answer>', '<answer>7</answer>']);
    await m.dispose();
  });

  it('resumes exactly', async () => {
    const a = tmp(), b = tmp();
    await new SftTrainer(cfg(a, 20), { prompts: new ListSource(prompts()) }).train();
    await new SftTrainer(cfg(b, 10), { prompts: new ListSource(prompts()) }).train();
    await new SftTrainer(cfg(b, 20), { prompts: new ListSource(prompts()) }).train({ resume: true });
    const ma = await loadModel(join(a, 'checkpoints', 'step-000020'));
    const mb = await loadModel(join(b, 'checkpoints', 'step-000020'));
    expect(Buffer.from(mb.parameters().buffer).equals(Buffer.from(ma.parameters().buffer))).toBe(true);
    await ma.dispose();
    await mb.dispose();
  });

  it('optim.scheduleSteps stops partway down a longer schedule: the first steps equal the longer run', async () => {
    const lrs = async (steps: number, scheduleSteps: number | null): Promise<{ lr: number; loss: number }[]> => {
      const c = cfg(tmp(), steps);
      const t = new SftTrainer({ ...c, optim: { ...c.optim, schedule: 'cosine' as const, warmupSteps: 2, scheduleSteps } }, { prompts: new ListSource(prompts()) });
      const seen: { lr: number; loss: number }[] = [];
      t.on('step', (m: SftStepMetrics) => seen.push({ lr: m.lr, loss: m.loss }));
      await t.train();
      return seen;
    };
    const long = await lrs(12, null);
    const part = await lrs(6, 12);
    expect(part).toEqual(long.slice(0, 6));
    const short = await lrs(6, null);
    // Without scheduleSteps the 6-step run decays to (almost) zero by its end, unlike the first half of the long one.
    expect(short[5]!.lr).toBeLessThan(part[5]!.lr / 2);
  });
});
