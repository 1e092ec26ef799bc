/**
 * Optimizer kernels on flat Float32Array buffers: an AdamW step (torch.optim.AdamW semantics) and global
 * gradient-norm clipping (torch.nn.utils.clip_grad_norm_ semantics). Math in native/cpu/adamw.h.
 */
import { native } from '../native/binding.js';
import { checkObject, describe, num } from './grpo.js';

export interface AdamWStepInput {
  /** Parameters, updated in place. */
  params: Float32Array;
  /** Gradients (same length), read only. */
  grads: Float32Array;
  /** First moment m (same length, zeros before the first step), updated in place. */
  expAvg: Float32Array;
  /** Second moment v (same length, zeros before the first step), updated in place. */
  expAvgSq: Float32Array;
  /** 1-based step number including this one (bias correction uses β1^step and β2^step). */
  step: number;
  /** Learning rate >= 0. */
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8, added to sqrt(v̂). */
  eps?: number;
  /** Decoupled weight decay (p ← p·(1 − lr·weightDecay)); default 0.01 like torch.optim.AdamW. */
  weightDecay?: number;
}

const ADAMW_KEYS = new Set(['params', 'grads', 'expAvg', 'expAvgSq', 'step', 'lr', 'beta1', 'beta2', 'eps', 'weightDecay']);

/**
 * One AdamW step, in place:
 *   p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 *   p ← p − lr · (m / (1 − β1^step)) / (sqrt(v / (1 − β2^step)) + eps).
 * Non-finite gradients are not screened (they would propagate): check clipGradNorm's totalNorm first.
 * Throws TypeError for missing/wrongly typed fields, RangeError for unequal lengths, overlapping buffers or bad values.
 */
export function adamwStep(input: AdamWStepInput): void {
  checkObject(input, 'adamwStep', ADAMW_KEYS);
  const params = buf(input.params, 'params');
  const n = params.length;
  const grads = buf(input.grads, 'grads', n);
  const expAvg = buf(input.expAvg, 'expAvg', n);
  const expAvgSq = buf(input.expAvgSq, 'expAvgSq', n);
  const named: [string, Float32Array][] = [['params', params], ['grads', grads], ['expAvg', expAvg], ['expAvgSq', expAvgSq]];
  for (let i = 0; i < named.length; i++)
    for (let j = i + 1; j < named.length; j++)
      if (overlaps(named[i]![1], named[j]![1]))
        throw new RangeError(`adamwStep: ${named[i]![0]} and ${named[j]![0]} share memory; each needs its own buffer`);
  const step = num(input.step, 'step', 'adamwStep');
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`adamwStep: step must be an integer >= 1 (1-based), got ${step}`);
  const lr = num(input.lr, 'lr', 'adamwStep');
  if (lr < 0) throw new RangeError(`adamwStep: lr must be >= 0, got ${lr}`);
  const beta1 = input.beta1 === undefined ? 0.9 : num(input.beta1, 'beta1', 'adamwStep');
  const beta2 = input.beta2 === undefined ? 0.999 : num(input.beta2, 'beta2', 'adamwStep');
  for (const [name, b] of [['beta1', beta1], ['beta2', beta2]] as const)
    if (!(b >= 0 && b < 1)) throw new RangeError(`adamwStep: ${name} must be in [0, 1), got ${b}`);
  const eps = input.eps === undefined ? 1e-8 : num(input.eps, 'eps', 'adamwStep');
  if (eps < 0) throw new RangeError(`adamwStep: eps must be >= 0, got ${eps}`);
  const weightDecay = input.weightDecay === undefined ? 0.01 : num(input.weightDecay, 'weightDecay', 'adamwStep');
  if (weightDecay < 0) throw new RangeError(`adamwStep: weightDecay must be >= 0, got ${weightDecay}`);
  native().adamwStep({ params, grads, expAvg, expAvgSq, step, lr, beta1, beta2, eps, weightDecay });
}

export interface ClipGradNormInput {
  /** Gradient buffers (non-overlapping), scaled in place when clipping applies. */
  grads: Float32Array[];
  /** Target norm; <= 0 or Infinity only measures. */
  maxNorm: number;
}

export interface ClipGradNormResult {
  /** Global L2 norm over all buffers before clipping (NaN or Infinity when a gradient is not finite). */
  totalNorm: number;
  /** The factor every buffer was multiplied by (1 when nothing was scaled). */
  scale: number;
}

const CLIP_KEYS = new Set(['grads', 'maxNorm']);

/**
 * Global gradient-norm clipping: totalNorm = sqrt(Σ g²) over all buffers (double accumulation, thread-count
 * independent); if maxNorm / (totalNorm + 1e-6) < 1, every buffer is multiplied by that factor. A non-finite
 * totalNorm is reported and nothing is scaled (skip the step). Throws TypeError for wrong types and
 * RangeError for NaN maxNorm or overlapping buffers.
 */
export function clipGradNorm(input: ClipGradNormInput): ClipGradNormResult {
  checkObject(input, 'clipGradNorm', CLIP_KEYS);
  const grads = input.grads as unknown;
  if (!Array.isArray(grads)) throw new TypeError(`clipGradNorm: grads must be an array of Float32Array, got ${describe(grads)}`);
  grads.forEach((g, i) => {
    if (!(g instanceof Float32Array)) throw new TypeError(`clipGradNorm: grads[${i}] must be a Float32Array, got ${describe(g)}`);
  });
  const list = grads as Float32Array[];
  checkDisjoint(list);
  if (typeof input.maxNorm !== 'number')
    throw new TypeError(`clipGradNorm: maxNorm must be a number, got ${describe(input.maxNorm)}`);
  if (Number.isNaN(input.maxNorm)) throw new RangeError('clipGradNorm: maxNorm is NaN');
  const maxNorm = input.maxNorm === Infinity || input.maxNorm <= 0 ? 0 : input.maxNorm;
  return native().clipGradNorm({ grads: list, maxNorm });
}

function buf(v: unknown, field: string, expected?: number): Float32Array {
  if (!(v instanceof Float32Array)) throw new TypeError(`adamwStep: ${field} must be a Float32Array, got ${describe(v)}`);
  if (expected !== undefined && v.length !== expected)
    throw new RangeError(`adamwStep: ${field} has length ${v.length}, expected ${expected} (the length of params)`);
  return v;
}

function overlaps(a: Float32Array, b: Float32Array): boolean {
  if (a.buffer !== b.buffer || a.length === 0 || b.length === 0) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** RangeError when two non-empty buffers share memory (they would be counted and scaled twice). */
function checkDisjoint(list: Float32Array[]): void {
  const byBuffer = new Map<ArrayBufferLike, number[]>();
  list.forEach((g, i) => {
    if (g.length === 0) return;
    const ids = byBuffer.get(g.buffer);
    if (ids) ids.push(i);
    else byBuffer.set(g.buffer, [i]);
  });
  for (const ids of byBuffer.values()) {
    if (ids.length < 2) continue;
    ids.sort((x, y) => list[x]!.byteOffset - list[y]!.byteOffset);
    // Sorted by start: a buffer overlaps an earlier one iff it starts before the furthest end seen so far.
    let far = ids[0]!;
    for (let k = 1; k < ids.length; k++) {
      const prev = list[far]!, cur = list[ids[k]!]!;
      if (cur.byteOffset < prev.byteOffset + prev.byteLength)
        throw new RangeError(`clipGradNorm: grads[${far}] and grads[${ids[k]}] share memory; pass disjoint views`);
      if (cur.byteOffset + cur.byteLength > prev.byteOffset + prev.byteLength) far = ids[k]!;
    }
  }
}
