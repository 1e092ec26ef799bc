// The communicator binding (Gloo) and ZeroAdamW across real processes: 2 and 3 ranks started as child processes
// (test/dist/comm-rank.ts, test/dist/zero-rank.ts) on a free port. Every collective is checked against a plain
// reference rebuilt here from the same seeded per-rank data; ZeroAdamW stages 0/1/2 (parameter range) and 1/2 (LoRA)
// must give the parameters plain AdamW gives on one rank with the summed gradient, and per-rank optimizer bytes
// must fall as 1/N. In-process checks: validation errors, dispose, timeouts naming the operation.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Communicator } from '../src/dist/communicator.js';
import { shardCounts, shardRange } from '../src/dist/shard.js';
import { ZeroAdamW } from '../src/dist/zero.js';
import { loadModel } from '../src/model/vlm-model.js';
import { native } from '../src/native/binding.js';
import { AdamW } from '../src/rl/optimizer.js';
import { countLayouts, f32, f64, rankData, u8 } from './dist/comm-data.js';
import { LORA, SETTINGS, STEPS, fillShare, paramRange } from './dist/zero-data.js';
import { tinyModelDir } from './rl/helpers.js';

const SEED = Number(process.env.VG_TEST_SEED ?? Math.floor(Math.random() * 1e6));
const gloo = native().buildInfo().glooAvailable;
if (!gloo) console.warn('dist-communicator tests skipped: this addon was built without Gloo (sudo apt-get install libgloo-dev, then npm run build:native)');

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

type Json = Record<string, any>;

/** Starts `world` ranks of a script and returns each rank's RESULT object (rank order). */
async function runRanks(script: string, world: number, extraEnv: Record<string, string> = {}): Promise<Json[]> {
  const port = await freePort();
  const runs = Array.from({ length: world }, (_, rank) => new Promise<Json>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'dist', script)], {
      env: {
        ...process.env, ...extraEnv, RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
        VG_DIST_TEST_SEED: String(SEED), VG_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`rank ${rank} of ${world} (${script}) exited with ${code}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(line.slice(7)) as Json);
    });
  }));
  return Promise.all(runs);
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)) / (atol + rtol * Math.abs(want[i] ?? 0));
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  expect(worst, `${what}: worst at [${at}] ${got[at]} vs ${want[at]} (atol ${atol}, rtol ${rtol})`).toBeLessThanOrEqual(1);
}

function offsets(counts: number[]): number[] {
  const o = [0];
  for (const c of counts) o.push((o[o.length - 1] ?? 0) + c);
  return o;
}

describe.skipIf(!gloo)('Communicator across processes (gloo)', () => {
  for (const world of [2, 3]) {
    it(`every collective on ${world} ranks matches the plain reference`, async () => {
      const res = await runRanks('comm-rank.ts', world);
      const N = 1537;
      const inputs32 = Array.from({ length: world }, (_, r) => Float32Array.from(rankData(SEED, r, 1, N)));
      const sum = new Float64Array(N);
      const max = new Float32Array(N).fill(-Infinity);
      const min = new Float32Array(N).fill(Infinity);
      const sum64 = new Float64Array(N);
      for (let r = 0; r < world; r++) {
        const d64 = rankData(SEED, r, 2, N);
        for (let i = 0; i < N; i++) {
          const v = inputs32[r]![i]!;
          sum[i] = sum[i]! + v;
          max[i] = Math.max(max[i]!, v);
          min[i] = Math.min(min[i]!, v);
          sum64[i] = sum64[i]! + d64[i]!;
        }
      }
      for (const out of res) {
        const tag = `rank ${out.rank} of ${world}`;
        expect(out.worldSize).toBe(world);
        expect(out.backend).toBe('gloo');
        expectClose(f32(out.allReduce32_sum), sum, 1e-5, 1e-5, `${tag} allReduce f32 sum`);
        expect(Array.from(f32(out.allReduce32_max)), `${tag} max`).toEqual(Array.from(max));
        expect(Array.from(f32(out.allReduce32_min)), `${tag} min`).toEqual(Array.from(min));
        expectClose(f64(out.allReduce64_sum), sum64, 1e-13, 1e-13, `${tag} allReduce f64 sum`);
        // identical bits on every rank
        expect(out.allReduce32_sum).toBe(res[0]!.allReduce32_sum);
        countLayouts(world).forEach((counts, li) => {
          expect(out[`layout${li}`]).toEqual(counts);
          const off = offsets(counts);
          const n = off[world]!;
          const r = out.rank as number;
          const rsWant = new Float64Array(n);
          for (let q = 0; q < world; q++) {
            const d = Float32Array.from(rankData(SEED, q, 10 + li, n));
            for (let i = 0; i < n; i++) rsWant[i] = rsWant[i]! + d[i]!;
          }
          const rs = f32(out[`reduceScatter${li}`]);
          expectClose(rs.subarray(off[r], off[r + 1]), rsWant.subarray(off[r], off[r + 1]), 1e-5, 1e-5, `${tag} reduceScatter ${counts}`);
          const agWant = new Float32Array(n);
          for (let q = 0; q < world; q++) {
            const d = Float32Array.from(rankData(SEED, q, 20 + li, n));
            agWant.set(d.subarray(off[q], off[q + 1]), off[q]);
          }
          expect(Array.from(f32(out[`allGather${li}`])), `${tag} allGather ${counts}`).toEqual(Array.from(agWant));
        });
        expect(Array.from(f32(out.broadcast32))).toEqual(Array.from(Float32Array.from(rankData(SEED, world - 1, 30, 333))));
        expect(Array.from(u8(out.broadcast8))).toEqual(Array.from({ length: 17 }, (_, i) => i & 0xff));
        expect(out.queued).toEqual([(world * (world + 1)) / 2, world * 10]);
      }
    }, 60_000);
  }

  describe('ZeroAdamW matches 1-rank AdamW with the summed gradient', () => {
    let dir = '';
    beforeAll(() => {
      dir = tinyModelDir();
    });
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    for (const world of [2, 3]) {
      it(`${world} ranks, stages 0/1/2 on a parameter range and 1/2 on LoRA adapters; moments fall as 1/N`, async () => {
        const res = await runRanks('zero-rank.ts', world, { VG_DIST_MODEL_DIR: dir });
        // Reference: one process, plain AdamW, gradient = sum of the ranks' shares (fp32, rank order).
        const model = await loadModel(dir);
        try {
          const range = paramRange(model.parameters().length);
          const n = range.end - range.begin;
          const sumShares = (buf: Float32Array, begin: number, len: number, s: number): void => {
            const tmp = new Float32Array(buf.length);
            const acc = new Float32Array(len);
            for (let r = 0; r < world; r++) {
              fillShare(tmp, 0, len, SEED, r, world, s);
              for (let i = 0; i < len; i++) acc[i] = Math.fround(acc[i]! + tmp[i]!);
            }
            buf.set(acc, begin);
          };
          const ref = new AdamW(model, range, SETTINGS);
          const refSteps = [];
          for (let s = 0; s < STEPS; s++) {
            model.zeroGrads();
            sumShares(model.gradients(), range.begin, n, s);
            refSteps.push(await ref.apply());
          }
          expect(refSteps[0]!.gradNorm).toBeGreaterThan(SETTINGS.maxGradNorm); // clipping is exercised
          expect(refSteps[2]!.gradNorm).toBeLessThan(SETTINGS.maxGradNorm); // and the unclipped path
          const refParams = model.parameters().slice(range.begin, range.end);

          await model.enableLora(LORA);
          const lsize = model.loraParameters().length;
          const lref = new AdamW(model, { target: 'lora', size: lsize }, SETTINGS);
          const lrefSteps = [];
          for (let s = 0; s < STEPS; s++) {
            model.zeroGrads();
            sumShares(model.loraGradients(), 0, lsize, s);
            lrefSteps.push(await lref.apply());
          }
          const lrefParams = model.loraParameters().slice();

          const table: string[] = [];
          const check = (key: string, want: Float32Array, wantSteps: { gradNorm: number; lr: number; skipped: boolean }[], len: number, stage: number): void => {
            const counts = stage === 0 ? [len] : shardCounts(len, world);
            for (const out of res) {
              const o = out[key] as Json;
              const tag = `${key} rank ${out.rank} of ${world}`;
              // fp32 tolerance: the ranks' gradient sum is rounded in a different order than the reference's.
              expectClose(f32(o.values), want, 1e-6, 1e-5, tag);
              expect(o.values, `${tag}: ranks hold identical parameters`).toBe(res[0]![key].values);
              o.steps.forEach((st: Json, s: number) => {
                expect(Math.abs(st.gradNorm - wantSteps[s]!.gradNorm) / wantSteps[s]!.gradNorm, `${tag} step ${s} gradNorm`).toBeLessThan(1e-6);
                expect(st.gradNorm, `${tag}: same norm on every rank`).toBe(res[0]![key].steps[s].gradNorm);
                expect(st.lr).toBe(wantSteps[s]!.lr);
                expect(st.skipped).toBe(false);
              });
              if (o.outsideChanged !== undefined) expect(o.outsideChanged, `${tag}: values outside the range`).toBe(0);
              const mine = stage === 0 ? { begin: 0, end: len } : shardRange(len, world, out.rank as number);
              expect(o.shard).toEqual(mine);
              expect(o.bytes).toBe(8 * (mine.end - mine.begin));
            }
            const bytes = res.map((out) => (out[key] as Json).bytes as number);
            if (stage > 0) {
              expect(bytes.reduce((a, b) => a + b, 0)).toBe(8 * len);
              expect(Math.max(...bytes)).toBeLessThanOrEqual(8 * Math.ceil(len / world));
            }
            table.push(`  ${key.padEnd(8)} world ${world}: per-rank optimizer bytes [${bytes.join(', ')}] vs 1 rank ${8 * len} (max ratio ${(Math.max(...bytes) / (8 * len)).toFixed(3)}, counts ${counts.length})`);
          };
          for (const stage of [0, 1, 2]) check(`params${stage}`, refParams, refSteps, n, stage);
          for (const stage of [1, 2]) check(`lora${stage}`, lrefParams, lrefSteps, lsize, stage);
          console.log(`ZeroAdamW optimizer state (seed ${SEED}):\n${table.join('\n')}`);
        } finally {
          model.dispose();
        }
      }, 90_000);
    }
  });

  describe('in one process', () => {
    it('validates arguments, names fields, and refuses use after dispose', async () => {
      const comm = await Communicator.create({ rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 5000 });
      expect(comm.rank).toBe(0);
      expect(comm.worldSize).toBe(1);
      const buf = Float32Array.from([1, 2, 3]);
      await comm.allReduce(buf);
      expect(Array.from(buf)).toEqual([1, 2, 3]);
      await expect(comm.reduceScatter(buf, [2])).rejects.toThrow(/counts sum to 2 but buf has length 3/);
      await expect(comm.allGather(buf, [1, 2])).rejects.toThrow(/counts has 2 entries, expected worldSize=1/);
      await expect(comm.broadcast(buf, 1)).rejects.toThrow(RangeError);
      await expect(comm.allReduce(buf, 'prod' as 'sum')).rejects.toThrow(/op must be/);
      await expect(comm.allReduce(new Int32Array(3) as unknown as Float32Array)).rejects.toThrow(TypeError);
      await comm.dispose();
      await comm[Symbol.asyncDispose]();
      await expect(comm.barrier()).rejects.toThrow(/disposed/);
      await expect(Communicator.create({ rank: 2, worldSize: 2 })).rejects.toThrow(/rank must be an integer in \[0, 1\]/);
      await expect(Communicator.create({ rank: 0, worldSize: 1, backend: 'mpi' as 'gloo' })).rejects.toThrow(/backend/);
      // the raw binding checks too
      await expect(async () => native().createCommunicator({ backend: 'gloo', rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 0, timeoutMs: 1000 }))
        .rejects.toThrow(/masterPort/);
    });

    it('a rank that never joins the collective makes the other reject naming the op, within the timeout', async () => {
      const port = await freePort();
      const [c0, c1] = await Promise.all([0, 1].map((rank) => Communicator.create({ rank, worldSize: 2, masterPort: port, timeoutMs: 1000 })));
      const t = Date.now();
      let ticks = 0; // the event loop keeps running while the collective waits on the communicator's own thread
      const timer = setInterval(() => ticks++, 20);
      const err = await c0!.allReduce(new Float32Array(8)).then(() => null, (e: unknown) => e as Error);
      clearInterval(timer);
      const s = (Date.now() - t) / 1000;
      expect(ticks).toBeGreaterThan(10);
      expect(err?.message).toMatch(/all_reduce failed on rank 0 of 2/);
      expect(s).toBeGreaterThan(0.8);
      expect(s).toBeLessThan(3);
      await expect(c0!.barrier()).rejects.toThrow(/unusable/);
      await c0!.dispose();
      await c1!.dispose();
    });

    it('nccl without libnccl.so.2 / CUDA fails with the install hint', async () => {
      const info = native().cudaInfo();
      if (info.compiled && info.gpus.length > 0) {
        console.warn('skipped: a CUDA build with a GPU is present (the NCCL path is exercised on the GPU machine)');
        return;
      }
      await expect(Communicator.create({ backend: 'nccl', rank: 0, worldSize: 1, masterPort: await freePort(), timeoutMs: 2000 }))
        .rejects.toThrow(/libnccl\.so\.2.*use backend 'gloo'/);
    });

    it('two communicators on one port: the second rank 0 gets the address-in-use message', async () => {
      const port = await freePort();
      const a = await Communicator.create({ rank: 0, worldSize: 1, masterPort: port, timeoutMs: 2000 });
      await expect(Communicator.create({ rank: 0, worldSize: 1, masterPort: port, timeoutMs: 2000 })).rejects.toThrow(/--master-port/);
      await a.dispose();
    });
  });
});
