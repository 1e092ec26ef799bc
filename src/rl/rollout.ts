/**
 * Rollouts and their scores: G completions per prompt from one batched, KV-cached generate call (the G samples of
 * a prompt share its prefill), decoded and scored by the reward functions; the DAPO soft overlong penalty is added
 * to the total. Sampling streams are keyed by (seed, step, prompt, sample), so a step's rollouts do not depend on
 * thread count or on what else is in the batch.
 */
import type { TrainConfig } from '../config/schema.js';
import type { VlmModel } from '../model/vlm-model.js';
import type { RewardScorer } from '../rewards/scorer.js';
import type { RewardSample } from '../rewards/types.js';
import { overlongPenalty } from './advantages.js';
import type { PreparedPrompt, Rollout } from './types.js';

/** Sequence-id base for step `step`, round `round` (dynamic-sampling refills): disjoint ranges per (step, round). */
export function sequenceIdBase(step: number, round: number, cfg: TrainConfig): number {
  const perRound = cfg.rollout.promptsPerStep * cfg.rollout.groupSize;
  const rounds = cfg.rollout.dynamicSamplingMaxRetries + 1;
  return ((step * rounds + round) * perRound) % 0xffffffff;
}

export async function generateRollouts(
  model: VlmModel,
  prompts: readonly PreparedPrompt[],
  cfg: TrainConfig,
  step: number,
  round: number,
): Promise<Rollout[]> {
  const G = cfg.rollout.groupSize;
  const gens = await model.generate(prompts.map((p) => p.input), {
    maxNewTokens: cfg.rollout.maxNewTokens,
    temperature: cfg.rollout.temperature,
    topP: cfg.rollout.topP,
    topK: cfg.rollout.topK,
    minP: cfg.rollout.minP,
    numSamples: G,
    seed: cfg.train.seed,
    sequenceIdBase: sequenceIdBase(step, round, cfg),
  });
  return gens.map((g, i) => ({
    prompt: prompts[g.prompt]!,
    group: g.prompt,
    sample: i % G,
    tokens: g.tokens,
    sampleLogprobs: g.logprobs,
    text: g.text,
    truncated: g.finishReason === 'length',
    rewards: {},
    reward: 0,
    advantage: 0,
  }));
}

/** Scores every rollout in place; returns the number of reward-function failures by label. */
export async function scoreRollouts(rollouts: Rollout[], scorer: RewardScorer, cfg: TrainConfig): Promise<Record<string, number>> {
  const samples: RewardSample[] = rollouts.map((r) => ({
    completion: r.text,
    groundTruth: r.prompt.groundTruth,
    row: r.prompt.row,
    images: r.prompt.images.map((x) => x.original),
    inputImages: r.prompt.images.map((x) => x.input),
    completionTokens: r.tokens.length,
  }));
  const scores = await scorer.score(samples);
  rollouts.forEach((r, i) => {
    for (const name of scorer.names) r.rewards[name] = scores.perReward[name]![i]!;
    const penalty = overlongPenalty(r.tokens.length, cfg.rollout.maxNewTokens, cfg.rollout.overlongBuffer, cfg.rollout.overlongPenalty);
    if (cfg.rollout.overlongBuffer > 0) r.rewards.overlong = penalty;
    r.reward = scores.total[i]! + penalty;
  });
  return scores.errors;
}
