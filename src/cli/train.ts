/**
 * `vlm-grpo train --config run.yaml [--set key=value]... [--resume] [--nproc-per-node N --nnodes M --node-rank R
 * --master-addr A --master-port P]`. With more than one process per node or more than one node, this command is
 * the launcher (src/dist/launcher.ts): it validates the configuration once, then spawns and supervises the local
 * ranks. A rank process (RANK / WORLD_SIZE in the environment, set by the launcher, torchrun or by hand) creates its
 * communicator and runs the trainer on its share of every step.
 */
import { Communicator } from '../dist/communicator.js';
import { launch, watchLauncher } from '../dist/launcher.js';
import { parseRendezvous, RendezvousError } from '../dist/rendezvous.js';
import { writeHtmlReport } from '../report/html-report.js';
import { ProgressReporter } from '../report/progress.js';
import { attachWandb } from '../report/wandb.js';
import { checkPaths, ConfigError, loadConfig } from '../config/load.js';
import type { TrainConfig } from '../config/schema.js';
import { checkWorldSize, GrpoTrainer } from '../rl/trainer.js';
import { parse, UsageError } from './args.js';

export const TRAIN_USAGE = `Usage: vlm-grpo train --config run.yaml [--set key=value]... [--resume]
       vlm-grpo train --config run.yaml --nproc-per-node N [--nnodes M --node-rank R --master-addr A] [--master-port P]

  --config FILE         training configuration (YAML or JSON; see the README for every key)
  --set KEY=VALUE       override one config value, e.g. --set rollout.groupSize=8 (repeatable)
  --resume              continue from the latest checkpoint in train.outDir (also on a different number of ranks)

Data-parallel training (config section distributed: zeroStage 0|1|2, backend gloo|nccl, timeoutSeconds):
  --nproc-per-node N    start N ranks (processes) on this machine (default 1)
  --nnodes M            machines in the job (default 1); run the same command on each, with its own --node-rank
  --node-rank R         this machine's index 0..M-1 (default 0; node 0 hosts rank 0 and the rendezvous)
  --master-addr A       address of node 0 that every node can reach (default 127.0.0.1)
  --master-port P       free TCP port on node 0 for the rendezvous (default 29500)
  Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun style; set
  them yourself to start ranks by hand) and VG_NUM_THREADS = cores / N unless set. rollout.promptsPerStep must be
  at least the number of ranks; train.outDir must be on a filesystem every node sees. If a rank fails, the others
  are stopped and the command exits non-zero naming it; run it again with --resume.

Ctrl-C stops after the current phase (after the current step with several ranks), saves a checkpoint and exits;
--resume continues from it.`;

/** Rejects a backend the model device cannot use, before any rank starts. */
function checkBackend(cfg: TrainConfig, source: string): void {
  if (cfg.distributed.backend === 'nccl' && cfg.model.device !== 'cuda') {
    throw new ConfigError(`${source}: distributed.backend 'nccl' needs GPU ranks, but model.device is '${cfg.model.device}'.`,
      "Use distributed.backend: gloo for CPU ranks (the default).");
  }
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string' }, set: { type: 'string', multiple: true }, resume: { type: 'boolean' }, help: { type: 'boolean' },
    'nproc-per-node': { type: 'string' }, nnodes: { type: 'string' }, 'node-rank': { type: 'string' }, 'master-addr': { type: 'string' }, 'master-port': { type: 'string' },
  }, TRAIN_USAGE);
  if (values.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  if (!values.config) throw new UsageError(`--config is required.\n\n${TRAIN_USAGE}`);
  const rdv = parseRendezvous({
    nprocPerNode: values['nproc-per-node'], nnodes: values.nnodes, nodeRank: values['node-rank'], masterAddr: values['master-addr'], masterPort: values['master-port'],
  });
  const cfg = loadConfig(values.config, values.set ?? []);
  checkPaths(cfg, values.config);

  if (rdv.mode === 'launch') {
    // Fail on configuration errors once, here, instead of once per rank.
    checkWorldSize(cfg, rdv.nprocPerNode * rdv.nnodes);
    checkBackend(cfg, values.config);
    const res = await launch({ ...rdv, argv: ['train', ...argv] });
    if (res.message) console.error(res.message);
    return res.exitCode;
  }

  let communicator: Communicator | undefined;
  let stopWatching = (): void => {};
  if (rdv.mode === 'rank') {
    stopWatching = watchLauncher();
    checkWorldSize(cfg, rdv.worldSize);
    checkBackend(cfg, values.config);
    try {
      communicator = await Communicator.create({
        backend: cfg.distributed.backend, rank: rdv.rank, worldSize: rdv.worldSize, masterAddr: rdv.masterAddr, masterPort: rdv.masterPort,
        timeoutMs: cfg.distributed.timeoutSeconds * 1000, ...(cfg.distributed.backend === 'nccl' ? { cudaDevice: rdv.localRank } : {}),
      });
    } catch (err) {
      throw new RendezvousError(`rank ${rdv.rank} of ${rdv.worldSize} could not join the job at ${rdv.masterAddr}:${rdv.masterPort} (${cfg.distributed.backend}): ${(err as Error).message}`,
        'Start every rank with the same MASTER_ADDR / MASTER_PORT (--master-addr / --master-port), make sure node 0 runs and is reachable from every node and that the port is free there (or pick another), or raise distributed.timeoutSeconds.');
    }
  }
  const rank = communicator?.rank ?? 0;
  const trainer = new GrpoTrainer(cfg, communicator ? { communicator } : {});
  const progress = new ProgressReporter({ totalSteps: cfg.train.steps, every: cfg.train.logEvery });
  trainer.on('log', (l) => progress.log(l));
  // One progress display per job: rank 0's (the metrics are global, identical on every rank).
  if (rank === 0) trainer.on('step', (m) => progress.update(m));
  trainer.on('checkpoint', (c) => { if (rank === 0) progress.log(`checkpoint: ${c.dir}`); });
  // Weights & Biases (logging.wandb), from rank 0 only; a failing upload never stops training.
  const wandb = rank === 0 && cfg.logging.wandb
    ? await attachWandb(trainer, { ...cfg.logging.wandb, onLog: (l) => progress.log(l), onWarning: (l) => progress.log(l) })
    : undefined;
  let exitCode = 1;
  const ac = new AbortController();
  const onSigint = (): void => {
    if (ac.signal.aborted) process.exit(130);  // a second Ctrl-C exits at once
    progress.log(communicator
      ? 'interrupt: finishing the current step on every rank, then saving a checkpoint (Ctrl-C again to exit now)'
      : 'interrupt: finishing the current phase, then saving a checkpoint (Ctrl-C again to exit now)');
    ac.abort('interrupted');
  };
  // A rank gets SIGTERM from the launcher when another rank failed: a checkpoint would need that rank, so exit now.
  const onSigterm = communicator ? (): void => process.exit(143) : onSigint;
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  try {
    const res = await trainer.train({ signal: ac.signal, resume: values.resume ?? false });
    progress.finish();
    exitCode = res.stoppedEarly ? 130 : 0;
    await wandb?.finish({ exitCode });
    if (rank === 0) {
      const report = await writeHtmlReport(cfg.train.outDir, { maxRollouts: 200 });
      console.log(`${res.stoppedEarly ? 'stopped' : 'done'} after ${res.steps} steps; checkpoint ${res.lastCheckpoint}; report ${report}`);
    }
    return res.stoppedEarly ? 130 : 0;
  } finally {
    await wandb?.finish({ exitCode });
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    stopWatching();
    await communicator?.dispose();
  }
}
