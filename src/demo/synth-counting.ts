/**
 * The synthetic visual-counting data set of the demo, written in the VLM-R1 JSONL layout users bring:
 *
 *   <outDir>/train.jsonl, test_id.jsonl, test_ood.jsonl [, test_ood_counts.jsonl]
 *   <outDir>/images/<split>-<index>.png
 *   <outDir>/<split>.scenes.jsonl     the full scene of every row (objects, positions, colours, background)
 *   <outDir>/dataset.json             seed, sizes, splits, what is held out, statistics
 *
 * A row: {"id": "train-00000", "image": "images/train-00000.png", "conversations": [{"from": "human", "value":
 * "<image>How many red objects are there?"}, {"from": "gpt", "value": "3"}], "accu_reward_method": "counting",
 * "question_type": "color", "condition": "A"}. The `counting` method (src/rewards/counting.ts) gives 1 to a
 * completion whose `<answer>` holds the integer, 0 otherwise; `question_type` and `condition` are passed to the
 * rewards as row columns and let evaluations break accuracy down.
 *
 * Splits (see scenes.ts for the A/B combinations):
 *  - train:            condition A objects only, answers 0..5;
 *  - test_id:          the same distribution, new scenes (independent random streams);
 *  - test_ood:         condition B objects only (colour×shape pairs never seen in training), answers 0..5;
 *  - test_ood_counts:  (optional) condition A objects, answers 6..8, beyond the training range.
 * Example i of a split is drawn from its own stream Rng(seed, split, i): the same seed and arguments give the same
 * files byte for byte, and a split does not change when another split's size does.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { renderScenePng } from './render.js';
import {
  comboName,
  countedNoun,
  CONDITION_A,
  CONDITION_B,
  gridForImageSize,
  questionText,
  Rng,
  sampleScene,
  type Combo,
  type Condition,
  type QuestionKind,
  type Scene,
} from './scenes.js';

/** Split names, in file order. */
export type CountingSplit = 'train' | 'test_id' | 'test_ood' | 'test_ood_counts';

export interface CountingDatasetOptions {
  /** Output folder (created when missing). */
  outDir: string;
  /** Seed of every random choice. Default 0. */
  seed?: number;
  /** Training rows. Default 2000. */
  train?: number;
  /** In-distribution test rows. Default 200. */
  testId?: number;
  /** Out-of-distribution test rows (held-out colour×shape pairs). Default 200. */
  testOod?: number;
  /** Rows with counts 6..8 beyond the training range (written only when > 0). Default 0. */
  testOodCounts?: number;
  /** Image side in pixels, a multiple of 28 from 84 to 448. Default 112 (a 4×4 grid). */
  imageSize?: number;
  /** Share of scenes with overlapping objects. Default 0.15. */
  overlapProbability?: number;
  /** Images rendered concurrently. Default 32. */
  concurrency?: number;
}

/** Per-split statistics. */
export interface CountingSplitStats {
  rows: number;
  condition: Condition;
  countRange: [number, number];
  /** Rows per answer ("0" … "8"). */
  answers: Record<string, number>;
  /** Rows per question kind. */
  questionKinds: Record<QuestionKind, number>;
  /** Objects drawn per colour×shape pair ("red circle"). */
  combos: Record<string, number>;
  /** Scenes with overlapping objects. */
  overlapping: number;
  /** Objects in all scenes. */
  objects: number;
}

export interface CountingSplitFiles {
  /** The VLM-R1 JSONL file. */
  jsonl: string;
  /** The scenes (one JSON per row, same order). */
  scenes: string;
}

export interface CountingDatasetResult {
  outDir: string;
  /** dataset.json */
  meta: string;
  splits: Partial<Record<CountingSplit, CountingSplitFiles>>;
  stats: Partial<Record<CountingSplit, CountingSplitStats>>;
  /** Wall time of the whole generation. */
  seconds: number;
}

/** A row of a split's scenes file. */
export interface SceneRecord extends Scene {
  id: string;
  /** Image path relative to the output folder. */
  image: string;
  condition: Condition;
  /** The question sentence. */
  text: string;
}

/** What each split draws from. */
export const SPLIT_SPECS: Readonly<Record<CountingSplit, { condition: Condition; combos: readonly Combo[]; countRange: [number, number] }>> = {
  train: { condition: 'A', combos: CONDITION_A, countRange: [0, 5] },
  test_id: { condition: 'A', combos: CONDITION_A, countRange: [0, 5] },
  test_ood: { condition: 'B', combos: CONDITION_B, countRange: [0, 5] },
  test_ood_counts: { condition: 'A', combos: CONDITION_A, countRange: [6, 8] },
};

/** The `accu_reward_method` every row names: src/rewards/counting.ts (exact integer count). */
export const COUNTING_REWARD_METHOD = 'counting';

function checkCount(name: string, v: number | undefined, def: number): number {
  const x = v ?? def;
  if (!Number.isSafeInteger(x) || x < 0 || x > 1_000_000) throw new RangeError(`writeCountingDataset: ${name} must be an integer in [0, 1000000], got ${v}`);
  return x;
}

function rowId(split: CountingSplit, i: number): string {
  return `${split}-${String(i).padStart(5, '0')}`;
}

/** Sample the scene of row i of a split (pure function of its arguments). */
export function countingScene(seed: number, split: CountingSplit, i: number, imageSize: number, overlapProbability = 0.15): SceneRecord {
  const spec = SPLIT_SPECS[split];
  const scene = sampleScene(Rng.fromKey('synth-counting', seed, split, i), {
    imageSize,
    combos: spec.combos,
    countRange: spec.countRange,
    overlapProbability,
  });
  const id = rowId(split, i);
  return { id, image: `images/${id}.png`, condition: spec.condition, text: questionText(scene.question), ...scene };
}

/** The VLM-R1 row of a scene. */
export function countingRow(s: SceneRecord): Record<string, unknown> {
  return {
    id: s.id,
    image: s.image,
    conversations: [
      { from: 'human', value: `${s.text}\n<image>` },
      { from: 'gpt', value: String(s.answer) },
    ],
    accu_reward_method: COUNTING_REWARD_METHOD,
    question_type: s.question.kind,
    // What the question counts ("red objects", "circles"): the warm start's think text restates it.
    target: countedNoun(s.question, 2),
    condition: s.condition,
  };
}

function emptyStats(split: CountingSplit, rows: number): CountingSplitStats {
  const spec = SPLIT_SPECS[split];
  return {
    rows,
    condition: spec.condition,
    countRange: [...spec.countRange],
    answers: {},
    questionKinds: { color: 0, shape: 0, color_shape: 0, total: 0 },
    combos: {},
    overlapping: 0,
    objects: 0,
  };
}

async function writeSplit(
  outDir: string,
  split: CountingSplit,
  rows: number,
  seed: number,
  imageSize: number,
  overlapProbability: number,
  concurrency: number,
): Promise<{ files: CountingSplitFiles; stats: CountingSplitStats }> {
  const stats = emptyStats(split, rows);
  const jsonl: string[] = [];
  const scenes: string[] = [];
  for (let start = 0; start < rows; start += concurrency) {
    const batch: SceneRecord[] = [];
    for (let i = start; i < Math.min(rows, start + concurrency); i++) batch.push(countingScene(seed, split, i, imageSize, overlapProbability));
    await Promise.all(batch.map(async (s) => writeFile(path.join(outDir, s.image), await renderScenePng(s))));
    for (const s of batch) {
      jsonl.push(JSON.stringify(countingRow(s)));
      scenes.push(JSON.stringify(s));
      stats.answers[String(s.answer)] = (stats.answers[String(s.answer)] ?? 0) + 1;
      stats.questionKinds[s.question.kind]++;
      if (s.overlap !== 'none') stats.overlapping++;
      stats.objects += s.objects.length;
      for (const o of s.objects) {
        const k = comboName(o);
        stats.combos[k] = (stats.combos[k] ?? 0) + 1;
      }
    }
  }
  const files = { jsonl: path.join(outDir, `${split}.jsonl`), scenes: path.join(outDir, `${split}.scenes.jsonl`) };
  await writeFile(files.jsonl, jsonl.length ? jsonl.join('\n') + '\n' : '');
  await writeFile(files.scenes, scenes.length ? scenes.join('\n') + '\n' : '');
  return { files, stats };
}

/**
 * Generate the data set (see the module comment) and return the file paths and statistics. Existing files of the
 * same names are overwritten. Throws RangeError for bad sizes.
 */
export async function writeCountingDataset(options: CountingDatasetOptions): Promise<CountingDatasetResult> {
  const t0 = performance.now();
  if (!options || typeof options.outDir !== 'string' || options.outDir.length === 0) throw new TypeError('writeCountingDataset: outDir (a folder path) is required');
  const seed = checkCount('seed', options.seed, 0);
  const imageSize = options.imageSize ?? 112;
  const grid = gridForImageSize(imageSize);
  const sizes: Record<CountingSplit, number> = {
    train: checkCount('train', options.train, 2000),
    test_id: checkCount('testId', options.testId, 200),
    test_ood: checkCount('testOod', options.testOod, 200),
    test_ood_counts: checkCount('testOodCounts', options.testOodCounts, 0),
  };
  const overlapProbability = options.overlapProbability ?? 0.15;
  if (!(overlapProbability >= 0 && overlapProbability <= 1)) throw new RangeError(`writeCountingDataset: overlapProbability must be in [0, 1], got ${overlapProbability}`);
  const concurrency = options.concurrency ?? 32;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError(`writeCountingDataset: concurrency must be a positive integer, got ${concurrency}`);

  const outDir = path.resolve(options.outDir);
  await mkdir(path.join(outDir, 'images'), { recursive: true });
  const result: CountingDatasetResult = { outDir, meta: path.join(outDir, 'dataset.json'), splits: {}, stats: {}, seconds: 0 };
  for (const split of ['train', 'test_id', 'test_ood', 'test_ood_counts'] as const) {
    if (split === 'test_ood_counts' && sizes[split] === 0) continue;
    const { files, stats } = await writeSplit(outDir, split, sizes[split], seed, imageSize, overlapProbability, concurrency);
    result.splits[split] = files;
    result.stats[split] = stats;
  }
  const meta = {
    task: 'synthetic visual counting',
    generator: 'vlm-grpo data synth-counting',
    seed,
    imageSize,
    grid,
    cellPixels: 28,
    overlapProbability,
    rewardMethod: COUNTING_REWARD_METHOD,
    conditions: { A: CONDITION_A.map(comboName), B: CONDITION_B.map(comboName) },
    heldOut:
      'Training and test_id draw objects only from the condition A colour×shape pairs; test_ood draws only from ' +
      'condition B (pairs never seen in training; every colour and shape alone was seen). test_ood_counts uses ' +
      'condition A with answers 6..8, beyond the training answers 0..5.',
    splits: Object.fromEntries(
      Object.entries(result.stats).map(([k, s]) => [k, { file: `${k}.jsonl`, scenes: `${k}.scenes.jsonl`, ...s }]),
    ),
  };
  await writeFile(result.meta, JSON.stringify(meta, null, 2) + '\n');
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
