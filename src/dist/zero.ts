/**
 * AdamW for data-parallel training with ZeRO-style sharding over the one contiguous parameter buffer (or the LoRA
 * adapter buffer). Same public surface as src/rl/optimizer.ts `AdamW`, plus `stage` and `shard`.
 *
 *   stage 0 (plain data parallel): allReduce(sum) of the trainable gradient range; every rank steps the whole range
 *            (moments are full size).
 *   stage 1 (ZeRO-1): allReduce(sum) of the gradients; global norm = sqrt(allReduce(sum) of Σg² over each rank's
 *            own shard); AdamW on the own shard only, clipped with that global norm; allGather of the parameters.
 *   stage 2 (ZeRO-2): reduceScatter(sum) of the gradients instead of allReduce (each rank only receives its own
 *            shard's sum); the rest as stage 1. Gradients outside the own shard are left unspecified: zero them
 *            before the next accumulation (the trainer does at every step).
 * Bucketed reduction (`buckets`, full fine-tuning on the gloo backend with 2+ ranks): the all-reduce / reduce-scatter
 * above runs in buckets of `bucketMB` following the backward order (native/dist/grad_buckets.h). With `overlap`, the
 * trainer's last backward of the step goes through finalBackward(), which starts each bucket's collective as soon as
 * backward has finished that bucket's gradients; otherwise (or on a rank with no micro-batch this step) apply() runs
 * the same buckets after backward. The same collectives on the same values either way: the results are bit-identical
 * with and without overlap. LoRA adapters' gradients live outside the gradient buffer: their reduction is never
 * bucketed (nor overlapped), and neither is NCCL's (device buffers).
 * Moments are shard-sized in stages 1 and 2 (the 1/N optimizer memory). Gradients are SUMMED across ranks: each
 * rank normalises its loss by the GLOBAL token count so the sum equals the 1-rank gradient. apply() returns the
 * same { gradNorm, lr, skipped } on every rank (a non-finite global norm skips the step everywhere).
 */
import type { VlmModel } from '../model/vlm-model.js';
import type { BucketReduceStats, NativeBucketReduce } from '../native/binding.js';
import { learningRate } from '../rl/lr-schedule.js';
import type { OptimizerSettings, TrainableRange } from '../rl/optimizer.js';
import type { Communicator } from './communicator.js';
import { shardCounts, shardRange } from './shard.js';

export type ZeroStage = 0 | 1 | 2;

export interface ZeroOptions {
  comm: Communicator;
  /** 0: plain data parallel, 1: shard optimizer state (default), 2: also reduce-scatter gradients. */
  stage?: ZeroStage;
  /**
   * Reduce the gradients in buckets of `bucketMB` megabytes (2^20 bytes), overlapped with the last backward when
   * `overlap` (config distributed.overlapBuckets / bucketMB). Default: one collective over the whole range.
   */
  buckets?: { overlap: boolean; bucketMB: number };
}

export class ZeroAdamW {
  readonly settings: OptimizerSettings;
  readonly stage: ZeroStage;
  /** This rank's shard, relative to the trainable range [0, trainableLength) (the whole range at stage 0). */
  readonly shard: { begin: number; end: number };
  /** Length of the trainable range (parameters [begin, end) or the whole adapter buffer). */
  readonly trainableLength: number;
  /** Shard sizes of every rank (rank order), as used by reduceScatter / allGather. */
  readonly counts: readonly number[];
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  /** Optimizer steps taken (the next step is step + 1). */
  step = 0;
  readonly #model: VlmModel;
  readonly #range: TrainableRange;
  readonly #comm: Communicator;
  readonly #buckets: { overlap: boolean; bucketBytes: number } | undefined;
  /** finalBackward() already reduced this step's gradients. */
  #reduced = false;

  constructor(model: VlmModel, range: TrainableRange, settings: OptimizerSettings, opts: ZeroOptions) {
    const stage = opts.stage ?? 1;
    if (stage !== 0 && stage !== 1 && stage !== 2) throw new RangeError(`zero stage must be 0, 1 or 2, got ${String(stage)}`);
    const n = range.target === 'lora' ? range.size : range.end - range.begin;
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`trainable range has invalid length ${n}`);
    this.#model = model;
    this.#range = range;
    this.#comm = opts.comm;
    this.settings = settings;
    this.stage = stage;
    this.trainableLength = n;
    const world = opts.comm.worldSize;
    this.counts = stage === 0 ? [n] : shardCounts(n, world);
    this.shard = stage === 0 ? { begin: 0, end: n } : shardRange(n, world, opts.comm.rank);
    const len = this.shard.end - this.shard.begin;
    this.expAvg = new Float32Array(len);
    this.expAvgSq = new Float32Array(len);
    const b = opts.buckets;
    if (b !== undefined && !(Number.isFinite(b.bucketMB) && b.bucketMB > 0)) throw new RangeError(`bucketMB must be a positive number, got ${String(b.bucketMB)}`);
    // Bucketing needs the gradients in the model's buffer (not LoRA's) and host-memory collectives (gloo).
    const bucketable = b !== undefined && range.target === 'params' && opts.comm.backend === 'gloo' && world > 1;
    this.#buckets = bucketable ? { overlap: b.overlap, bucketBytes: Math.max(4, Math.floor(b.bucketMB * 2 ** 20)) } : undefined;
  }

  /** True when finalBackward() overlaps the gradient reduction with backward (else it is a plain backward). */
  get overlapsBackward(): boolean {
    return this.#buckets?.overlap === true;
  }

  #bucketSpec(): NativeBucketReduce {
    const { begin } = this.#bounds();
    return {
      communicator: this.#comm.nativeHandle, begin, end: begin + this.trainableLength, bucketBytes: this.#buckets!.bucketBytes,
      ...(this.stage === 2 ? { op: 'reduceScatter' as const, counts: [...this.counts] } : { op: 'allReduce' as const }),
    };
  }

  /**
   * The last backward before apply(): with overlap on, the bucketed gradient collectives start while backward runs
   * and this resolves once both have finished (apply() then skips the reduction). Otherwise a plain backward.
   * Resolves to the bucket statistics when it overlapped.
   */
  async finalBackward(opts: { gradLogprobs: Float32Array; gradEntropy?: Float32Array; trainVision?: boolean }): Promise<BucketReduceStats | undefined> {
    if (!this.overlapsBackward) return this.#model.backward(opts);
    if (this.#reduced) throw new Error('finalBackward: the gradients of this step were already reduced; call apply() first');
    const stats = await this.#model.backward({ ...opts, overlapWith: this.#bucketSpec() });
    this.#reduced = true;
    return stats;
  }

  /** Restores this rank's moments (shard-sized) and the step counter from a checkpoint. */
  restore(expAvg: Float32Array, expAvgSq: Float32Array, step: number): void {
    if (expAvg.length !== this.expAvg.length || expAvgSq.length !== this.expAvgSq.length) {
      throw new RangeError(
        `optimizer state holds ${expAvg.length} and ${expAvgSq.length} values, this rank's shard [${this.shard.begin}, ${this.shard.end}) has ${this.expAvg.length}`,
      );
    }
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`step must be a non-negative integer, got ${step}`);
    this.expAvg.set(expAvg);
    this.expAvgSq.set(expAvgSq);
    this.step = step;
  }

  /** The learning rate the next step will use. */
  currentLr(): number {
    const s = this.settings;
    return learningRate(s.schedule, s.lr, this.step, s.totalSteps, s.warmupSteps);
  }

  /** Bytes of optimizer state this rank holds (the two moment arrays): ~1/N of the full state at stages 1 and 2. */
  optimizerStateBytes(): number {
    return this.expAvg.byteLength + this.expAvgSq.byteLength;
  }

  /** Absolute [begin, end) of the trainable range in its buffer. */
  #bounds(): { begin: number; end: number } {
    const r = this.#range;
    return r.target === 'lora' ? { begin: 0, end: r.size } : { begin: r.begin, end: r.end };
  }

  #grads(): Float32Array {
    const { begin, end } = this.#bounds();
    const g = this.#range.target === 'lora' ? this.#model.loraGradients() : this.#model.gradients();
    if (g.length < end) throw new RangeError(`gradient buffer holds ${g.length} values, the trainable range ends at ${end}`);
    return g.subarray(begin, end);
  }

  #params(): Float32Array {
    const { begin, end } = this.#bounds();
    const p = this.#range.target === 'lora' ? this.#model.loraParameters() : this.#model.parameters();
    return p.subarray(begin, end);
  }

  /**
   * Sums the gradients across ranks, clips them by the global norm, takes one AdamW step on this rank's shard and
   * gathers the updated parameters. Every rank must call it at the same point. Returns the pre-clip global norm.
   */
  async apply(): Promise<{ gradNorm: number; lr: number; skipped: boolean }> {
    const s = this.settings;
    const lr = this.currentLr();
    const comm = this.#comm;
    const target = this.#range.target;
    const base = this.#bounds().begin;
    const grads = this.#grads();
    const hyper = { step: this.step + 1, lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, maxGradNorm: s.maxGradNorm };
    let res: { gradNorm: number; skipped: boolean };
    const reduced = this.#reduced;
    this.#reduced = false;
    // Bucketed: the same collectives finalBackward() would have overlapped, unless it already ran them.
    if (this.#buckets && !reduced) await this.#model.handle.reduceGradients(this.#bucketSpec());
    const bucketed = this.#buckets !== undefined;
    if (this.stage === 0) {
      if (comm.worldSize > 1 && !bucketed) await comm.allReduce(grads, 'sum');
      // Every rank holds the same summed gradient, so the native norm (and the step) is identical everywhere.
      res = await this.#model.optimizerStep({
        target, begin: base, end: base + this.trainableLength, expAvg: this.expAvg, expAvgSq: this.expAvgSq, ...hyper,
      });
    } else {
      if (comm.worldSize > 1 && !bucketed) {
        if (this.stage === 1) await comm.allReduce(grads, 'sum');
        else await comm.reduceScatter(grads, [...this.counts]);
      }
      const begin = base + this.shard.begin;
      const end = base + this.shard.end;
      const sq = new Float64Array([await this.#model.handle.gradSquaredSum({ target, begin, end })]);
      if (comm.worldSize > 1) await comm.allReduce(sq, 'sum');
      const gradNorm = Math.sqrt(sq[0] ?? NaN);
      res = await this.#model.optimizerStep({ target, begin, end, expAvg: this.expAvg, expAvgSq: this.expAvgSq, ...hyper, gradNorm });
      // The norm is global, so every rank skips or steps together; a skipped step changed no parameter.
      if (!res.skipped && comm.worldSize > 1) await comm.allGather(this.#params(), [...this.counts]);
    }
    if (!res.skipped) this.step++;
    return { gradNorm: res.gradNorm, lr, skipped: res.skipped };
  }
}
