/**
 * AdamW over the trainable part of the model's parameter buffer, with global gradient-norm clipping and the LR
 * schedule. The moments are plain Float32Arrays of the trainable length, so checkpoints save them as they are.
 */
import { adamwStep, clipGradNorm } from '../kernels/optim.js';
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

/** Where the trainable parameters and their gradients are (views into native buffers). */
export interface TrainableView {
  params: () => Float32Array;
  grads: () => Float32Array;
}

export class AdamW {
  readonly settings: OptimizerSettings;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  /** Optimizer steps taken (the next step is step + 1). */
  step = 0;
  readonly #view: TrainableView;

  constructor(view: TrainableView, settings: OptimizerSettings) {
    this.#view = view;
    this.settings = settings;
    const n = view.params().length;
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
  apply(): { gradNorm: number; lr: number; skipped: boolean } {
    const grads = this.#view.grads();
    const params = this.#view.params();
    const s = this.settings;
    const { totalNorm } = clipGradNorm({ grads: [grads], maxNorm: s.maxGradNorm > 0 ? s.maxGradNorm : Infinity });
    const lr = this.currentLr();
    if (!Number.isFinite(totalNorm)) return { gradNorm: totalNorm, lr, skipped: true };  // never apply a NaN update
    this.step++;
    adamwStep({ params, grads, expAvg: this.expAvg, expAvgSq: this.expAvgSq, step: this.step, lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay });
    return { gradNorm: totalNorm, lr, skipped: false };
  }
}
