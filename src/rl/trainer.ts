/**
 * GrpoTrainer: the GRPO loop. Per step: take promptsPerStep prompts, generate G completions each (batched,
 * KV-cached), score them, compute group-relative advantages (optionally dropping zero-signal groups and refilling,
 * DAPO), then μ policy updates with the fused GRPO loss, and log, checkpoint and emit events. Everything heavy runs
 * on the model's native thread, so the event loop stays free; an AbortSignal stops the run after the current phase,
 * saves a checkpoint and resolves.
 *
 * Data parallel (options.communicator with world size N > 1): every rank draws the SAME global prompt list per
 * step (same data cursor and seed) and generates for a contiguous share of whole groups, seeding with global prompt
 * indices, so N ranks produce exactly the completions one process would. The scored rollouts are all-gathered, so
 * advantages, dynamic-sampling decisions, adaptive KL and the metrics are computed on the global batch, identically
 * on every rank. The kept groups are then split evenly for the update; each rank's loss is normalised by the global
 * token/sequence counts, so the sum of the ranks' gradients (ZeroAdamW sums them) is the one-process gradient.
 * A rank with nothing to do still joins every collective. Rank 0 writes config.json, metrics.jsonl, rollouts and
 * the model folder of checkpoints; every rank writes its optimizer shard. Evaluation is sharded: each rank scores a
 * contiguous share of the validation prompts and the counts are summed. An abort is agreed on by all ranks at the
 * next step boundary (so no rank leaves the others waiting in a collective).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError, parseConfig } from '../config/load.js';
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
import type { Communicator } from '../dist/communicator.js';
import { allGatherBytes, allGatherJson, allReduceSum, anyRank } from '../dist/gather.js';
import { shardRange } from '../dist/shard.js';
import { ZeroAdamW } from '../dist/zero.js';
import { AdamW } from './optimizer.js';
import { prepareTrainable, restoreTrainingCheckpoint, saveTrainingCheckpoint, type CheckpointDist } from './trainable.js';
import { batchNormalizers, scoreLogprobs, updatePolicy, type UpdateStats } from './policy-update.js';
import { generateRollouts, packRollouts, scoreRollouts, unpackRollouts } from './rollout.js';
import type { PreparedPrompt, PromptSource, Rollout } from './types.js';

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
  /**
   * Data-parallel training: this rank's communicator (created by the caller, e.g. the CLI from the rendezvous
   * environment, and disposed by it). World size 1 or absent: a single process.
   */
  communicator?: Communicator;
}

/** Throws a ConfigError when the configuration cannot run on `worldSize` ranks (each rank needs a prompt group). */
export function checkWorldSize(c: TrainConfig, worldSize: number): void {
  if (c.rollout.promptsPerStep < worldSize) {
    throw new ConfigError(`rollout.promptsPerStep is ${c.rollout.promptsPerStep}, smaller than the world size of ${worldSize} ranks: every rank needs at least one prompt group per step.`,
      `Set rollout.promptsPerStep to ${worldSize} or more (a multiple of ${worldSize} balances the ranks), or start fewer ranks.`);
  }
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
  #optimizer: AdamW | ZeroAdamW | undefined;
  /** Set only when world size > 1. */
  #comm: Communicator | undefined;
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

  /** This process's rank (0 for a single process). */
  get rank(): number {
    return this.#comm?.rank ?? 0;
  }

  /** Number of ranks training together (1 for a single process). */
  get worldSize(): number {
    return this.#comm?.worldSize ?? 1;
  }

  async #setup(): Promise<void> {
    const c = this.config;
    const comm = this.#opts.communicator;
    if (comm && comm.worldSize > 1) {
      checkWorldSize(c, comm.worldSize);
      this.#comm = comm;
    }
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
    const settings = { ...c.optim, totalSteps: c.optim.scheduleSteps ?? c.train.steps * c.algorithm.updatesPerRollout };
    this.#optimizer = this.#comm ? new ZeroAdamW(model, range, settings, { comm: this.#comm, stage: c.distributed.zeroStage, buckets: { overlap: c.distributed.overlapBuckets, bucketMB: c.distributed.bucketMB } }) : new AdamW(model, range, settings);
    if (this.#comm) {
      this.#log(`rank ${this.rank} of ${this.worldSize} (${this.#comm.backend}), ZeRO stage ${c.distributed.zeroStage}: optimizer state ${(this.#optimizer as ZeroAdamW).optimizerStateBytes()} bytes on this rank`);
    }
    if (this.#opts.prompts) {
      this.#prompts = this.#opts.prompts;
    } else {
      const sets = await loadConfiguredDatasets(c, model, (l) => this.#log(l));
      this.#prompts = new DatasetPromptSource(sets.train);
      this.#validation = sets.validation;
    }
    mkdirSync(c.train.outDir, { recursive: true });
    if (this.rank === 0) {
      writeFileSync(join(c.train.outDir, 'config.json'), JSON.stringify(c, null, 2));
      this.#rolloutLog = new RolloutLog(c.train.outDir, { thumbnails: true, onWarning: (m) => this.#log(m) });
    }
  }

  /** Data parallel: how this rank takes part in checkpoints. */
  #checkpointDist(): CheckpointDist | undefined {
    const comm = this.#comm;
    if (!comm) return undefined;
    const opt = this.#optimizer as ZeroAdamW;
    return {
      peers: { rank: comm.rank, world: comm.worldSize, barrier: async () => { await comm.barrier(); }, sum: (v) => allReduceSum(comm, v) },
      moments: { begin: opt.shard.begin, end: opt.shard.end, total: opt.trainableLength },
    };
  }

  #resume(): void {
    const c = this.config;
    const dist = this.#checkpointDist();
    const r = restoreTrainingCheckpoint(c.train.outDir, this.#model!, this.#optimizer!, this.#prompts!, c.model.lora.enabled,
      dist ? { begin: dist.moments.begin, end: dist.moments.end } : undefined);
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
      ...(this.#comm ? { dist: this.#checkpointDist()! } : {}),
    });
    this.emit('checkpoint', { step: this.#step, dir });
    return dir;
  }

  /** Greedy evaluation on the validation split (from its first row each time). */
  async #evaluate(): Promise<{ accuracy: number; meanReward: number; prompts: number }> {
    const c = this.config;
    const v = this.#validation!;
    v.restore({ ...v.state(), epoch: 0, index: 0 });
    const opts = {
      samples: 1, temperature: 0, maxNewTokens: c.rollout.maxNewTokens, limit: c.train.evalMaxPrompts,
      batchSize: Math.max(1, c.rollout.promptsPerStep * c.rollout.groupSize), seed: c.train.seed,
    };
    const comm = this.#comm;
    if (!comm) return evaluate(this.#model!, v, this.#scorer!, opts);
    // Sharded: every rank prepares the same validation prompts and evaluates its contiguous share (greedy, so
    // seeds play no part); the counts are summed, so the result is the one-process result.
    const total = Math.min(v.size, c.train.evalMaxPrompts);
    const all = await v.next(total);
    const own = shardRange(total, comm.worldSize, comm.rank);
    const mine = all.slice(own.begin, own.end);
    // evaluate() reads `size` and `next(n)` of its dataset: a view of this rank's share.
    const share = { size: mine.length, next: async (n: number) => mine.splice(0, n) } as unknown as PromptDataset;
    const r = mine.length ? await evaluate(this.#model!, share, this.#scorer!, opts) : { prompts: 0, accuracy: 0, meanReward: 0 };
    const [n, correct, reward] = await allReduceSum(comm, [r.prompts, r.accuracy * r.prompts, r.meanReward * r.prompts]) as [number, number, number];
    return { prompts: n, accuracy: correct / Math.max(1, n), meanReward: reward / Math.max(1, n) };
  }

  /**
   * Data parallel: every rank's scored rollouts (and reward-error counts), concatenated in rank order, which is the
   * global group order because the shards are contiguous. One process: its own.
   */
  async #gatherRollouts(local: Rollout[], errs: Record<string, number>, prompts: readonly PreparedPrompt[]): Promise<{ rollouts: Rollout[]; errors: Record<string, number>[] }> {
    const comm = this.#comm;
    if (!comm) return { rollouts: local, errors: [errs] };
    const parts = await allGatherBytes(comm, packRollouts(local, errs));
    const rollouts: Rollout[] = [];
    const errors: Record<string, number>[] = [];
    for (const p of parts) {
      const u = unpackRollouts(p, prompts);
      rollouts.push(...u.rollouts);
      errors.push(u.extra as Record<string, number>);
    }
    return { rollouts, errors };
  }

  /** Data parallel: every rank's numbers concatenated in rank order (exact doubles). One process: its own. */
  async #gatherNumbers(xs: number[]): Promise<number[]> {
    return this.#comm ? (await allGatherJson(this.#comm, xs)).flat() : xs;
  }

  /** One GRPO step; returns its metrics. */
  async #trainStep(signal?: AbortSignal): Promise<StepMetrics> {
    const c = this.config;
    const model = this.#model!;
    const G = c.rollout.groupSize;
    const world = this.worldSize, rank = this.rank;
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
      // Every rank draws the same prompts; each generates and scores a contiguous share of the groups.
      const prompts = await this.#prompts!.next(need);
      const own = shardRange(need, world, rank);
      const tg = performance.now();
      const local = await generateRollouts(model, prompts.slice(own.begin, own.end), c, this.#step, round, own.begin);
      const ts = performance.now();
      genSec += (ts - tg) / 1000;
      signal?.throwIfAborted();
      const localErrs = await scoreRollouts(local, this.#scorer!, c);
      scoreSec += (performance.now() - ts) / 1000;
      const { rollouts, errors: errs } = await this.#gatherRollouts(local, localErrs, prompts);
      for (const e of errs) for (const [k, v] of Object.entries(e)) errors[k] = (errors[k] ?? 0) + v;
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
    // The update's share of this rank: a contiguous, even split of the kept groups (all of them for one process).
    const upd = shardRange(kept.length / G, world, rank);
    const mine = kept.slice(upd.begin * G, upd.end * G);
    const a = c.algorithm;
    const tu = performance.now();
    signal?.throwIfAborted();
    // Log-probs beyond the update's own: the old policy (μ > 1, KL in reward, rollout correction) and the reference.
    const needOld = kept.length > 0 && (a.updatesPerRollout > 1 || a.klInReward || a.rolloutCorrection !== 'none');
    const oldLogprobs = needOld ? await scoreLogprobs(model, mine, c) : undefined;
    const refLogprobs = kept.length === 0 || this.#klCoef === 0 ? undefined
      : this.#ref ? await scoreLogprobs(this.#ref, mine, c)
        : await scoreLogprobs(model, mine, c, false);  // LoRA: the frozen base (adapters off) is the reference
    let klMean: number | null = null;
    if (refLogprobs && oldLogprobs && a.klInReward) {
      // Per-completion KL of this rank's share, gathered so every rank adjusts the rewards of the whole batch.
      const kls = await this.#gatherNumbers(mine.map((_, i) => sequenceKl(oldLogprobs[i]!, refLogprobs[i]!, a.klEstimator)));
      let sum = 0, tokens = 0;
      kept.forEach((r, i) => {
        const kl = kls[i]!;
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
      ? mine.map((r, i) => rolloutWeights(oldLogprobs[i]!, r.sampleLogprobs, a.rolloutCorrection as Exclude<typeof a.rolloutCorrection, 'none'>, a.rolloutCorrectionThreshold))
      : undefined;
    let update: UpdateStats = { loss: 0, kl: 0, entropy: 0, clipFracLow: 0, clipFracHigh: 0, clipFracDual: 0, ratioMean: 0, gradNorm: 0, lr: this.#optimizer!.currentLr(), trainTokens: 0, skippedSteps: 0 };
    const betaUsed = this.#klCoef;
    if (kept.length) {
      const comm = this.#comm;
      update = await updatePolicy(model, mine, c, this.#optimizer!, {
        ...(oldLogprobs && a.updatesPerRollout > 1 ? { oldLogprobs } : {}),
        ...(refLogprobs ? { refLogprobs } : {}),
        klCoef: a.klInReward ? 0 : this.#klCoef,
        ...(tokenWeights ? { tokenWeights } : {}),
        ...(comm ? { normalizers: batchNormalizers(kept, c.rollout.maskTruncated), sumAcrossRanks: (v: number[]) => allReduceSum(comm, v) } : {}),
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
      if (this.#comm) [sw, n] = await allReduceSum(this.#comm, [sw, n]) as [number, number];
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
    this.#metricsLog?.append(metrics);
    await this.#rolloutLog?.write(this.#step, kept.map((r) => ({
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
      if (this.rank === 0) this.#metricsLog = new MetricsLog(c.train.outDir, { resumeFromStep: this.#step, onWarning: (m) => this.#log(m) });
      while (this.#step < c.train.steps) {
        if (this.#comm) {
          // Data parallel: the ranks agree on stopping at the step boundary, and never abort mid-step.
          if (await anyRank(this.#comm, opts.signal?.aborted ?? false)) {
            stoppedEarly = true;
            this.#log(`stopping: ${String(opts.signal?.reason ?? 'another rank was interrupted')}; saving a checkpoint at step ${this.#step}`);
            break;
          }
          await this.#trainStep();
          if (c.train.saveEvery > 0 && this.#step % c.train.saveEvery === 0 && this.#step < c.train.steps) last = await this.#checkpoint();
          continue;
        }
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
