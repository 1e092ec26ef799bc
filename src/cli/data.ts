/** `vlm-grpo data synth-counting --out DIR …` and `vlm-grpo data init-model --out DIR …` (the demo's data and model). */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { gridForImageSize } from '../demo/scenes.js';
import { writeCountingDataset } from '../demo/synth-counting.js';
import { TINY_MODEL_PRESETS, writeTinyModel, type TinyModelPreset } from '../demo/tiny-model.js';
import { intOption, parse, UsageError } from './args.js';

export const DATA_USAGE = `Usage: vlm-grpo data SUBCOMMAND --out DIR [options]

Subcommands:
  synth-counting   write the synthetic visual-counting data set (VLM-R1 JSONL + PNG images)
  init-model       write a tiny randomly initialised Qwen2.5-VL model folder with the task's tokenizer

Run vlm-grpo data SUBCOMMAND --help for its options.`;

export const SYNTH_COUNTING_USAGE = `Usage: vlm-grpo data synth-counting --out DIR [options]

Scenes of coloured shapes (circle, square, triangle; red, green, blue, yellow) on a grid of 28-pixel cells with
questions such as "How many red objects are there?" and integer answers, written as VLM-R1 JSONL rows with
accu_reward_method "counting": DIR/train.jsonl, test_id.jsonl, test_ood.jsonl (+ test_ood_counts.jsonl),
DIR/images/*.png, DIR/<split>.scenes.jsonl (every object drawn) and DIR/dataset.json (what is held out, stats).
Training and test_id use colour×shape pairs of condition A (red circle, red triangle, green square, blue circle,
blue triangle, yellow square); test_ood only the held-out pairs of condition B. Same seed, same bytes.

  --out DIR          output folder (created; must be empty unless --force)
  --seed N           random seed (default 0)
  --train N          training rows (default 2000)
  --test N           in-distribution test rows (default 200)
  --ood N            out-of-distribution test rows, held-out colour×shape pairs (default 200)
  --ood-counts N     test rows with counts 6..8, beyond the training range 0..5 (default 0: not written)
  --size PX          image side, a multiple of 28 from 84 to 448 (default 112: a 4×4 grid)
  --force            write into a non-empty folder (files of the same names are replaced)
  --json             print the result as JSON`;

export const INIT_MODEL_USAGE = `Usage: vlm-grpo data init-model --out DIR [options]

A complete Qwen2.5-VL model folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with the
chat template, preprocessor_config.json, generation_config.json) with random weights (N(0, 0.02), zero biases,
unit norms) and a byte-level BPE tokenizer made for the counting task. Loads and trains like a Hub checkpoint.

  --out DIR          output folder (created; must be empty unless --force)
  --seed N           weight seed (default 0)
  --preset NAME      demo (≈1.0M parameters: text 128 wide, 4 layers; vision 64 wide, 2 blocks) or test (smaller);
                     default demo
  --force            write into a non-empty folder (files of the same names are replaced)
  --json             print the result as JSON`;

function checkOutDir(out: string | undefined, force: boolean | undefined, usage: string): string {
  if (!out) throw new UsageError(`--out is required.\n\n${usage}`);
  const dir = path.resolve(out);
  let st;
  try {
    st = statSync(dir);
  } catch {
    return dir;
  }
  if (!st.isDirectory()) throw new UsageError(`--out ${out} exists and is not a folder.`);
  if (!force && readdirSync(dir).length > 0) throw new UsageError(`--out ${out} is not empty; pass --force to write into it anyway.`);
  return dir;
}

async function synthCounting(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    out: { type: 'string' }, seed: { type: 'string' }, train: { type: 'string' }, test: { type: 'string' }, ood: { type: 'string' },
    'ood-counts': { type: 'string' }, size: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean' },
  }, SYNTH_COUNTING_USAGE);
  if (values.help) {
    console.log(SYNTH_COUNTING_USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'.\n\n${SYNTH_COUNTING_USAGE}`);
  const size = intOption(values.size, 'size', 112, 1);
  try {
    gridForImageSize(size);
  } catch (err) {
    throw new UsageError(`--size: ${(err as Error).message}`);
  }
  const outDir = checkOutDir(values.out, values.force, SYNTH_COUNTING_USAGE);
  const res = await writeCountingDataset({
    outDir,
    seed: intOption(values.seed, 'seed', 0),
    train: intOption(values.train, 'train', 2000),
    testId: intOption(values.test, 'test', 200),
    testOod: intOption(values.ood, 'ood', 200),
    testOodCounts: intOption(values['ood-counts'], 'ood-counts', 0),
    imageSize: size,
  });
  if (values.json) {
    console.log(JSON.stringify(res));
    return 0;
  }
  console.log(`wrote the counting data set to ${res.outDir} in ${res.seconds.toFixed(1)} s`);
  for (const [split, s] of Object.entries(res.stats)) {
    const answers = Object.keys(s.answers).sort((a, b) => Number(a) - Number(b)).map((k) => `${k}:${s.answers[k]}`).join(' ');
    console.log(`  ${split.padEnd(16)} ${String(s.rows).padStart(6)} rows  condition ${s.condition}  answers ${answers}  overlapping ${s.overlapping}`);
  }
  console.log(`  details: ${res.meta}`);
  return 0;
}

async function initModel(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    out: { type: 'string' }, seed: { type: 'string' }, preset: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' },
    help: { type: 'boolean' },
  }, INIT_MODEL_USAGE);
  if (values.help) {
    console.log(INIT_MODEL_USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'.\n\n${INIT_MODEL_USAGE}`);
  const preset = values.preset ?? 'demo';
  if (!TINY_MODEL_PRESETS.includes(preset as TinyModelPreset)) {
    throw new UsageError(`--preset must be one of ${TINY_MODEL_PRESETS.join(', ')}, got '${preset}'`);
  }
  const outDir = checkOutDir(values.out, values.force, INIT_MODEL_USAGE);
  const res = await writeTinyModel({ outDir, seed: intOption(values.seed, 'seed', 0), preset: preset as TinyModelPreset });
  if (values.json) {
    console.log(JSON.stringify({ dir: res.dir, parameterCount: res.parameterCount, vocabSize: res.vocabSize, files: res.files }));
    return 0;
  }
  const c = res.config;
  console.log(`wrote a ${preset} Qwen2.5-VL model to ${res.dir}: ${res.parameterCount.toLocaleString('en-US')} parameters, vocabulary ${res.vocabSize}`);
  console.log(`  text: hidden ${c.hiddenSize}, ${c.numHiddenLayers} layers, ${c.numAttentionHeads} heads (${c.numKeyValueHeads} KV), MLP ${c.intermediateSize}`);
  console.log(`  vision: width ${c.visionHiddenSize}, ${c.visionDepth} blocks, ${c.visionNumHeads} heads, MLP ${c.visionIntermediateSize}, window ${c.windowSize} px`);
  return 0;
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  'synth-counting': synthCounting,
  'init-model': initModel,
};

export async function dataCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(DATA_USAGE);
    return 0;
  }
  if (sub === undefined) throw new UsageError(`a subcommand is required.\n\n${DATA_USAGE}`);
  const run = SUBCOMMANDS[sub];
  if (!run) throw new UsageError(`unknown subcommand '${sub}'.\n\n${DATA_USAGE}`);
  return run(rest);
}
