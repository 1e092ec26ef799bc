/**
 * GrpoTrainer: the GRPO loop. Per step: take promptsPerStep prompts, generate G completions each (batched,
 * KV-cached), score them, compute group-relative advantages (optionally dropping zero-signal groups and refilling,
 * DAPO), then μ policy updates with the fused GRPO loss, and log, checkpoint and emit events. Everything heavy runs
 * on the model's native thread, so the event loop stays free; an AbortSignal stops the run after the current phase,
 * saves a checkpoint and resolves.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint/checkpoint.js';
import { parseConfig } from '../config/load.js';
import type { TrainConfig, TrainConfigInput } from '../config/schema.js';
import { setNumThreads } from '../native/runtime.js';
import { loadModel, type VlmModel } from '../model/vlm-model.js';
import { loadRewardScorer, type RewardScorer } from '../rewards/scorer.js';
import { computeAdvantages } from './advantages.js';
import { AdamW } from './optimizer.js';
import { scoreLogprobs, updatePolicy, type UpdateStats } from './policy-update.js';
import { generateRollouts, scoreRollouts } from './rollout.js';
import type { PromptSource, Rollout } from './types.js';

/** Summary of one training step (also written as one line of metrics.jsonl by the CLI). */
export interface TrainerStepMetrics {
  step: number;
  reward: { mean: number; std: number };
  rewards: Record<string, { mean: number; std: number }>;
  /** Mean of the `accuracy` reward when one is configured, else null. */
  accuracy: number | null;
  fracZeroStdGroups: number;
  completionLength: { mean: number; min: number; max: number };
  truncatedShare: number;
  update: UpdateStats;
  tokensPerSecond: number;
  seconds: { generation: number; scoring: number; update: number; total: number };
  rewardErrors: Record<string, number>;
  dynamicSampling: { rounds: number; droppedGroups: number };
}

export interface TrainerEvents {
  step: [TrainerStepMetrics];
  rollouts: [{ step: number; rollouts: readonly Rollout[] }];
  checkpoint: [{ step: number; dir: string }];
  log: [string];
}

export interface TrainResult {
  /** Steps completed in total (including those before a resume). */
  steps: number;
  stoppedEarly: boolean;
  lastCheckpoint: string | null;
}

export interface TrainerOptions {
  /** Where prompts come from (required until the dataset is wired in by the caller). */
  prompts: PromptSource;
  /** Use an already loaded policy model (the trainer then does not dispose it). */
  model?: VlmModel;
  /** Base folder for relative paths when `config` is a raw object. */
  baseDir?: string;
}

function meanStd(xs: readonly number[]): { mean: number; std: number } {
  if (xs.length === 0) return { mean: 0, std: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, std: Math.sqrt(v) };
}

export class GrpoTrainer extends EventEmitter<TrainerEvents> {
  readonly config: TrainConfig;
  readonly #opts: TrainerOptions;
  #model: VlmModel | undefined;
  #ref: VlmModel | undefined;
  #scorer: RewardScorer | undefined;
  #optimizer: AdamW | undefined;
  #step = 0;

  constructor(config: TrainConfig | TrainConfigInput, options: TrainerOptions) {
    super();
    this.config = parseConfig(config, { source: 'trainer config', ...(options.baseDir ? { baseDir: options.baseDir } : {}) });
    this.#opts = options;
  }

  get model(): VlmModel | undefined {
    return this.#model;
  }

  /** Steps completed so far. */
  get step(): number {
    return this.#step;
  }

  #log(line: string): void {
    this.emit('log', line);
  }

  async #setup(): Promise<void> {
    const c = this.config;
    if (c.model.threads > 0) setNumThreads(c.model.threads);
    this.#model = this.#opts.model ?? (await loadModel(c.model.path, { device: c.model.device }));
    if (c.algorithm.klCoef > 0) this.#ref = await loadModel(c.model.path, { device: c.model.device });
    this.#scorer = await loadRewardScorer(
      c.rewards.map((r) => (r.name === 'custom'
        ? { name: r.export ? `${r.module}:${r.export}` : r.module!, module: r.export ? `${r.module}:${r.export}` : r.module!, weight: r.weight, options: r.options, batched: r.mode === 'batch' }
        : { name: r.name, weight: r.weight, options: r.options })),
      { onError: (e) => this.#log(`reward ${e.reward} failed on sample ${e.sampleIndex} (${e.count} so far): ${e.message}`) },
    );
    const model = this.#model;
    const layout = model.layout();
    const visionBegin = Math.min(model.parameters().length, ...layout.filter((e) => e.vision).map((e) => e.offset));
    const end = c.model.freezeVision ? visionBegin : model.parameters().length;
    this.#optimizer = new AdamW(
      { params: () => model.parameters().subarray(0, end), grads: () => model.gradients().subarray(0, end) },
      { ...c.optim, totalSteps: c.train.steps * c.algorithm.updatesPerRollout },
    );
    mkdirSync(c.train.outDir, { recursive: true });
    writeFileSync(join(c.train.outDir, 'config.json'), JSON.stringify(c, null, 2));
  }

  #resume(): void {
    const c = this.config;
    const last = latestCheckpoint(c.train.outDir);
    if (!last) {
      this.#log('resume: no checkpoint in the run folder; starting from the base model');
      return;
    }
    const model = this.#model!;
    const ck = loadCheckpoint(last.dir, model.layout(), model.parameters().length);
    model.parameters().set(ck.params);
    this.#optimizer!.restore(ck.optimizer.expAvg, ck.optimizer.expAvgSq, Number(ck.state.optimizerStep ?? 0));
    if (ck.state.dataCursor !== undefined) this.#opts.prompts.restore(ck.state.dataCursor);
    this.#step = ck.step;
    this.#log(`resumed from ${last.dir} (step ${ck.step})`);
  }

  #checkpoint(): string {
    const c = this.config;
    const model = this.#model!;
    const opt = this.#optimizer!;
    const dir = saveCheckpoint(c.train.outDir, {
      step: this.#step,
      modelDir: c.model.path,
      layout: model.layout(),
      params: model.parameters(),
      exportDtype: c.train.exportDtype,
      optimizer: { expAvg: opt.expAvg, expAvgSq: opt.expAvgSq, step: opt.step },
      state: { optimizerStep: opt.step, dataCursor: this.#opts.prompts.cursor(), config: c },
    }, c.train.keepLast);
    this.emit('checkpoint', { step: this.#step, dir });
    return dir;
  }

  /** One GRPO step; returns its metrics. */
  async #trainStep(signal?: AbortSignal): Promise<TrainerStepMetrics> {
    const c = this.config;
    const model = this.#model!;
    const G = c.rollout.groupSize;
    const t0 = performance.now();
    let genSec = 0, scoreSec = 0;
    let kept: Rollout[] = [];
    let rounds = 0, dropped = 0;
    const errors: Record<string, number> = {};
    let allGroupStd: number[] = [];
    // Generate and score; with dynamic sampling, drop zero-std groups and refill (bounded).
    for (let round = 0; ; round++) {
      signal?.throwIfAborted();
      const need = c.rollout.promptsPerStep - kept.length / G;
      const prompts = await this.#opts.prompts.next(need);
      const tg = performance.now();
      const rollouts = await generateRollouts(model, prompts, c, this.#step, round);
      const ts = performance.now();
      genSec += (ts - tg) / 1000;
      signal?.throwIfAborted();
      const errs = await scoreRollouts(rollouts, this.#scorer!, c);
      scoreSec += (performance.now() - ts) / 1000;
      for (const [k, v] of Object.entries(errs)) errors[k] = (errors[k] ?? 0) + v;
      rounds++;
      const adv = computeAdvantages(rollouts.map((r) => r.reward), G, { estimator: c.algorithm.advantage, scale: 'none', eps: c.algorithm.stdEps });
      if (round === 0) allGroupStd = Array.from(adv.groupStd);
      if (!c.rollout.dynamicSampling) {
        kept = rollouts;
        break;
      }
      for (let g = 0; g < prompts.length; g++) {
        if (adv.groupStd[g]! > 0) kept.push(...rollouts.slice(g * G, (g + 1) * G));
        else dropped++;
      }
      if (kept.length / G >= c.rollout.promptsPerStep || round >= c.rollout.dynamicSamplingMaxRetries) break;
    }
    if (kept.length === 0) {
      this.#log(`step ${this.#step + 1}: every group had equal rewards after ${rounds} rounds; no update`);
    }
    // Regroup so group indices are consecutive, then the advantages of the kept groups.
    kept.forEach((r, i) => { r.group = Math.floor(i / G); });
    const adv = computeAdvantages(kept.map((r) => r.reward), G, { estimator: c.algorithm.advantage, scale: c.algorithm.scaleRewards, eps: c.algorithm.stdEps });
    kept.forEach((r, i) => { r.advantage = adv.advantages[i]!; });
    const tu = performance.now();
    signal?.throwIfAborted();
    let update: UpdateStats = { loss: 0, kl: 0, entropy: 0, clipFracLow: 0, clipFracHigh: 0, clipFracDual: 0, ratioMean: 0, gradNorm: 0, lr: this.#optimizer!.currentLr(), trainTokens: 0, skippedSteps: 0 };
    if (kept.length) {
      const oldLogprobs = c.algorithm.updatesPerRollout > 1 ? await scoreLogprobs(model, kept, c) : undefined;
      const refLogprobs = this.#ref ? await scoreLogprobs(this.#ref, kept, c) : undefined;
      update = await updatePolicy(model, kept, c, this.#optimizer!, { ...(oldLogprobs ? { oldLogprobs } : {}), ...(refLogprobs ? { refLogprobs } : {}) });
    }
    const updSec = (performance.now() - tu) / 1000;
    this.#step++;
    const lengths = kept.map((r) => r.tokens.length);
    const names = this.#scorer!.names;
    const rewards: Record<string, { mean: number; std: number }> = {};
    for (const n of [...names, ...(c.rollout.overlongBuffer > 0 ? ['overlong'] : [])]) rewards[n] = meanStd(kept.map((r) => r.rewards[n] ?? 0));
    const total = (performance.now() - t0) / 1000;
    const genTokens = lengths.reduce((a, b) => a + b, 0);
    const metrics: TrainerStepMetrics = {
      step: this.#step,
      reward: meanStd(kept.map((r) => r.reward)),
      rewards,
      accuracy: names.includes('accuracy') ? rewards.accuracy!.mean : null,
      fracZeroStdGroups: allGroupStd.length ? allGroupStd.filter((s) => s === 0).length / allGroupStd.length : 0,
      completionLength: { mean: meanStd(lengths).mean, min: lengths.length ? Math.min(...lengths) : 0, max: lengths.length ? Math.max(...lengths) : 0 },
      truncatedShare: kept.length ? kept.filter((r) => r.truncated).length / kept.length : 0,
      update,
      tokensPerSecond: genTokens / Math.max(1e-9, genSec),
      seconds: { generation: genSec, scoring: scoreSec, update: updSec, total },
      rewardErrors: errors,
      dynamicSampling: { rounds, droppedGroups: dropped },
    };
    this.emit('rollouts', { step: this.#step, rollouts: kept });
    this.emit('step', metrics);
    return metrics;
  }

  /**
   * Trains for config.train.steps steps (continuing from the latest checkpoint when `resume`). With `signal`, an
   * abort stops at the next phase boundary, saves a checkpoint and resolves with stoppedEarly = true.
   */
  async train(opts: { signal?: AbortSignal; resume?: boolean } = {}): Promise<TrainResult> {
    const c = this.config;
    await this.#setup();
    let last: string | null = null;
    let stoppedEarly = false;
    try {
      if (opts.resume) this.#resume();
      while (this.#step < c.train.steps) {
        try {
          await this.#trainStep(opts.signal);
        } catch (err) {
          if (opts.signal?.aborted) {
            stoppedEarly = true;
            this.#log(`stopping: ${String(opts.signal.reason ?? 'aborted')}; saving a checkpoint at step ${this.#step}`);
            break;
          }
          throw err;
        }
        if (c.train.saveEvery > 0 && this.#step % c.train.saveEvery === 0 && this.#step < c.train.steps) last = this.#checkpoint();
        if (opts.signal?.aborted) {
          stoppedEarly = true;
          break;
        }
      }
      last = this.#checkpoint();
    } finally {
      if (this.#ref) await this.#ref.dispose();
      if (!this.#opts.model && this.#model) await this.#model.dispose();
    }
    return { steps: this.#step, stoppedEarly, lastCheckpoint: last };
  }
}
