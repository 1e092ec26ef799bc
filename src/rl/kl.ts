/**
 * KL estimators per token (verl kl_penalty) for KL-in-reward, and the adaptive β controller.
 *   k1 = lp − lr;  k2 = ½(lp − lr)²;  k3 = e^x − x − 1 with x = clamp(lr − lp, ±20), clamped to [−10, 10];  abs = |lp − lr|
 */
export type KlEstimator = 'k1' | 'k2' | 'k3' | 'abs';

export function klPerToken(lp: number, lr: number, estimator: KlEstimator): number {
  switch (estimator) {
    case 'k1':
      return lp - lr;
    case 'k2':
      return 0.5 * (lp - lr) ** 2;
    case 'abs':
      return Math.abs(lp - lr);
    case 'k3': {
      const x = Math.min(20, Math.max(-20, lr - lp));
      return Math.min(10, Math.max(-10, Math.exp(x) - x - 1));
    }
  }
}

/** Σ_t KL over a completion. */
export function sequenceKl(lp: ArrayLike<number>, lr: ArrayLike<number>, estimator: KlEstimator): number {
  let s = 0;
  for (let t = 0; t < lp.length; t++) s += klPerToken(lp[t]!, lr[t]!, estimator);
  return s;
}

/**
 * verl's AdaptiveKLController: β ← β · (1 + clip(KL/target − 1, −0.2, 0.2) · n/horizon), where KL is the current mean
 * per-token KL and n the number of samples in the batch.
 */
export function adaptKlCoef(beta: number, currentKl: number, target: number, n: number, horizon: number): number {
  const err = Math.min(0.2, Math.max(-0.2, currentKl / target - 1));
  return beta * (1 + (err * n) / horizon);
}

/**
 * Rollout importance weights per token: w = exp(log π_train − log π_rollout), per token or as one sequence weight
 * exp(Σ_t (train − rollout)); 'truncate' caps at C (TIS), 'mask' zeroes weights above C (MIS).
 */
export function rolloutWeights(
  train: ArrayLike<number>,
  rollout: ArrayLike<number>,
  mode: 'token-truncate' | 'token-mask' | 'sequence-truncate' | 'sequence-mask',
  threshold: number,
): Float32Array {
  const n = train.length;
  const w = new Float32Array(n);
  if (mode.startsWith('token')) {
    for (let t = 0; t < n; t++) {
      const r = Math.exp(Math.min(20, Math.max(-20, train[t]! - rollout[t]!)));
      w[t] = mode === 'token-truncate' ? Math.min(r, threshold) : r <= threshold ? r : 0;
    }
  } else {
    let s = 0;
    for (let t = 0; t < n; t++) s += train[t]! - rollout[t]!;
    const r = Math.exp(Math.min(20, Math.max(-20, s)));
    w.fill(mode === 'sequence-truncate' ? Math.min(r, threshold) : r <= threshold ? r : 0);
  }
  return w;
}
