/**
 * AdamW over the trainable part of the model (a range of the parameter buffer, or the LoRA adapters), with global
 * gradient-norm clipping and the LR schedule. The step itself runs on the model's native thread, so a big model's
 * update never blocks the event loop. The moments are plain Float32Arrays of the trainable length, so checkpoints
 * save them as they are.
 */
import type { VlmModel } from '../model/vlm-model.js';
import { learningRate, type LrSchedule } from './lr-schedule.js';

export interface OptimizerSettings {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  maxGradNorm: number;
  schedule: LrSchedule;
  warmupSteps: number;
  totalSteps: number;
}

/** What the optimizer updates: the adapters, or parameters [begin, end). */
export type TrainableRange = { target: 'lora'; size: number } | { target: 'params'; begin: number; end: number };

export class AdamW {
  readonly settings: OptimizerSettings;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  /** Optimizer steps taken (the next step is step + 1). */
  step = 0;
  readonly #model: VlmModel;
  readonly #range: TrainableRange;

  constructor(model: VlmModel, range: TrainableRange, settings: OptimizerSettings) {
    this.#model = model;
    this.#range = range;
    this.settings = settings;
    const n = range.target === 'lora' ? range.size : range.end - range.begin;
    this.expAvg = new Float32Array(n);
    this.expAvgSq = new Float32Array(n);
  }

  /** Restores moments and the step counter from a checkpoint. */
  restore(expAvg: Float32Array, expAvgSq: Float32Array, step: number): void {
    if (expAvg.length !== this.expAvg.length || expAvgSq.length !== this.expAvgSq.length) {
      throw new RangeError(`optimizer state holds ${expAvg.length} values, the trainable parameters are ${this.expAvg.length}`);
    }
    this.expAvg.set(expAvg);
    this.expAvgSq.set(expAvgSq);
    this.step = step;
  }

  /** The learning rate the next step will use. */
  currentLr(): number {
    const s = this.settings;
    return learningRate(s.schedule, s.lr, this.step, s.totalSteps, s.warmupSteps);
  }

  /** Clips the gradients, takes one AdamW step, and returns the pre-clip norm and the lr used. */
  async apply(): Promise<{ gradNorm: number; lr: number; skipped: boolean }> {
    const s = this.settings;
    const lr = this.currentLr();
    const r = this.#range;
    const res = await this.#model.optimizerStep({
      ...(r.target === 'lora' ? { target: 'lora' as const } : { target: 'params' as const, begin: r.begin, end: r.end }),
      expAvg: this.expAvg, expAvgSq: this.expAvgSq, step: this.step + 1, lr,
      beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm,
    });
    if (!res.skipped) this.step++;
    return { gradNorm: res.gradNorm, lr, skipped: res.skipped };
  }
}
