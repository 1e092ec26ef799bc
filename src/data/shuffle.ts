/**
 * Deterministic shuffles: a 32-bit PRNG (mulberry32) seeded by hashing (seed, stream, epoch) with a splitmix-style
 * finaliser, and a Fisher–Yates permutation on top. The same (seed, stream, epoch) always gives the same order on
 * every platform (integer arithmetic only; Math.imul and unsigned shifts).
 */

/** Mix 32-bit words into one well-spread 32-bit seed. */
export function hashSeed(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    h = Math.imul(h ^ (w >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    h = (h + 0x9e3779b9) >>> 0;
  }
  return h;
}

/** mulberry32: a fast 32-bit PRNG; returns uint32 values. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A uniform integer in [0, n) from a uint32 source (rejection sampling, so no modulo bias). */
function below(next: () => number, n: number): number {
  const limit = 0x100000000 - (0x100000000 % n);
  for (;;) {
    const v = next();
    if (v < limit) return v % n;
  }
}

/** Separate random streams derived from one seed. */
export const STREAM_SHUFFLE = 1;
export const STREAM_SPLIT = 2;

/**
 * A permutation of 0..n-1 determined by (seed, stream, epoch). n must be below 2^32.
 * `seed` is reduced to 32 bits in two halves so seeds up to 2^53 stay distinct.
 */
export function permutation(n: number, seed: number, stream: number, epoch: number): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 0x100000000) throw new RangeError(`permutation: n must be an integer in [0, 2^32), got ${n}`);
  const hi = Math.floor(seed / 0x100000000);
  const next = mulberry32(hashSeed(seed >>> 0, hi >>> 0, stream, epoch >>> 0, Math.floor(epoch / 0x100000000)));
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = below(next, i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
