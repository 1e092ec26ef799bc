/**
 * A plain, slow TypeScript GRPO loss used only by the tests, written from shared/reference/peers.md §c.1
 * (verl's vanilla policy loss, dual-clip, KL estimators, loss_agg_mode, GSPO) one token at a time in float64.
 * Gradients are written as autograd would produce them: a clamp passes the gradient on its closed interval;
 * max/min ties give each side half (torch.maximum/minimum); |x| has gradient sign(x) with sign(0) = 0.
 */
import type { GrpoLossInput, GrpoLossStats } from '../../src/kernels/grpo.js';

export interface GrpoReferenceResult {
  loss: number;
  grad: Float64Array;
  gradEntropy?: Float64Array;
  stats: GrpoLossStats;
  /** Σ |w·ℓ| over tokens: the magnitude that summation-order rounding of `loss` scales with. */
  absSum: number;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}

/** KL estimate k(lp, lr) and dk/dlp. */
function klTerm(estimator: string, lp: number, lr: number): [number, number] {
  if (estimator === 'k1') return [lp - lr, 1];
  if (estimator === 'k2') return [0.5 * (lp - lr) * (lp - lr), lp - lr];
  if (estimator === 'abs') return [Math.abs(lp - lr), Math.sign(lp - lr)];
  // k3 / low_var_kl: x = clamp(lr − lp, ±20); e^x − x − 1 clamped to [−10, 10].
  const raw = lr - lp;
  const x = clamp(raw, -20, 20);
  const dxdlp = raw >= -20 && raw <= 20 ? -1 : 0;
  const value = Math.exp(x) - x - 1;
  const k = clamp(value, -10, 10);
  const dk = value >= -10 && value <= 10 ? (Math.exp(x) - 1) * dxdlp : 0;
  return [k, dk];
}

export function grpoLossReference(input: GrpoLossInput): GrpoReferenceResult {
  const B = input.numSequences;
  const T = input.seqLen;
  const epsLow = input.clipLow;
  const epsHigh = input.clipHigh ?? input.clipLow;
  const c = input.dualClip;
  const beta = input.klCoef ?? 0;
  const estimator = input.klEstimator ?? 'k3';
  const agg = input.lossAgg ?? 'token-mean';
  const scale = input.lossScale ?? T;
  const entCoef = input.entropyCoef ?? 0;
  const gspo = (input.ratioLevel ?? 'token') === 'sequence';
  const m = (i: number, t: number) => Number(input.mask[i * T + t]);

  // Per-token loss ℓ, dℓ/dlp and the pieces, only for masked tokens.
  const ell = new Float64Array(B * T);
  const dell = new Float64Array(B * T);
  const pgTok = new Float64Array(B * T);
  const klTok = new Float64Array(B * T);
  const entTok = new Float64Array(B * T);
  let nTok = 0;
  let low = 0, high = 0, dual = 0, klSum = 0, ratioSum = 0, ppoKlSum = 0;
  const seqTokens: number[] = [];
  for (let i = 0; i < B; i++) {
    const A = input.advantages[i]!;
    let len = 0;
    let sumDelta = 0;
    for (let t = 0; t < T; t++) {
      len += m(i, t);
      sumDelta += m(i, t) * (input.logprobs[i * T + t]! - input.oldLogprobs[i * T + t]!);
    }
    seqTokens.push(len);
    const logSeqRatio = sumDelta / Math.max(len, 1);
    for (let t = 0; t < T; t++) {
      const k = i * T + t;
      const w = m(i, t);
      if (w === 0) continue;
      const lp = input.logprobs[k]!;
      const lo = input.oldLogprobs[k]!;
      let ratio: number;
      let dRatio: number;
      if (gspo) {
        // log s_it = sg(log s_i) + lp − sg(lp), clamped to <= 10.
        ratio = Math.exp(Math.min(logSeqRatio, 10));
        dRatio = logSeqRatio <= 10 ? ratio : 0;
      } else {
        const delta = lp - lo;
        ratio = Math.exp(clamp(delta, -20, 20));
        dRatio = delta >= -20 && delta <= 20 ? ratio : 0;
      }
      const clipped = clamp(ratio, 1 - epsLow, 1 + epsHigh);
      const pg1 = -A * ratio;
      const dpg1 = -A * dRatio;
      const pg2 = -A * clipped;
      const dpg2 = ratio >= 1 - epsLow && ratio <= 1 + epsHigh ? -A * dRatio : 0;
      let pg: number;
      let dpg: number;
      if (pg1 > pg2) [pg, dpg] = [pg1, dpg1];
      else if (pg2 > pg1) [pg, dpg] = [pg2, dpg2];
      else [pg, dpg] = [pg1, (dpg1 + dpg2) / 2];
      const cispo = (input.policyLoss ?? 'ppo') === 'cispo';
      if (cispo) {
        // CISPO: −sg(clip(ρ))·A·lp
        pg = -clipped * A * lp;
        dpg = -clipped * A;
      } else if (c !== undefined && A < 0) {
        const pg3 = -A * c;
        if (pg > pg3) dual += w;
        if (pg3 < pg) [pg, dpg] = [pg3, 0];
        else if (pg3 === pg) dpg = dpg / 2;
      }
      let kl = 0;
      let dkl = 0;
      if (input.refLogprobs) [kl, dkl] = klTerm(estimator, lp, input.refLogprobs[k]!);
      const h = input.entropy ? input.entropy[k]! : 0;
      ell[k] = pg + beta * kl - entCoef * h;
      dell[k] = dpg + beta * dkl;
      pgTok[k] = pg;
      klTok[k] = kl;
      entTok[k] = h;
      nTok += w;
      if ((cispo || A > 0) && ratio > 1 + epsHigh) high += w;
      if ((cispo || A < 0) && ratio < 1 - epsLow) low += w;
      klSum += w * kl;
      ratioSum += w * ratio;
      ppoKlSum += w * (lo - lp);
    }
  }

  // Aggregation: the weight of each token in the final sum.
  const validSeqs = seqTokens.filter((x) => x > 0).length;
  const tokDen = input.tokenCountNormalizer ?? nTok;
  const seqDen = input.sequenceCountNormalizer ?? validSeqs;
  const weight = (i: number, t: number): number => {
    const w = m(i, t);
    if (agg === 'token-mean') return tokDen > 0 ? w / tokDen : 0;
    if (agg === 'seq-mean-token-mean') return seqTokens[i]! > 0 && seqDen > 0 ? w / seqTokens[i]! / seqDen : 0;
    if (agg === 'seq-mean-token-sum') return seqDen > 0 ? w / seqDen : 0;
    return w / scale; // seq-mean-token-sum-norm: ΣΣ L·m / loss_scale_factor
  };
  let loss = 0, pgLoss = 0, klLoss = 0, entropyLoss = 0, absSum = 0;
  const grad = new Float64Array(B * T);
  const gradEntropy = input.entropy ? new Float64Array(B * T) : undefined;
  for (let i = 0; i < B; i++)
    for (let t = 0; t < T; t++) {
      const k = i * T + t;
      const w = weight(i, t);
      loss += w * ell[k]!;
      absSum += Math.abs(w * ell[k]!);
      pgLoss += w * pgTok[k]!;
      klLoss += w * klTok[k]!;
      entropyLoss += w * entTok[k]!;
      grad[k] = w * dell[k]!;
      if (gradEntropy) gradEntropy[k] = -entCoef * w;
    }
  const mean = (x: number) => (nTok > 0 ? x / nTok : 0);
  const stats: GrpoLossStats = {
    clipFracLow: mean(low),
    clipFracHigh: mean(high),
    clipFracDual: mean(dual),
    kl: mean(klSum),
    ratioMean: mean(ratioSum),
    ppoKl: mean(ppoKlSum),
    pgLoss,
    klLoss,
    entropyLoss,
    numTokens: nTok,
    numValidSequences: validSeqs,
  };
  const result: GrpoReferenceResult = { loss, grad, stats, absSum };
  if (gradEntropy) result.gradEntropy = gradEntropy;
  return result;
}
