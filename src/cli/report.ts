/** `vlm-grpo report RUN_DIR` */
import { writeHtmlReport } from '../report/html-report.js';
import { intOption, parse, UsageError } from './args.js';

export const REPORT_USAGE = `Usage: vlm-grpo report RUN_DIR [--max-rollouts N]

Writes RUN_DIR/report.html: plots of reward, accuracy, length, KL, entropy and reflection counts over steps,
and a browsable sample of rollouts with their images. Self-contained (no network).`;

export async function reportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'max-rollouts': { type: 'string' }, help: { type: 'boolean' } }, REPORT_USAGE);
  if (values.help) {
    console.log(REPORT_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`report takes one RUN_DIR.\n\n${REPORT_USAGE}`);
  const path = await writeHtmlReport(positionals[0]!, { maxRollouts: intOption(values['max-rollouts'], 'max-rollouts', 200, 1) });
  console.log(path);
  return 0;
}
