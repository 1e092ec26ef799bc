/**
 * One rank of the ZeroAdamW check in test/dist-communicator.test.ts: loads the tiny model from VG_DIST_MODEL_DIR and,
 * for ZeRO stages 0, 1 and 2 (parameter range) and 1, 2 (LoRA adapters), takes 3 steps from the same start with this
 * rank's share of the gradient (the shares sum to the reference gradient), then prints the updated trainable values,
 * the optimizer-state bytes and the per-step results as one JSON line.
 */
import { Communicator } from '../../src/dist/communicator.js';
import { ZeroAdamW, type ZeroStage } from '../../src/dist/zero.js';
import { loadModel } from '../../src/model/vlm-model.js';
import { rankEnv, toB64 } from './comm-data.js';
import { LORA, SETTINGS, STEPS, fillShare, paramRange } from './zero-data.js';

const { rank, world, port, seed } = rankEnv();
const dir = process.env.VG_DIST_MODEL_DIR;
if (!dir) throw new Error('VG_DIST_MODEL_DIR is not set');
const model = await loadModel(dir);
const comm = await Communicator.create({ rank, worldSize: world, masterPort: port, timeoutMs: 20_000 });
const out: Record<string, unknown> = { rank };

const range = paramRange(model.parameters().length);
const init = model.parameters().slice();
for (const stage of [0, 1, 2] as ZeroStage[]) {
  model.parameters().set(init);
  const opt = new ZeroAdamW(model, range, SETTINGS, { comm, stage });
  const steps = [];
  for (let s = 0; s < STEPS; s++) {
    model.zeroGrads();
    fillShare(model.gradients(), range.begin, range.end - range.begin, seed, rank, world, s);
    steps.push(await opt.apply());
  }
  const p = model.parameters();
  let outsideChanged = 0;
  for (let i = 0; i < p.length; i++) if ((i < range.begin || i >= range.end) && p[i] !== init[i]) outsideChanged++;
  out[`params${stage}`] = {
    values: toB64(p.subarray(range.begin, range.end)), bytes: opt.optimizerStateBytes(), shard: opt.shard, steps, outsideChanged,
    step: opt.step,
  };
}

await model.enableLora(LORA);
const lsize = model.loraParameters().length;
const linit = model.loraParameters().slice();
for (const stage of [1, 2] as ZeroStage[]) {
  model.loraParameters().set(linit);
  const opt = new ZeroAdamW(model, { target: 'lora', size: lsize }, SETTINGS, { comm, stage });
  const steps = [];
  for (let s = 0; s < STEPS; s++) {
    model.zeroGrads();
    fillShare(model.loraGradients(), 0, lsize, seed, rank, world, s);
    steps.push(await opt.apply());
  }
  out[`lora${stage}`] = { values: toB64(model.loraParameters()), bytes: opt.optimizerStateBytes(), shard: opt.shard, steps };
}

await comm.dispose();
model.dispose();
process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
