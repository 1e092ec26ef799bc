/** `vlm-grpo train --config run.yaml [--set key=value]... [--resume]` */
import { writeHtmlReport } from '../report/html-report.js';
import { ProgressReporter } from '../report/progress.js';
import { checkPaths, loadConfig } from '../config/load.js';
import { GrpoTrainer } from '../rl/trainer.js';
import { parse, UsageError } from './args.js';

export const TRAIN_USAGE = `Usage: vlm-grpo train --config run.yaml [--set key=value]... [--resume]

  --config FILE     training configuration (YAML or JSON; see the README for every key)
  --set KEY=VALUE   override one config value, e.g. --set rollout.groupSize=8 (repeatable)
  --resume          continue from the latest checkpoint in train.outDir
Ctrl-C stops after the current phase, saves a checkpoint and exits; --resume continues from it.`;

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, set: { type: 'string', multiple: true }, resume: { type: 'boolean' }, help: { type: 'boolean' } }, TRAIN_USAGE);
  if (values.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  if (!values.config) throw new UsageError(`--config is required.\n\n${TRAIN_USAGE}`);
  const cfg = loadConfig(values.config, values.set ?? []);
  checkPaths(cfg, values.config);
  const trainer = new GrpoTrainer(cfg, {});
  const progress = new ProgressReporter({ totalSteps: cfg.train.steps, every: cfg.train.logEvery });
  trainer.on('log', (l) => progress.log(l));
  trainer.on('step', (m) => progress.update(m));
  trainer.on('checkpoint', (c) => progress.log(`checkpoint: ${c.dir}`));
  const ac = new AbortController();
  const onSignal = (): void => {
    if (ac.signal.aborted) process.exit(130);  // a second Ctrl-C exits at once
    progress.log('interrupt: finishing the current phase, then saving a checkpoint (Ctrl-C again to exit now)');
    ac.abort('interrupted');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const res = await trainer.train({ signal: ac.signal, resume: values.resume ?? false });
    progress.finish();
    const report = await writeHtmlReport(cfg.train.outDir, { maxRollouts: 200 });
    console.log(`${res.stoppedEarly ? 'stopped' : 'done'} after ${res.steps} steps; checkpoint ${res.lastCheckpoint}; report ${report}`);
    return res.stoppedEarly ? 130 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
