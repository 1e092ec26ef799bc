/**
 * Evaluation: generate for every prompt of a dataset (greedy, or k samples for pass@k), score with the reward
 * scorer, and report the mean reward of the first completion ("accuracy" for 0/1 rewards) and pass@k (a prompt
 * passes when any of its k completions reaches `passThreshold`).
 */
import type { PromptDataset } from '../data/dataset.js';
import type { VlmModel } from '../model/vlm-model.js';
import type { RewardScorer } from '../rewards/scorer.js';
import { toTrainerPrompt } from './dataset-source.js';

export interface EvalOptions {
  /** Completions per prompt (1 = greedy accuracy; k > 1 = pass@k with sampling). */
  samples: number;
  /** 0 = greedy (the default for samples = 1). */
  temperature: number;
  maxNewTokens: number;
  /** Evaluate at most this many prompts (default: all). */
  limit?: number;
  /** Prompts per generate call. */
  batchSize: number;
  seed: number;
  /** A completion counts as correct when its reward is >= this (default 1). */
  passThreshold?: number;
  /** Also report accuracy per value of this row column (e.g. a question type or data source). */
  groupBy?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalResult {
  prompts: number;
  /** Mean total reward of each prompt's first completion. */
  meanReward: number;
  /** Share of prompts whose first completion is correct. */
  accuracy: number;
  /** Share of prompts with at least one correct completion among `samples`. */
  passAtK: number;
  samples: number;
  perReward: Record<string, number>;
  /** With groupBy: per value of that column, the prompts, accuracy and pass@k among them. */
  groups?: Record<string, { prompts: number; accuracy: number; passAtK: number }>;
  /** Per prompt: id, first completion, its reward and whether any completion passed. */
  details: { id: string; completion: string; reward: number; pass: boolean }[];
}

export async function evaluate(model: VlmModel, dataset: PromptDataset, scorer: RewardScorer, opts: EvalOptions): Promise<EvalResult> {
  const total = Math.min(dataset.size, opts.limit ?? Infinity);
  const threshold = opts.passThreshold ?? 1;
  const details: EvalResult['details'] = [];
  const perRewardSum: Record<string, number> = {};
  let rewardSum = 0, correct = 0, passed = 0, done = 0;
  const groups = new Map<string, { prompts: number; correct: number; passed: number }>();
  while (done < total) {
    const n = Math.min(opts.batchSize, total - done);
    const prompts = (await dataset.next(n)).map(toTrainerPrompt);
    const gens = await model.generate(prompts.map((p) => p.input), {
      maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, numSamples: opts.samples, seed: opts.seed, sequenceIdBase: done * opts.samples,
    });
    const scores = await scorer.score(gens.map((g) => {
      const p = prompts[g.prompt]!;
      return { completion: g.text, groundTruth: p.groundTruth, row: p.row, images: p.images.map((x) => x.original), inputImages: p.images.map((x) => x.input), completionTokens: g.tokens.length };
    }));
    prompts.forEach((p, i) => {
      const first = i * opts.samples;
      const r = scores.total[first]!;
      rewardSum += r;
      if (r >= threshold) correct++;
      let any = false;
      for (let s = 0; s < opts.samples; s++) any ||= scores.total[first + s]! >= threshold;
      if (any) passed++;
      if (opts.groupBy !== undefined) {
        const key = String(p.row[opts.groupBy] ?? '(none)');
        const g = groups.get(key) ?? { prompts: 0, correct: 0, passed: 0 };
        g.prompts++;
        if (r >= threshold) g.correct++;
        if (any) g.passed++;
        groups.set(key, g);
      }
      for (const name of scorer.names) perRewardSum[name] = (perRewardSum[name] ?? 0) + scores.perReward[name]![first]!;
      details.push({ id: p.id, completion: gens[first]!.text, reward: r, pass: any });
    });
    done += prompts.length;
    opts.onProgress?.(done, total);
  }
  const perReward: Record<string, number> = {};
  for (const [k, v] of Object.entries(perRewardSum)) perReward[k] = v / Math.max(1, done);
  const result: EvalResult = { prompts: done, meanReward: rewardSum / Math.max(1, done), accuracy: correct / Math.max(1, done), passAtK: passed / Math.max(1, done), samples: opts.samples, perReward, details };
  if (opts.groupBy !== undefined) {
    result.groups = {};
    for (const [k, g] of [...groups].sort(([a], [b]) => a.localeCompare(b))) result.groups[k] = { prompts: g.prompts, accuracy: g.correct / g.prompts, passAtK: g.passed / g.prompts };
  }
  return result;
}
