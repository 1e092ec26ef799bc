/** `vlm-grpo demo [--out DIR] [--seed N]`: the synthetic visual-counting demo (see src/demo/run-demo.ts). */
import { intOption, parse } from './args.js';
import { runDemo } from '../demo/run-demo.js';

export const DEMO_USAGE = `Usage: vlm-grpo demo [--out DIR] [--seed N] [--quick]

Runs the whole visual-counting experiment on this machine: synthetic data, a tiny Qwen2.5-VL model, a supervised
warm start, GRPO with accuracy and format rewards, and greedy evaluation in distribution and out of distribution
(colour-shape pairs never seen in training). Prints the accuracy table and writes the run folder
(data, checkpoints, metrics, rollouts, report.html, results.json).

  --out DIR          run folder (default ./vlm-grpo-demo)
  --seed N           seed of the data, the model and the training (default 1)
  --warm-start DIR   start from this SFT checkpoint instead of running the warm start
  --quick            toy sizes (seconds; for smoke tests)`;

function bar(done: number, total: number): string {
  const w = 24;
  const f = Math.round((done / Math.max(1, total)) * w);
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { out: { type: 'string' }, seed: { type: 'string' }, 'warm-start': { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean' } }, DEMO_USAGE);
  if (values.help) {
    console.log(DEMO_USAGE);
    return 0;
  }
  const tty = process.stderr.isTTY === true;
  let lastPhase = '';
  let lastPrint = 0;
  const res = await runDemo({
    outDir: values.out ?? 'vlm-grpo-demo',
    seed: intOption(values.seed, 'seed', 1),
    quick: values.quick ?? false,
    ...(values['warm-start'] ? { warmStart: values['warm-start'] } : {}),
    log: (l) => {
      if (tty) process.stderr.write('\r\x1b[2K');
      console.error(l);
    },
    onPhase: (phase, done, total) => {
      const name = phase.replace(/ \(.*\)$/, '');
      if (tty) {
        process.stderr.write(`\r\x1b[2K${phase.padEnd(28)} ${bar(done, total)}`);
        if (done === total) process.stderr.write('\n');
      } else if (name !== lastPhase || done === total || Date.now() - lastPrint > 10_000) {
        console.error(`${phase} ${done}/${total}`);
        lastPrint = Date.now();
      }
      lastPhase = name;
    },
  });
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`.padStart(8);
  console.log('');
  console.log('                      in-distribution   out-of-distribution');
  console.log(`start (SFT warm start)      ${pct(res.start.inDistribution)}              ${pct(res.start.outOfDistribution)}`);
  console.log(`after GRPO                  ${pct(res.grpo.inDistribution)}              ${pct(res.grpo.outOfDistribution)}`);
  console.log('');
  console.log(`${res.seconds.toFixed(0)} s in all; report: ${res.report}`);
  return 0;
}
