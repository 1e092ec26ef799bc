/**
 * The policy update of one rollout batch: μ passes, each over micro-batches of completions packed without padding
 * (prompt + completion per sequence), log-probs of the completion tokens from the model, the fused GRPO loss
 * (kernels.grpoLoss) with its gradient, backward into the model, then one optimizer step. The loss is normalised
 * over the whole batch (global token count / sequence count), so micro-batching does not change the gradient.
 * Data parallel: each rank passes its share of the rollouts plus the normalisers of the GLOBAL batch, so the sum
 * of the ranks' gradients is the one-process gradient (the sharded optimizer sums them); the logged statistics are
 * summed over ranks (`sumAcrossRanks`) and every rank runs the same passes and collectives, even with no rollouts.
 */
import type { TrainConfig } from '../config/schema.js';
import { grpoLoss } from '../kernels/grpo.js';
import type { VlmModel } from '../model/vlm-model.js';
import type { Rollout } from './types.js';

/** What the update needs from an optimizer (AdamW, or the data-parallel ZeroAdamW). */
export interface StepOptimizer {
  currentLr(): number;
  apply(): Promise<{ gradNorm: number; lr: number; skipped: boolean }>;
  /**
   * Runs the last backward before apply() (data parallel: ZeroAdamW overlaps the gradient reduction with it).
   * Without it the update calls model.backward.
   */
  finalBackward?(opts: { gradLogprobs: Float32Array; gradEntropy?: Float32Array; trainVision?: boolean }): Promise<unknown>;
}

export interface UpdateStats {
  loss: number;
  kl: number;
  entropy: number;
  clipFracLow: number;
  clipFracHigh: number;
  clipFracDual: number;
  ratioMean: number;
  gradNorm: number;
  lr: number;
  trainTokens: number;
  skippedSteps: number;
}

interface SeqData {
  rollout: Rollout;
  inputIds: Int32Array;
  targets: Int32Array;
  promptLen: number;
  mask: number;  // 1 = in the loss
}

function buildSequences(rollouts: readonly Rollout[], maskTruncated: boolean): SeqData[] {
  return rollouts.map((r) => {
    const p = r.prompt.input.inputIds;
    const inputIds = new Int32Array(p.length + r.tokens.length);
    inputIds.set(p);
    inputIds.set(r.tokens, p.length);
    const targets = new Int32Array(inputIds.length).fill(-1);
    for (let j = 0; j < r.tokens.length; j++) targets[p.length - 1 + j] = r.tokens[j]!;
    return { rollout: r, inputIds, targets, promptLen: p.length, mask: maskTruncated && r.truncated ? 0 : 1 };
  });
}

function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Log-probs (and entropy) of each sequence's completion tokens, [completion length] each. */
async function completionLogprobs(
  model: VlmModel,
  seqs: readonly SeqData[],
  opts: { temperature: number; keepForBackward: boolean; recompute: boolean; entropy: boolean; adapters?: boolean },
): Promise<{ logprobs: Float32Array[]; entropy: Float32Array[] }> {
  const outs = await model.forwardBatch(
    seqs.map((s) => ({ ...s.rollout.prompt.input, inputIds: s.inputIds, targets: s.targets })),
    { keepForBackward: opts.keepForBackward, recompute: opts.recompute, returnEntropy: opts.entropy, temperature: opts.temperature, ...(opts.adapters === undefined ? {} : { adapters: opts.adapters }) },
  );
  return {
    logprobs: outs.map((o, i) => o.logprobs!.slice(seqs[i]!.promptLen - 1, seqs[i]!.promptLen - 1 + seqs[i]!.rollout.tokens.length)),
    entropy: outs.map((o, i) => (o.entropy ? o.entropy.slice(seqs[i]!.promptLen - 1, seqs[i]!.promptLen - 1 + seqs[i]!.rollout.tokens.length) : new Float32Array(0))),
  };
}

/** Log-probs of every rollout's completion under `model` (no gradient), micro-batched. */
export async function scoreLogprobs(model: VlmModel, rollouts: readonly Rollout[], cfg: TrainConfig, adapters?: boolean): Promise<Float32Array[]> {
  const seqs = buildSequences(rollouts, false);
  const out: Float32Array[] = [];
  const temperature = cfg.rollout.temperature > 0 ? cfg.rollout.temperature : 1;
  for (const mb of chunks(seqs, cfg.optim.microBatchSize)) {
    const r = await completionLogprobs(model, mb, { temperature, keepForBackward: false, recompute: false, entropy: false, ...(adapters === undefined ? {} : { adapters }) });
    out.push(...r.logprobs);
  }
  return out;
}

/** Token and sequence counts the loss is normalised by: completions in the loss (not masked, not empty). */
export function batchNormalizers(rollouts: readonly Rollout[], maskTruncated: boolean): { tokenCount: number; seqCount: number } {
  let tokenCount = 0, seqCount = 0;
  for (const r of rollouts) {
    if ((maskTruncated && r.truncated) || r.tokens.length === 0) continue;
    tokenCount += r.tokens.length;
    seqCount++;
  }
  return { tokenCount, seqCount };
}

/**
 * Runs the μ update passes. `oldLogprobs` (per rollout) are required when μ > 1; with μ = 1 the update is exactly
 * on-policy and the current log-probs serve as the old ones. `refLogprobs` are required when klCoef > 0.
 */
export async function updatePolicy(
  model: VlmModel,
  rollouts: readonly Rollout[],
  cfg: TrainConfig,
  optimizer: StepOptimizer,
  extra: {
    oldLogprobs?: Float32Array[];
    refLogprobs?: Float32Array[];
    /** β in the loss (default algorithm.klCoef; 0 when the KL goes into the rewards). */
    klCoef?: number;
    /** Per rollout, per completion token: importance weights multiplying the loss (rollout correction). */
    tokenWeights?: Float32Array[];
    signal?: AbortSignal;
    /** Data parallel: token and sequence counts of the whole batch over all ranks (default: of `rollouts`). */
    normalizers?: { tokenCount: number; seqCount: number };
    /** Data parallel: elementwise sums over ranks (all ranks call it the same number of times). */
    sumAcrossRanks?: (values: number[]) => Promise<number[]>;
  },
): Promise<UpdateStats> {
  const a = cfg.algorithm;
  const seqs = buildSequences(rollouts, cfg.rollout.maskTruncated);
  const index = new Map(rollouts.map((r, i) => [r, i]));
  const temperature = cfg.rollout.temperature > 0 ? cfg.rollout.temperature : 1;
  // Global normalisers over the whole rollout batch (over all ranks when data parallel).
  const { tokenCount, seqCount } = extra.normalizers ?? batchNormalizers(rollouts, cfg.rollout.maskTruncated);
  const stats: UpdateStats = { loss: 0, kl: 0, entropy: 0, clipFracLow: 0, clipFracHigh: 0, clipFracDual: 0, ratioMean: 0, gradNorm: 0, lr: 0, trainTokens: tokenCount, skippedSteps: 0 };
  if (tokenCount === 0) return stats;
  const needEntropy = true;  // entropy is always logged (the kernel computes it in the same pass)
  for (let pass = 0; pass < a.updatesPerRollout; pass++) {
    model.zeroGrads();
    let loss = 0, wsum = 0;
    const acc = { kl: 0, entropy: 0, clipFracLow: 0, clipFracHigh: 0, clipFracDual: 0, ratioMean: 0 };
    const microBatches = chunks(seqs, cfg.optim.microBatchSize);
    for (const [mbIndex, mb] of microBatches.entries()) {
      extra.signal?.throwIfAborted();
      const cur = await completionLogprobs(model, mb, { temperature, keepForBackward: true, recompute: cfg.model.gradientCheckpointing, entropy: needEntropy });
      const L = Math.max(1, ...mb.map((s) => s.rollout.tokens.length));
      const B = mb.length;
      const lp = new Float32Array(B * L), old = new Float32Array(B * L), ref = new Float32Array(B * L), ent = new Float32Array(B * L);
      const mask = new Float32Array(B * L);
      const adv = new Float32Array(B);
      mb.forEach((s, i) => {
        const k = index.get(s.rollout)!;
        const n = s.rollout.tokens.length;
        lp.set(cur.logprobs[i]!, i * L);
        old.set(a.updatesPerRollout > 1 || extra.oldLogprobs ? extra.oldLogprobs![k]! : cur.logprobs[i]!, i * L);
        if (extra.refLogprobs) ref.set(extra.refLogprobs[k]!, i * L);
        if (cur.entropy[i]!.length) ent.set(cur.entropy[i]!, i * L);
        if (s.mask) {
          if (extra.tokenWeights) mask.set(extra.tokenWeights[k]!, i * L);
          else mask.fill(1, i * L, i * L + n);
        }
        adv[i] = s.rollout.advantage;
      });
      const r = grpoLoss({
        logprobs: lp, oldLogprobs: old, advantages: adv, mask, numSequences: B, seqLen: L,
        ...(extra.refLogprobs ? { refLogprobs: ref } : {}),
        clipLow: a.clipLow, clipHigh: a.clipHigh, ...(a.dualClip !== null ? { dualClip: a.dualClip } : {}),
        klCoef: extra.klCoef ?? a.klCoef, klEstimator: a.klEstimator, lossAgg: a.lossAgg, lossScale: cfg.rollout.maxNewTokens,
        ...(a.entropyCoef !== 0 ? { entropy: ent, entropyCoef: a.entropyCoef } : {}),
        ratioLevel: a.ratioLevel, policyLoss: a.policyLoss, tokenCountNormalizer: tokenCount, sequenceCountNormalizer: seqCount,
      });
      // Scatter the per-token gradients back to the packed positions of each sequence.
      let total = 0;
      for (const s of mb) total += s.inputIds.length;
      const gradLogprobs = new Float32Array(total);
      const gradEntropy = r.gradEntropy ? new Float32Array(total) : undefined;
      let off = 0;
      mb.forEach((s, i) => {
        const n = s.rollout.tokens.length;
        gradLogprobs.set(r.grad.subarray(i * L, i * L + n), off + s.promptLen - 1);
        if (gradEntropy && r.gradEntropy) gradEntropy.set(r.gradEntropy.subarray(i * L, i * L + n), off + s.promptLen - 1);
        off += s.inputIds.length;
      });
      const backwardOpts = { gradLogprobs, ...(gradEntropy ? { gradEntropy } : {}), trainVision: !cfg.model.freezeVision };
      // The last micro-batch's backward may overlap the cross-rank gradient reduction (ZeroAdamW.finalBackward).
      if (mbIndex === microBatches.length - 1 && optimizer.finalBackward) await optimizer.finalBackward(backwardOpts);
      else await model.backward(backwardOpts);
      loss += r.loss;
      // Token-weighted averages of the per-micro-batch statistics.
      let w = 0;
      mb.forEach((s) => { if (s.mask) w += s.rollout.tokens.length; });
      let entSum = 0;
      mb.forEach((s, i) => { if (s.mask) for (const e of cur.entropy[i]!) entSum += e; });
      acc.entropy += entSum;
      acc.kl += r.stats.kl * w;
      acc.clipFracLow += r.stats.clipFracLow * w;
      acc.clipFracHigh += r.stats.clipFracHigh * w;
      acc.clipFracDual += r.stats.clipFracDual * w;
      acc.ratioMean += r.stats.ratioMean * w;
      wsum += w;
    }
    const step = await optimizer.apply();
    if (step.skipped) stats.skippedSteps++;
    // Report the first pass's statistics (what the rollout policy saw) and the last pass's optimizer numbers.
    if (pass === 0) {
      if (extra.sumAcrossRanks) {
        [loss, wsum, acc.kl, acc.entropy, acc.clipFracLow, acc.clipFracHigh, acc.clipFracDual, acc.ratioMean] = await extra.sumAcrossRanks(
          [loss, wsum, acc.kl, acc.entropy, acc.clipFracLow, acc.clipFracHigh, acc.clipFracDual, acc.ratioMean]) as [number, number, number, number, number, number, number, number];
      }
      stats.loss = loss;
      const d = Math.max(1, wsum);
      stats.kl = acc.kl / d;
      stats.entropy = acc.entropy / d;
      stats.clipFracLow = acc.clipFracLow / d;
      stats.clipFracHigh = acc.clipFracHigh / d;
      stats.clipFracDual = acc.clipFracDual / d;
      stats.ratioMean = acc.ratioMean / d;
    }
    stats.gradNorm = step.gradNorm;
    stats.lr = step.lr;
  }
  model.zeroGrads();
  return stats;
}
