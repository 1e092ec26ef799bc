// One rank of a data-parallel GRPO run on the tiny test model, for the multi-rank tests. Started by the launcher
// (RANK, WORLD_SIZE, ... in the environment; WORLD_SIZE 1 = a single process without a communicator). Argument: a
// JSON spec file { config, resume?, abortAfterStep? }. Writes OUT/rank-R.json (per-step metrics and rollout texts,
// optimizer state bytes) where OUT is the config's train.outDir, and prints "step N" lines as it goes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Communicator } from '../../src/dist/communicator.js';
import { watchLauncher } from '../../src/dist/launcher.js';
import { parseRendezvous } from '../../src/dist/rendezvous.js';
import { GrpoTrainer } from '../../src/rl/trainer.js';
import { fixturePrompts, ListSource } from '../rl/helpers.js';

interface Spec { config: { train: { outDir: string } } & Record<string, unknown>; resume?: boolean }
const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Spec;
watchLauncher();
const rdv = parseRendezvous({}, process.env);
const communicator = rdv.mode === 'rank'
  ? await Communicator.create({ rank: rdv.rank, worldSize: rdv.worldSize, masterAddr: rdv.masterAddr, masterPort: rdv.masterPort, timeoutMs: 60_000 })
  : undefined;
const rank = communicator?.rank ?? 0;
const t = new GrpoTrainer(spec.config as never, { prompts: new ListSource(fixturePrompts()), ...(communicator ? { communicator } : {}) });
const steps: { step: number; loss: number | null; gradNorm: number | null; reward: number }[] = [];
const rollouts: { step: number; texts: string[]; advantages: number[] }[] = [];
let stateBytes = -1;
t.on('log', (l) => {
  const m = /optimizer state (\d+) bytes/.exec(l);
  if (m) stateBytes = Number(m[1]);
  console.log(l);
});
t.on('rollouts', (r) => rollouts.push({ step: r.step, texts: r.rollouts.map((x) => x.text), advantages: r.rollouts.map((x) => x.advantage) }));
t.on('step', (m) => {
  steps.push({ step: m.step, loss: m.loss, gradNorm: m.gradNorm, reward: m.reward.mean });
  console.log(`step ${m.step} done`);
});
const res = await t.train({ resume: spec.resume ?? false });
writeFileSync(join(spec.config.train.outDir, `rank-${rank}.json`), JSON.stringify({ rank, world: communicator?.worldSize ?? 1, stateBytes, steps, rollouts, res }));
await communicator?.dispose();
