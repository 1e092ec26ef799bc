/** `vlm-grpo eval --model DIR --data FILE [--reward NAME]... [--samples K]` */
import { loadPromptDatasets } from '../data/dataset.js';
import { loadModel } from '../model/vlm-model.js';
import { loadRewardScorer } from '../rewards/scorer.js';
import { parseRewardArg } from '../rewards/combine.js';
import { evaluate } from '../rl/evaluate.js';
import { intOption, numOption, parse, UsageError } from './args.js';

export const EVAL_USAGE = `Usage: vlm-grpo eval --model DIR --data FILE [options]

  --model DIR            model folder or training checkpoint
  --data FILE            JSONL / JSON / Parquet in any supported format (repeatable)
  --image-folder DIR     folder relative image paths are resolved against (default: the data file's folder)
  --reward SPEC          rewards, e.g. accuracy or accuracy=0.9,format=0.1 or ./my_reward.ts (default accuracy)
  --template NAME        prompt template: none, r1, vlm-r1, vlm-r1-rec, ocean-r1, or a string with {question} (default r1)
  --samples K            completions per prompt; K > 1 reports pass@K with sampling (default 1: greedy)
  --temperature T        sampling temperature when K > 1 (default 1)
  --max-new-tokens N     default 256
  --limit N              evaluate the first N prompts only
  --batch N              prompts per generate call (default 8)
  --pass-threshold R     reward counted as correct (default 1)
  --group-by COLUMN      also report accuracy per value of a data column (e.g. question_type, data_source)
  --json                 print the result as JSON`;

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    model: { type: 'string' }, data: { type: 'string', multiple: true }, 'image-folder': { type: 'string' }, reward: { type: 'string' },
    template: { type: 'string' }, samples: { type: 'string' }, temperature: { type: 'string' }, 'max-new-tokens': { type: 'string' },
    limit: { type: 'string' }, batch: { type: 'string' }, 'pass-threshold': { type: 'string' }, 'group-by': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' },
  }, EVAL_USAGE);
  if (values.help) {
    console.log(EVAL_USAGE);
    return 0;
  }
  if (!values.model || !values.data?.length) throw new UsageError(`--model and --data are required.\n\n${EVAL_USAGE}`);
  const samples = intOption(values.samples, 'samples', 1, 1);
  const scorer = await loadRewardScorer(parseRewardArg(values.reward ?? 'accuracy'));
  const model = await loadModel(values.model);
  try {
    const { train } = await loadPromptDatasets({
      sources: values.data.map((p) => ({ path: p, ...(values['image-folder'] ? { imageFolder: values['image-folder'] } : {}) })),
      promptTemplate: values.template ?? 'r1',
      shuffle: false,
    }, { processor: model, log: (l) => console.error(l) });
    const res = await evaluate(model, train, scorer, {
      samples,
      temperature: samples > 1 ? numOption(values.temperature, 'temperature', 1) : 0,
      maxNewTokens: intOption(values['max-new-tokens'], 'max-new-tokens', 256, 1),
      batchSize: intOption(values.batch, 'batch', 8, 1),
      seed: 0,
      passThreshold: numOption(values['pass-threshold'], 'pass-threshold', 1),
      ...(values.limit ? { limit: intOption(values.limit, 'limit', 0, 1) } : {}),
      ...(values['group-by'] ? { groupBy: values['group-by'] } : {}),
      onProgress: (d, t) => { if (!values.json) process.stderr.write(`\reval ${d}/${t}`); },
    });
    if (!values.json) process.stderr.write('\n');
    if (values.json) console.log(JSON.stringify({ ...res, details: undefined }));
    else {
      console.log(`prompts ${res.prompts}  accuracy ${(res.accuracy * 100).toFixed(1)}%  mean reward ${res.meanReward.toFixed(4)}${samples > 1 ? `  pass@${samples} ${(res.passAtK * 100).toFixed(1)}%` : ''}`);
      for (const [k, v] of Object.entries(res.perReward)) console.log(`  ${k}: ${v.toFixed(4)}`);
      for (const [k, g] of Object.entries(res.groups ?? {})) console.log(`  ${values['group-by']}=${k}: ${g.prompts} prompts, accuracy ${(g.accuracy * 100).toFixed(1)}%`);
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
