// Data-parallel GRPO gives the one-process result: 1 vs 2 vs 3 ranks (spawned through the launcher, Gloo over
// loopback) with the same global batch generate exactly the same completions and end with the same parameters
// (within fp32 tolerance: summation order of the gradients differs) for ZeRO stages 0, 1 and 2; per-rank optimizer
// memory falls as 1/N; a 2-rank checkpoint resumes on 3 ranks and on 1 rank and matches the uninterrupted run.
// promptsPerStep 4 over 3 ranks is uneven (2/1/1 groups), and the fixture prompts alternate image / text-only, so
// some ranks hold images while others hold text only.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { LETTERS_REWARD, rewardModule, tinyModelDir } from '../rl/helpers.js';
import { checkpointTensors, maxDiff, rankReport, runRanks } from './run-ranks.js';

const root = mkdtempSync(join(tmpdir(), 'vg-dist-eq-'));
const modelDir = tinyModelDir();
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
});
const reward = rewardModule(root, 'letters', LETTERS_REWARD);

/**
 * Parameters of runs with different rank counts agree within this (max |Δ| over all weights, absolute): the fp32
 * gradients are summed in a different order (per-rank micro-batches, then across ranks), so each AdamW step, which
 * moves a weight by up to ~lr = 3e-3, may differ slightly; we allow 1e-5 (0.33% of lr) per optimizer step.
 */
const paramTol = (optimizerSteps: number): number => 1e-5 * optimizerSteps;

function config(out: string, over: { steps?: number; stage?: 0 | 1 | 2; saveEvery?: number; full?: boolean } = {}) {
  // `full`: the global decisions too: dynamic sampling (kept groups counted over all ranks), μ = 2, KL to the
  // reference put into the rewards (per-completion KL gathered) with an adaptive β, token-level rollout correction,
  // batch-std advantage scaling, on LoRA adapters (the sharded optimizer over the adapter buffer; the frozen base is
  // the KL reference). Adapter dropout is 0: its masks depend on each rank's micro-batches.
  const full = over.full ? {
    algorithm: { updatesPerRollout: 2, klCoef: 0.05, klInReward: true, klTarget: 0.01, rolloutCorrection: 'token-truncate', scaleRewards: 'batch' },
  } : {};
  return {
    ...full,
    model: { path: modelDir, ...(over.full ? { lora: { enabled: true, r: 4, alpha: 8, dropout: 0 } } : {}) },
    data: { train: [{ path: join(modelDir, 'config.json') }] },  // prompts come from the rank script's ListSource
    rewards: [{ name: 'custom', module: reward }],
    rollout: { groupSize: 4, promptsPerStep: 4, maxNewTokens: 6, temperature: 1, ...(over.full ? { dynamicSampling: true, dynamicSamplingMaxRetries: 2 } : {}) },
    // micro-batches of 3 completions: the ranks' micro-batches differ from the single process's
    optim: { lr: 3e-3, microBatchSize: 3, maxGradNorm: 1, eps: 1e-6 },
    train: { steps: over.steps ?? 3, outDir: out, saveEvery: over.saveEvery ?? 0, keepLast: 3, seed: 11 },
    distributed: { zeroStage: over.stage ?? 1, timeoutSeconds: 60 },
  };
}

async function run(name: string, world: number, over: Parameters<typeof config>[1] = {}, resumeFrom?: string) {
  const out = join(root, name);
  if (resumeFrom) cpSync(resumeFrom, out, { recursive: true });
  const res = await runRanks(world, { config: config(out, over), resume: resumeFrom !== undefined });
  expect(res.exitCode, res.output).toBe(0);
  return { out, reports: Array.from({ length: world }, (_, r) => rankReport(out, r)), output: res.output };
}

function finalParams(out: string, step: number) {
  return checkpointTensors(join(out, 'checkpoints', `step-${String(step).padStart(6, '0')}`));
}

describe('data-parallel equivalence', () => {
  let base: Awaited<ReturnType<typeof run>>;

  it('1 rank: the reference run', async () => {
    base = await run('w1', 1);
    expect(base.reports[0]!.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(base.reports[0]!.stateBytes).toBe(-1);  // no communicator, plain AdamW
  });

  const cases: [number, 0 | 1 | 2][] = [[2, 1], [3, 1], [2, 2], [3, 2], [2, 0]];
  for (const [world, stage] of cases) {
    it(`${world} ranks, ZeRO stage ${stage}: same completions, same metrics, same parameters`, async () => {
      const r = await run(`w${world}-s${stage}`, world, { stage });
      const ref = base.reports[0]!;
      for (const rep of r.reports) {
        // every rank sees the global batch: the same completions, in the same order, as one process
        expect(rep.rollouts.map((x) => x.texts)).toEqual(ref.rollouts.map((x) => x.texts));
        rep.rollouts.forEach((x, i) => x.advantages.forEach((a, j) => expect(a).toBeCloseTo(ref.rollouts[i]!.advantages[j]!, 5)));
        rep.steps.forEach((s, i) => {
          expect(s.reward).toBeCloseTo(ref.steps[i]!.reward, 10);
          expect(s.loss!).toBeCloseTo(ref.steps[i]!.loss!, 5);
          expect(s.gradNorm!).toBeCloseTo(ref.steps[i]!.gradNorm!, 4);
        });
        // the metrics are identical on all ranks (computed on the gathered batch, norms reduced in double)
        expect(rep.steps).toEqual(r.reports[0]!.steps);
      }
      const d = maxDiff(finalParams(base.out, 3), finalParams(r.out, 3));
      console.log(`world ${world} stage ${stage}: max |Δparam| vs 1 rank = ${d.diff.toExponential(2)} (at ${d.where}; max |param| ${d.scale.toFixed(3)})`);
      expect(d.diff, d.where).toBeLessThanOrEqual(paramTol(3));
      // optimizer memory per rank: full moments at stage 0, 1/N of them at stages 1 and 2
      const full = 2 * 4 * readSafetensorsLength(base.out);
      const bytes = r.reports.map((x) => x.stateBytes);
      console.log(`world ${world} stage ${stage}: optimizer state bytes per rank ${bytes.join(' / ')} (one process: ${full})`);
      for (const b of bytes) {
        if (stage === 0) expect(b).toBe(full);
        else expect(Math.abs(b - full / world)).toBeLessThanOrEqual(8);
      }
      // rank 0 wrote the run folder; every rank its optimizer shard
      expect(readFileSync(join(r.out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
      const trainer = join(r.out, 'checkpoints', 'step-000003', 'trainer');
      expect(readdirSync(trainer).filter((f) => f.startsWith('optimizer')).sort()).toEqual(Array.from({ length: world }, (_, k) => `optimizer-rank${k}-of-${world}.safetensors`));
      expect(existsSync(join(trainer, 'optimizer.safetensors'))).toBe(false);
    });
  }

  it('LoRA with dynamic sampling, μ = 2, KL in the reward with adaptive β, rollout correction: 3 ranks (ZeRO 2) match 1 rank', async () => {
    const one = await run('full-w1', 1, { full: true });
    const three = await run('full-w3', 3, { full: true, stage: 2 });
    const ref = one.reports[0]!;
    for (const rep of three.reports) {
      expect(rep.rollouts.map((x) => x.texts)).toEqual(ref.rollouts.map((x) => x.texts));
      rep.steps.forEach((s, i) => {
        expect(s.reward).toBeCloseTo(ref.steps[i]!.reward, 6);
        expect(s.loss!).toBeCloseTo(ref.steps[i]!.loss!, 5);
      });
    }
    // dynamic sampling dropped or refilled the same groups, and β followed the same path
    const metrics = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { extra: Record<string, number> });
    const m1 = metrics(one.out), m3 = metrics(three.out);
    for (const k of ['dynamic_sampling/rounds', 'dynamic_sampling/dropped_groups', 'update/train_tokens']) expect(m3.map((m) => m.extra[k])).toEqual(m1.map((m) => m.extra[k]));
    console.log(`dynamic sampling per step: rounds ${m1.map((m) => m.extra['dynamic_sampling/rounds']).join(',')}, dropped groups ${m1.map((m) => m.extra['dynamic_sampling/dropped_groups']).join(',')}; β ${m1.map((m) => m.extra['kl/coef']!.toFixed(5)).join(',')}`);
    m3.forEach((m, i) => {
      expect(m.extra['kl/coef']).toBeCloseTo(m1[i]!.extra['kl/coef']!, 8);
      expect(m.extra['rollout_correction/weight_mean']).toBeCloseTo(m1[i]!.extra['rollout_correction/weight_mean']!, 5);
    });
    const d = maxDiff(finalParams(one.out, 3), finalParams(three.out, 3));
    console.log(`LoRA + full algorithm, world 3 stage 2: max |Δparam| vs 1 rank = ${d.diff.toExponential(2)} (at ${d.where})`);
    expect(d.diff, d.where).toBeLessThanOrEqual(paramTol(6));  // μ = 2: six optimizer steps
  });

  it('a 2-rank checkpoint resumes on 3 ranks and on 1 rank and matches the uninterrupted run', async () => {
    const first = await run('resume-w2', 2, { steps: 2, saveEvery: 2, stage: 2 });
    const on3 = await run('resume-w3', 3, { steps: 3, stage: 1 }, first.out);
    expect(on3.output).toMatch(/resumed from .*step-000002 \(step 2\)/);
    const on1 = await run('resume-w1', 1, { steps: 3 }, first.out);
    expect(on1.output).toMatch(/resumed from .*step-000002/);
    for (const [name, r] of [['3 ranks', on3], ['1 rank', on1]] as const) {
      expect(r.reports[0]!.rollouts.map((x) => x.texts)).toEqual(base.reports[0]!.rollouts.slice(2).map((x) => x.texts));
      const d = maxDiff(finalParams(base.out, 3), finalParams(r.out, 3));
      console.log(`resume 2 ranks -> ${name}: max |Δparam| vs uninterrupted = ${d.diff.toExponential(2)}`);
      expect(d.diff, `${name}: ${d.where}`).toBeLessThanOrEqual(paramTol(3));
    }
    // a 1-rank checkpoint keeps the single-file layout
    expect(readdirSync(join(on1.out, 'checkpoints', 'step-000003', 'trainer')).filter((f) => f.startsWith('optimizer'))).toEqual(['optimizer.safetensors']);
  });
});

/** Trainable values of the one-process run (the length of its optimizer moments). */
function readSafetensorsLength(out: string): number {
  const h = readSafetensorsHeader(join(out, 'checkpoints', 'step-000003', 'trainer', 'optimizer.safetensors'));
  return h.byName.get('exp_avg')!.shape.reduce((a, b) => a * b, 1);
}
