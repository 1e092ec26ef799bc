/** `vlm-grpo sft --config sft.yaml [--set key=value]... [--resume]` */
import { checkPaths, loadSftConfig } from '../config/load.js';
import { attachWandb } from '../report/wandb.js';
import { SftTrainer } from '../sft/sft-trainer.js';
import { parse, UsageError } from './args.js';

export const SFT_USAGE = `Usage: vlm-grpo sft --config sft.yaml [--set key=value]... [--resume]

Supervised fine-tuning (cross-entropy on the answers), e.g. the warm start before GRPO. The config has the same
model, data, optim and train sections as a GRPO run, plus:
  sft:
    answerTemplate: "<answer>{answer}</answer>"   # target completion; {answer} = the row's ground truth
    batchSize: 16                                 # prompts per optimizer step
    appendEos: true                               # end targets with <|im_end|> so the model learns to stop`;

export async function sftCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, set: { type: 'string', multiple: true }, resume: { type: 'boolean' }, help: { type: 'boolean' } }, SFT_USAGE);
  if (values.help) {
    console.log(SFT_USAGE);
    return 0;
  }
  if (!values.config) throw new UsageError(`--config is required.\n\n${SFT_USAGE}`);
  const cfg = loadSftConfig(values.config, values.set ?? []);
  checkPaths(cfg, values.config);
  const t = new SftTrainer(cfg);
  t.on('log', (l) => console.error(l));
  t.on('step', (m) => {
    if (m.step % cfg.train.logEvery === 0 || m.step === cfg.train.steps) {
      console.error(`sft ${m.step}/${cfg.train.steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} grad-norm ${m.gradNorm.toFixed(3)} (${m.seconds.toFixed(2)} s)`);
    }
  });
  // Weights & Biases (logging.wandb); a failing upload never stops training.
  const wandb = cfg.logging.wandb ? await attachWandb(t, { ...cfg.logging.wandb, onLog: (l) => console.error(l), onWarning: (l) => console.error(l) }) : undefined;
  let exitCode = 1;
  const ac = new AbortController();
  const onSignal = (): void => ac.abort('interrupted');
  process.once('SIGINT', onSignal);
  try {
    const res = await t.train({ signal: ac.signal, resume: values.resume ?? false });
    exitCode = res.stoppedEarly ? 130 : 0;
    await wandb?.finish({ exitCode });
    console.log(`${res.stoppedEarly ? 'stopped' : 'done'} after ${res.steps} steps; checkpoint ${res.lastCheckpoint}`);
    return exitCode;
  } finally {
    await wandb?.finish({ exitCode });
    process.off('SIGINT', onSignal);
  }
}
