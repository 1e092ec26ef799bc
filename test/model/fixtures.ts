/** Shared helpers for the model tests: fixture access, temp folders, seeded randomness. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

import { readSafetensors, type LoadedTensor } from '../../src/model/index.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const CONFIG_NAMES = ['tiny-a', 'tiny-q2vl'] as const;
export type FixtureName = (typeof CONFIG_NAMES)[number];

const expectedCache = new Map<string, Map<string, LoadedTensor>>();

/** All tensors of `<fixture>/expected.safetensors` (read once). */
export function expected(name: FixtureName): Map<string, LoadedTensor> {
  let m = expectedCache.get(name);
  if (!m) {
    m = readSafetensors(join(FIXTURES, name, 'expected.safetensors'));
    expectedCache.set(name, m);
  }
  return m;
}

/** One expected tensor; throws if absent (so a renamed fixture cannot make a test vacuous). */
export function tensor(name: FixtureName, key: string): LoadedTensor {
  const t = expected(name).get(key);
  if (!t) throw new Error(`${name}/expected.safetensors has no ${key}`);
  return t;
}

/** An integer tensor's values as plain numbers. */
export function ints(t: LoadedTensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

export function inputsJson(name: FixtureName): any {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'inputs.json'), 'utf8'));
}

export function fixtureConfigJson(name: FixtureName): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>;
}

const tempDirs: string[] = [];

/** A fresh temp folder, removed by cleanupTempDirs(). */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vg-model-'));
  tempDirs.push(d);
  return d;
}

export function cleanupTempDirs(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Seeded PRNG (mulberry32) so failures reproduce; seed from VG_TEST_SEED when set. */
export function rng(salt: number): () => number {
  let s = (Number(process.env.VG_TEST_SEED ?? 12345) ^ Math.imul(salt, 0x9e3779b9)) >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** Runs fn and returns the error it throws (fails the test if it does not throw). */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the call to throw');
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** The fixtures' fp32 tolerance: max|got − ref| ≤ 1e-4 · max(1, max|ref|) (fixtures README §5). */
export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string): void {
  expect(got.length, `${what}: length`).toBe(ref.length);
  let worst = 0, at = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  const tol = 1e-4 * Math.max(1, maxAbs(ref));
  expect(worst, `${what}: max |diff| ${worst} at ${at} (got ${got[at]}, want ${ref[at]}), tolerance ${tol}`).toBeLessThanOrEqual(tol);
}

/** Targets selecting the completion tokens: position n predicts ids[n + 1] for the completion range. */
export function completionTargets(ids: ArrayLike<number>, start: number, length: number): Int32Array {
  const t = new Int32Array(ids.length).fill(-1);
  for (let j = 0; j < length; j++) t[start + j - 1] = ids[start + j]!;
  return t;
}

/**
 * Every parameter's gradient against the reference (`refOf(name)`): relative L2 ≤ 1e-4 and max |diff| ≤ 2e-4 ×
 * max |ref|; an all-zero reference needs |grad| ≤ 1e-7. Returns how many tensors had a non-zero reference.
 */
export function expectGradientsMatch(grads: Float32Array, layout: readonly { name: string; offset: number; numel: number }[], refOf: (name: string) => ArrayLike<number>): number {
  let checked = 0;
  for (const e of layout) {
    const ref = refOf(e.name);
    const got = grads.subarray(e.offset, e.offset + e.numel);
    const refMax = maxAbs(ref);
    if (refMax === 0) {
      expect(maxAbs(got), `${e.name} should have zero gradient`).toBeLessThanOrEqual(1e-7);
      continue;
    }
    let num = 0, den = 0, worst = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = got[i]! - ref[i]!;
      num += d * d;
      den += ref[i]! * ref[i]!;
      worst = Math.max(worst, Math.abs(d));
    }
    expect(Math.sqrt(num / den), `${e.name}: relative L2`).toBeLessThanOrEqual(1e-4);
    expect(worst, `${e.name}: max |diff|`).toBeLessThanOrEqual(2e-4 * refMax);
    checked++;
  }
  return checked;
}
