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

import { parseConfig } from '../config/load.js';
import type { TrainConfig, TrainConfigInput } from '../config/schema.js';
import { setNumThreads } from '../native/runtime.js';
import { loadModel, type VlmModel } from '../model/vlm-model.js';
import { loadRewardScorer, type RewardScorer } from '../rewards/scorer.js';
import { MetricsLog } from '../report/metrics-log.js';
import { reflectionStats } from '../report/reflection.js';
import { RolloutLog } from '../report/rollout-log.js';
import { lengthStats, summarize, type StepMetrics, type Summary } from '../report/step-metrics.js';
import { computeAdvantages } from './advantages.js';
import { adaptKlCoef, rolloutWeights, sequenceKl } from './kl.js';
import { DatasetPromptSource, loadConfiguredDatasets } from './dataset-source.js';
import { evaluate } from './evaluate.js';
import type { PromptDataset } from '../data/dataset.js';
import { AdamW } from './optimizer.js';
import { prepareTrainable, restoreTrainingCheckpoint, saveTrainingCheckpoint } from './trainable.js';
import { scoreLogprobs, updatePolicy, type UpdateStats } from './policy-update.js';
import { generateRollouts, scoreRollouts } from './rollout.js';
import type { PromptSource, Rollout } from './types.js';

export interface TrainerEvents {
  step: [StepMetrics];
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
  /** Where prompts come from; default: the datasets named by config.data. */
  prompts?: PromptSource;
  /** Use an already loaded policy model (the trainer then does not dispose it). */
  model?: VlmModel;
  /** Base folder for relative paths when `config` is a raw object. */
  baseDir?: string;
}

function stats(xs: readonly number[]): Summary {
  return xs.length ? summarize(xs) : { mean: 0, std: 0, min: 0, max: 0 };
}

export class GrpoTrainer extends EventEmitter<TrainerEvents> {
  readonly config: TrainConfig;
  readonly #opts: TrainerOptions;
  #model: VlmModel | undefined;
  #ref: VlmModel | undefined;
  #scorer: RewardScorer | undefined;
  #optimizer: AdamW | undefined;
  #prompts: PromptSource | undefined;
  #validation: PromptDataset | null = null;
  #metricsLog: MetricsLog | undefined;
  #rolloutLog: RolloutLog | undefined;
  #step = 0;
  #t0 = Date.now();
  /** β, adapted per step when algorithm.klTarget is set (saved in checkpoints). */
  #klCoef = 0;

  constructor(config: TrainConfig | TrainConfigInput, options: TrainerOptions) {
    super();
    this.config = parseConfig(config, { source: 'trainer config', ...(options.baseDir ? { baseDir: options.baseDir } : {}) });
    this.#opts = options;
    this.#klCoef = this.config.algorithm.klCoef;
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
    const lora = c.model.lora;
    // LoRA: the frozen base with adapters off is the KL reference (no second copy); full fine-tuning loads one.
    if (!lora.enabled && c.algorithm.klCoef > 0) this.#ref = await loadModel(c.model.path, { device: c.model.device });
    this.#scorer = await loadRewardScorer(
      c.rewards.map((r) => (r.name === 'custom'
        ? { name: r.export ? `${r.module}:${r.export}` : r.module!, module: r.export ? `${r.module}:${r.export}` : r.module!, weight: r.weight, options: r.options, batched: r.mode === 'batch' }
        : { name: r.name, weight: r.weight, options: r.options })),
      { onError: (e) => this.#log(`reward ${e.reward} failed on sample ${e.sampleIndex} (${e.count} so far): ${e.message}`) },
    );
    const model = this.#model;
    const range = await prepareTrainable(model, c.model, c.train.seed);
    this.#optimizer = new AdamW(model, range, { ...c.optim, totalSteps: c.train.steps * c.algorithm.updatesPerRollout });
    if (this.#opts.prompts) {
      this.#prompts = this.#opts.prompts;
    } else {
      const sets = await loadConfiguredDatasets(c, model, (l) => this.#log(l));
      this.#prompts = new DatasetPromptSource(sets.train);
      this.#validation = sets.validation;
    }
    mkdirSync(c.train.outDir, { recursive: true });
    writeFileSync(join(c.train.outDir, 'config.json'), JSON.stringify(c, null, 2));
    this.#rolloutLog = new RolloutLog(c.train.outDir, { thumbnails: true, onWarning: (m) => this.#log(m) });
  }

  #resume(): void {
    const c = this.config;
    const r = restoreTrainingCheckpoint(c.train.outDir, this.#model!, this.#optimizer!, this.#prompts!, c.model.lora.enabled);
    if (!r) {
      this.#log('resume: no checkpoint in the run folder; starting from the base model');
      return;
    }
    if (typeof r.state.klCoef === 'number') this.#klCoef = r.state.klCoef;
    this.#step = r.step;
    this.#log(`resumed from ${r.dir} (step ${r.step})`);
  }

  async #checkpoint(): Promise<string> {
    const c = this.config;
    const dir = await saveTrainingCheckpoint({
      runDir: c.train.outDir, step: this.#step, modelDir: c.model.path, model: this.#model!, optimizer: this.#optimizer!,
      prompts: this.#prompts!, lora: c.model.lora.enabled, exportDtype: c.train.exportDtype, keepLast: c.train.keepLast,
      state: { klCoef: this.#klCoef, config: c },
    });
    this.emit('checkpoint', { step: this.#step, dir });
    return dir;
  }

  /** Greedy evaluation on the validation split (from its first row each time). */
  async #evaluate(): Promise<{ accuracy: number; meanReward: number; prompts: number }> {
    const c = this.config;
    const v = this.#validation!;
    v.restore({ ...v.state(), epoch: 0, index: 0 });
    return evaluate(this.#model!, v, this.#scorer!, {
      samples: 1, temperature: 0, maxNewTokens: c.rollout.maxNewTokens, limit: c.train.evalMaxPrompts,
      batchSize: Math.max(1, c.rollout.promptsPerStep * c.rollout.groupSize), seed: c.train.seed,
    });
  }

  /** One GRPO step; returns its metrics. */
  async #trainStep(signal?: AbortSignal): Promise<StepMetrics> {
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
      const prompts = await this.#prompts!.next(need);
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
    // Regroup so group indices are consecutive.
    kept.forEach((r, i) => { r.group = Math.floor(i / G); });
    const a = c.algorithm;
    const tu = performance.now();
    signal?.throwIfAborted();
    // Log-probs beyond the update's own: the old policy (μ > 1, KL in reward, rollout correction) and the reference.
    const needOld = kept.length > 0 && (a.updatesPerRollout > 1 || a.klInReward || a.rolloutCorrection !== 'none');
    const oldLogprobs = needOld ? await scoreLogprobs(model, kept, c) : undefined;
    const refLogprobs = kept.length === 0 || this.#klCoef === 0 ? undefined
      : this.#ref ? await scoreLogprobs(this.#ref, kept, c)
        : await scoreLogprobs(model, kept, c, false);  // LoRA: the frozen base (adapters off) is the reference
    let klMean: number | null = null;
    if (refLogprobs && oldLogprobs && a.klInReward) {
      let sum = 0, tokens = 0;
      kept.forEach((r, i) => {
        const kl = sequenceKl(oldLogprobs[i]!, refLogprobs[i]!, a.klEstimator);
        r.rewards.kl_penalty = -this.#klCoef * kl;
        r.reward -= this.#klCoef * kl;
        sum += kl;
        tokens += r.tokens.length;
      });
      klMean = sum / Math.max(1, tokens);
    }
    const adv = computeAdvantages(kept.map((r) => r.reward), G, { estimator: a.advantage, scale: a.scaleRewards, eps: a.stdEps });
    kept.forEach((r, i) => { r.advantage = adv.advantages[i]!; });
    const tokenWeights = oldLogprobs && a.rolloutCorrection !== 'none'
      ? kept.map((r, i) => rolloutWeights(oldLogprobs[i]!, r.sampleLogprobs, a.rolloutCorrection as Exclude<typeof a.rolloutCorrection, 'none'>, a.rolloutCorrectionThreshold))
      : undefined;
    let update: UpdateStats = { loss: 0, kl: 0, entropy: 0, clipFracLow: 0, clipFracHigh: 0, clipFracDual: 0, ratioMean: 0, gradNorm: 0, lr: this.#optimizer!.currentLr(), trainTokens: 0, skippedSteps: 0 };
    const betaUsed = this.#klCoef;
    if (kept.length) {
      update = await updatePolicy(model, kept, c, this.#optimizer!, {
        ...(oldLogprobs && a.updatesPerRollout > 1 ? { oldLogprobs } : {}),
        ...(refLogprobs ? { refLogprobs } : {}),
        klCoef: a.klInReward ? 0 : this.#klCoef,
        ...(tokenWeights ? { tokenWeights } : {}),
      });
      if (refLogprobs && !a.klInReward) klMean = update.kl;
      if (a.klTarget !== null && klMean !== null) this.#klCoef = adaptKlCoef(this.#klCoef, klMean, a.klTarget, kept.length, a.klHorizon);
    }
    const updSec = (performance.now() - tu) / 1000;
    this.#step++;
    const lengths = kept.map((r) => r.tokens.length);
    const names = this.#scorer!.names;
    const rewards: Record<string, Summary> = {};
    for (const n of [...names, ...(c.rollout.overlongBuffer > 0 ? ['overlong'] : []), ...(a.klInReward ? ['kl_penalty'] : [])]) rewards[n] = stats(kept.map((r) => r.rewards[n] ?? 0));
    const total = (performance.now() - t0) / 1000;
    const genTokens = lengths.reduce((a, b) => a + b, 0);
    const len = kept.length ? lengthStats(lengths, kept.map((r) => r.truncated)) : { mean: 0, min: 0, max: 0, truncatedFrac: 0 };
    const extra: Record<string, number | null> = {
      'update/ratio_mean': update.ratioMean,
      'update/train_tokens': update.trainTokens,
      'update/skipped_steps': update.skippedSteps,
      'dynamic_sampling/rounds': rounds,
      'dynamic_sampling/dropped_groups': dropped,
      'kl/coef': betaUsed,
    };
    if (tokenWeights) {
      let sw = 0, n = 0;
      for (const w of tokenWeights) for (const x of w) { sw += x; n++; }
      extra['rollout_correction/weight_mean'] = sw / Math.max(1, n);
    }
    for (const [k, v] of Object.entries(errors)) extra[`reward_errors/${k}`] = v;
    for (const [k, v] of Object.entries(this.#prompts!.metrics?.() ?? {})) extra[k] = v;
    const metrics: StepMetrics = {
      step: this.#step,
      time: (Date.now() - this.#t0) / 1000,
      epoch: Number(this.#prompts!.metrics?.()['data/epoch'] ?? 0),
      reward: stats(kept.map((r) => r.reward)),
      rewards,
      accuracy: names.includes('accuracy') ? rewards.accuracy!.mean : null,
      fracZeroStdGroups: allGroupStd.length ? allGroupStd.filter((x) => x === 0).length / allGroupStd.length : 0,
      completionLength: { mean: len.mean, min: len.min, max: len.max },
      truncatedFrac: len.truncatedFrac,
      kl: klMean,
      entropy: update.trainTokens ? update.entropy : null,
      clipFrac: { low: update.clipFracLow, high: update.clipFracHigh, dual: update.clipFracDual },
      loss: update.trainTokens ? update.loss : null,
      gradNorm: update.trainTokens ? update.gradNorm : null,
      lr: update.lr,
      tokens: { prompt: kept.reduce((a, r) => a + r.prompt.input.inputIds.length, 0), completion: genTokens },
      tokensPerSecond: genTokens / Math.max(1e-9, genSec),
      seconds: { generation: genSec, scoring: scoreSec, update: updSec, total },
      reflection: reflectionStats(kept.map((r) => r.text)),
      extra,
    };
    if (c.train.evalEvery > 0 && this.#validation && this.#step % c.train.evalEvery === 0) {
      const ev = await this.#evaluate();
      extra['eval/accuracy'] = ev.accuracy;
      extra['eval/mean_reward'] = ev.meanReward;
      this.#log(`eval at step ${this.#step}: accuracy ${(ev.accuracy * 100).toFixed(1)}% on ${ev.prompts} prompts`);
    }
    this.#metricsLog!.append(metrics);
    await this.#rolloutLog!.write(this.#step, kept.map((r) => ({
      promptId: r.prompt.id, groupIndex: r.group, sampleIndex: r.sample, prompt: r.prompt.text, completion: r.text,
      reward: r.reward, rewards: r.rewards, advantage: r.advantage, length: r.tokens.length, truncated: r.truncated,
      finishReason: r.truncated ? 'length' : 'stop', images: r.prompt.imagePaths,
    })));
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
      this.#metricsLog = new MetricsLog(c.train.outDir, { resumeFromStep: this.#step, onWarning: (m) => this.#log(m) });
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
        if (c.train.saveEvery > 0 && this.#step % c.train.saveEvery === 0 && this.#step < c.train.steps) last = await this.#checkpoint();
        if (opts.signal?.aborted) {
          stoppedEarly = true;
          break;
        }
      }
      last = await this.#checkpoint();
    } finally {
      if (this.#ref) await this.#ref.dispose();
      if (!this.#opts.model && this.#model) await this.#model.dispose();
    }
    return { steps: this.#step, stoppedEarly, lastCheckpoint: last };
  }
}
