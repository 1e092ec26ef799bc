/**
 * One rank of test/dist/overlap.test.ts: loads the tiny model from VG_DIST_MODEL_DIR and, for ZeRO stages 0, 1 and 2
 * and three reduction modes ('overlap': bucketed collectives during the last backward of each step, 'after': the same
 * buckets after backward, 'plain': one collective over the whole range), takes 3 optimizer steps from the same start.
 * Each step runs this rank's micro-batches (forward + backward of a weighted log-prob loss over fixture prompts, with
 * and without an image); the last rank has no micro-batch in step 1 (it reduces without a backward while the others
 * overlap). Prints the updated trainable values and the bucket statistics as one JSON line.
 */
import { Communicator } from '../../src/dist/communicator.js';
import { ZeroAdamW, type ZeroStage } from '../../src/dist/zero.js';
import { loadModel } from '../../src/model/vlm-model.js';
import { fixturePrompts } from '../rl/helpers.js';
import { rankData, rankEnv, toB64 } from './comm-data.js';
import { SETTINGS, STEPS, paramRange } from './zero-data.js';

const { rank, world, port, seed } = rankEnv();
const dir = process.env.VG_DIST_MODEL_DIR;
if (!dir) throw new Error('VG_DIST_MODEL_DIR is not set');
const model = await loadModel(dir);
const comm = await Communicator.create({ rank, worldSize: world, masterPort: port, timeoutMs: 20_000 });
const prompts = fixturePrompts();
const range = paramRange(model.parameters().length);
const init = model.parameters().slice();
/** Small buckets (a few KB) so the tiny model's reduction is cut into many collectives. */
const BUCKET_MB = 8 / 1024;
const out: Record<string, unknown> = { rank };

/** Micro-batches of step s on this rank: 2, except none for the last rank at step 1. */
function microBatches(s: number): number {
  return s === 1 && rank === world - 1 ? 0 : 2;
}

for (const stage of [0, 1, 2] as ZeroStage[]) {
  for (const mode of ['overlap', 'after', 'plain'] as const) {
    model.parameters().set(init);
    const opt = new ZeroAdamW(model, range, SETTINGS, {
      comm, stage, ...(mode === 'plain' ? {} : { buckets: { overlap: mode === 'overlap', bucketMB: BUCKET_MB } }),
    });
    const stats: unknown[] = [];
    const steps = [];
    for (let s = 0; s < STEPS; s++) {
      model.zeroGrads();
      const n = microBatches(s);
      for (let m = 0; m < n; m++) {
        const p = prompts[(rank + s + m) % prompts.length]!;
        const targets = new Int32Array(p.input.inputIds.length).fill(-1);
        for (let i = 0; i + 1 < targets.length; i++) targets[i] = p.input.inputIds[i + 1]!;
        await model.forwardBatch([{ ...p.input, targets }], { keepForBackward: true });
        const w = rankData(seed, rank, 100 * s + m, targets.length, 0.05);
        const gradLogprobs = Float32Array.from(w);
        if (m === n - 1) stats.push(await opt.finalBackward({ gradLogprobs }));
        else await model.backward({ gradLogprobs });
      }
      steps.push(await opt.apply());
    }
    out[`${mode}${stage}`] = { values: toB64(model.parameters().subarray(range.begin, range.end)), steps, stats };
  }
}

await comm.dispose();
model.dispose();
process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
