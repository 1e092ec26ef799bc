/**
 * Data-parallel step time with the gradient reduction overlapped with backward (issue 6): 2 Gloo ranks (child
 * processes, loopback, 1 compute thread each) on a small random text model (default ~8.6M parameters, 34 MB of
 * fp32 gradients), timing forward + backward + the cross-rank gradient sum per step:
 *   whole    backward, then one allReduce over the whole gradient buffer (the pre-bucketing path)
 *   after    backward, then the bucketed collectives (reduceGradients, buckets of --bucket-mb)
 *   overlap  backward with overlapWith: each bucket's collective starts as soon as backward has finished it
 * Median of --steps timed steps after 2 warm-up steps, per rank; the table shows rank 0 and the ratio to 'whole'.
 * On a 2-core machine the two ranks' backward passes and Gloo's socket threads share the cores, so the gain is
 * bounded by how much CPU the collective leaves idle; on real multi-core hosts / NICs it is larger.
 *
 *   node --import tsx benchmarks/dist-overlap.ts [--layers 8] [--hidden 256] [--tokens 256] [--bucket-mb 4] [--steps 5]
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

import { Communicator } from '../src/dist/communicator.js';
import { native, type NativeModelConfig } from '../src/native/binding.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : def;
}

const LAYERS = arg('--layers', 8), HIDDEN = arg('--hidden', 256), TOKENS = arg('--tokens', 256);
const BUCKET_MB = arg('--bucket-mb', 4), STEPS = arg('--steps', 5);
const MODES = ['whole', 'after', 'overlap'] as const;

function config(): NativeModelConfig {
  return {
    vocabSize: 4096, hiddenSize: HIDDEN, numLayers: LAYERS, numHeads: HIDDEN / 32, numKvHeads: HIDDEN / 64, headDim: 32,
    intermediateSize: Math.round(HIDDEN * 2.6875), rmsNormEps: 1e-6, ropeTheta: 10000, mropeSection: [4, 6, 6],
    tieWordEmbeddings: false, imageTokenId: 4000, videoTokenId: 4001, visionStartTokenId: 4002, visionEndTokenId: 4003,
    vision: {
      kind: 'qwen2_5_vl', depth: 1, hiddenSize: 32, numHeads: 2, headDim: 16, intermediateSize: 64, patchSize: 2,
      temporalPatchSize: 2, mergeSize: 2, inChannels: 3, outHiddenSize: HIDDEN, act: 'silu', eps: 1e-6, windowSize: 8, fullAttBlocks: [0],
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function rankMain(rank: number, world: number, port: number): Promise<void> {
  native().setNumThreads(1);
  const comm = await Communicator.create({ rank, worldSize: world, masterPort: port, timeoutMs: 120_000 });
  const m = new (native().NativeModel)(config());
  const p = m.parameters();
  let x = 12345 + rank;
  const rnd = (): number => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5);
  for (let i = 0; i < p.length; i++) p[i] = rnd() * 0.1;
  const N = TOKENS;
  const inputIds = Int32Array.from({ length: N }, () => Math.floor((rnd() + 0.5) * 3990));
  const positions = new Int32Array(3 * N);
  for (let a = 0; a < 3; a++) for (let i = 0; i < N; i++) positions[a * N + i] = i;
  const cuSeqlens = Int32Array.from([0, N / 2, N]);
  const targets = Int32Array.from({ length: N }, (_, i) => inputIds[(i + 1) % N]!);
  const gradLogprobs = Float32Array.from({ length: N }, () => rnd() / N);
  const spec = { communicator: comm.nativeHandle, begin: 0, end: p.length, bucketBytes: BUCKET_MB * 2 ** 20, op: 'allReduce' as const };
  const times: Record<string, number[]> = {};
  let buckets = 0, overlapped = 0;
  for (const mode of MODES) {
    times[mode] = [];
    for (let s = 0; s < STEPS + 2; s++) {
      m.zeroGrads();
      await comm.barrier();
      const t0 = performance.now();
      await m.forward({ inputIds, positions, cuSeqlens, targets, keepForBackward: true });
      if (mode === 'overlap') {
        const r = await m.backward({ gradLogprobs, overlapWith: spec });
        if (r && s >= 2) { buckets = r.buckets; overlapped += r.overlapped; }
      } else {
        await m.backward({ gradLogprobs });
        if (mode === 'after') await m.reduceGradients(spec);
        else await comm.allReduce(m.gradients(), 'sum');
      }
      if (s >= 2) times[mode]!.push(performance.now() - t0);
    }
  }
  const out = { rank, params: p.length, buckets, overlapped: overlapped / STEPS, ms: Object.fromEntries(MODES.map((k) => [k, median(times[k]!)])) };
  await comm.dispose();
  m.dispose();
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function parentMain(): Promise<void> {
  const world = 2;
  const port = await freePort();
  const self = fileURLToPath(import.meta.url);
  const results = await Promise.all(Array.from({ length: world }, (_, rank) => new Promise<any>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', self, ...process.argv.slice(2), '--rank', String(rank), '--world', String(world), '--port', String(port)],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, VG_NUM_THREADS: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`rank ${rank} exited with ${code}`));
      else resolve(JSON.parse(line.slice(7)));
    });
  })));
  const r0 = results[0];
  console.log(`2 Gloo ranks, 1 thread each: ${(r0.params / 1e6).toFixed(2)}M parameters (${(r0.params * 4 / 2 ** 20).toFixed(1)} MB gradients), ` +
    `${TOKENS} tokens per rank, buckets of ${BUCKET_MB} MB (${r0.buckets} buckets, ${r0.overlapped.toFixed(1)} started during backward on rank 0)`);
  console.log('mode      step ms (rank 0)  step ms (rank 1)  vs whole');
  for (const k of MODES) {
    console.log(`${k.padEnd(9)} ${r0.ms[k].toFixed(1).padStart(16)}  ${results[1].ms[k].toFixed(1).padStart(16)}  ${(r0.ms[k] / r0.ms.whole).toFixed(2).padStart(8)}x`);
  }
}

const ri = process.argv.indexOf('--rank');
if (ri >= 0) await rankMain(Number(process.argv[ri + 1]), arg('--world', 2), arg('--port', 0));
else await parentMain();
