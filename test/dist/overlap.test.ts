// Bucketed gradient collectives overlapped with backward (ZeroAdamW.finalBackward, native/dist/grad_buckets.h):
// 2 and 3 Gloo ranks (child processes, loopback) train 3 steps of a tiny model for ZeRO stages 0, 1 and 2 with the
// reduction overlapped with the last backward, the same buckets after backward, and one whole-range collective.
// Overlapped == after-backward bit for bit (same collectives over the same values: a bucket read before its
// gradients were final would differ); every rank ends with the same parameters; the plain whole-range path agrees
// bit for bit on 2 ranks (one fp32 addition per element, commutative) and within fp32 rounding on 3 (Gloo's ring
// adds the three ranks in an order that depends on where an element falls in the buffer).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { native } from '../../src/native/binding.js';
import { tinyModelDir } from '../rl/helpers.js';
import { f32 } from './comm-data.js';

const SEED = Number(process.env.VG_TEST_SEED ?? Math.floor(Math.random() * 1e6));
const gloo = native().buildInfo().glooAvailable;
if (!gloo) console.warn('overlap tests skipped: this addon was built without Gloo (sudo apt-get install libgloo-dev, then npm run build:native)');

type Json = Record<string, any>;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function runRanks(world: number, modelDir: string): Promise<Json[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: world }, (_, rank) => new Promise<Json>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'dist', 'overlap-rank.ts')], {
      env: {
        ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
        VG_DIST_TEST_SEED: String(SEED), VG_NUM_THREADS: '1', VG_DIST_MODEL_DIR: modelDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`rank ${rank} of ${world} exited with ${code}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(line.slice(7)) as Json);
    });
  })));
}

describe.skipIf(!gloo)(`gradient buckets overlapped with backward (seed ${SEED})`, () => {
  const dir = tinyModelDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const world of [2, 3]) {
    it(`${world} ranks, ZeRO stages 0/1/2: overlapped == after backward (exact), all ranks equal`, async () => {
      const res = await runRanks(world, dir);
      let overlapped = 0;
      for (const stage of [0, 1, 2]) {
        for (const r of res) {
          const tag = `stage ${stage} rank ${r.rank} of ${world}`;
          const ov = r[`overlap${stage}`] as Json, after = r[`after${stage}`] as Json, plain = r[`plain${stage}`] as Json;
          expect(ov.values, `${tag}: overlapped vs after-backward parameters`).toBe(after.values);
          expect(ov.steps, `${tag}: same norms and skips`).toEqual(after.steps);
          expect(ov.values, `${tag}: every rank holds the same parameters`).toBe(res[0]![`overlap${stage}`].values);
          // The overlapped run really was bucketed (several collectives) on steps where this rank had a backward.
          const st = (ov.stats as (Json | null)[]).filter((x): x is Json => x !== null);
          expect(st.length, tag).toBe(r.rank === world - 1 ? 2 : 3);
          for (const x of st) expect(x.buckets, tag).toBeGreaterThan(5);
          overlapped += st.reduce((a, x) => a + (x.overlapped as number), 0);
          const a = f32(ov.values), b = f32(plain.values);
          let worst = 0;
          for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
          // 2 ranks: bit-identical; 3 ranks: within fp32 rounding of the 3-way sums fed through 3 AdamW steps.
          if (world === 2) expect(worst, `${tag}: bucketed vs whole-range`).toBe(0);
          else expect(worst, `${tag}: bucketed vs whole-range`).toBeLessThan(3e-5);
        }
      }
      // Some collectives started while backward was still running (thread scheduling decides how many).
      expect(overlapped).toBeGreaterThan(0);
    }, 60_000);
  }
});
