/**
 * Shared by test/dist-communicator.test.ts and its rank scripts: deterministic per-rank random data (so the parent can
 * rebuild every rank's input for the reference), count layouts, and base64 transport of typed arrays.
 */
import { shardCounts } from '../../src/dist/shard.js';

/** A seeded normal generator (mulberry32 + Box-Muller). */
export function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uni = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
}

/** n normal values for (seed, rank, tag), identical in every process. */
export function rankData(seed: number, rank: number, tag: number, n: number, scale = 1): Float64Array {
  const g = gaussian(seed * 7919 + rank * 104729 + tag * 15485863);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

/** Uneven layouts: the ZeRO shard layout of an odd size, and one with an empty rank before a non-empty one. */
export function countLayouts(world: number): number[][] {
  const layouts = [shardCounts(1001, world)];
  if (world === 2) layouts.push([0, 9]);
  if (world === 3) layouts.push([7, 0, 12]);
  return layouts;
}

export function toB64(a: Float32Array | Float64Array | Uint8Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function f32(b64: string): Float32Array {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function f64(b64: string): Float64Array {
  const b = Buffer.from(b64, 'base64');
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function u8(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** Rank settings from the environment (torchrun names). */
export function rankEnv(): { rank: number; world: number; port: number; seed: number } {
  const num = (k: string): number => {
    const v = Number(process.env[k]);
    if (!Number.isInteger(v)) throw new Error(`${k} is not set to an integer`);
    return v;
  };
  return { rank: num('RANK'), world: num('WORLD_SIZE'), port: num('MASTER_PORT'), seed: num('VG_DIST_TEST_SEED') };
}
