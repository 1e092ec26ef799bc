/** `vlm-grpo generate --model DIR --prompt TEXT [--image PATH]...` */
import { loadModel } from '../model/vlm-model.js';
import type { ChatContentPart } from '../processor/chat-template.js';
import { intOption, numOption, parse, UsageError } from './args.js';

export const GENERATE_USAGE = `Usage: vlm-grpo generate --model DIR --prompt TEXT [--image PATH]... [options]

  --model DIR            a Qwen2-VL / Qwen2.5-VL model folder (or a training checkpoint)
  --prompt TEXT          the user message
  --image PATH           an image shown before the text (repeatable)
  --system TEXT          a system prompt
  --max-new-tokens N     default 256
  --temperature T        0 = greedy (default), else sampling
  --top-p P, --top-k K   sampling filters
  --samples N            completions to draw (default 1)
  --seed N               sampling seed (default 0)
  --json                 print JSON lines instead of text`;

export async function generateCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    model: { type: 'string' }, prompt: { type: 'string' }, image: { type: 'string', multiple: true }, system: { type: 'string' },
    'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' },
    samples: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' },
  }, GENERATE_USAGE);
  if (values.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  if (!values.model || values.prompt === undefined) throw new UsageError(`--model and --prompt are required.\n\n${GENERATE_USAGE}`);
  const model = await loadModel(values.model);
  try {
    const images = values.image ?? [];
    const content: ChatContentPart[] = [...images.map(() => ({ type: 'image' as const })), { type: 'text', text: values.prompt }];
    const messages = [...(values.system ? [{ role: 'system', content: values.system }] : []), { role: 'user', content }];
    const enc = await model.encode({ messages, images });
    const gens = await model.generate(enc, {
      maxNewTokens: intOption(values['max-new-tokens'], 'max-new-tokens', 256, 1),
      temperature: numOption(values.temperature, 'temperature', 0),
      topP: numOption(values['top-p'], 'top-p', 1),
      topK: intOption(values['top-k'], 'top-k', 0),
      numSamples: intOption(values.samples, 'samples', 1, 1),
      seed: intOption(values.seed, 'seed', 0),
    });
    for (const g of gens) {
      if (values.json) console.log(JSON.stringify({ text: g.text, tokens: Array.from(g.tokens), finishReason: g.finishReason }));
      else console.log(g.text);
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
