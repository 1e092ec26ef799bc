/**
 * Rollouts and their scores: G completions per prompt from one batched, KV-cached generate call (the G samples of
 * a prompt share its prefill), decoded and scored by the reward functions; the DAPO soft overlong penalty is added
 * to the total. Sampling streams are keyed by (seed, step, prompt, sample), so a step's rollouts do not depend on
 * thread count or on what else is in the batch. In data-parallel runs each rank generates a contiguous share of the
 * step's prompts and keys its streams with the GLOBAL prompt index (`groupOffset`), so N ranks generate exactly the
 * completions one process would; packRollouts / unpackRollouts carry them between ranks.
 */
import { fromJson, toJson } from '../dist/gather.js';
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
  /** Global index of prompts[0] in the step's prompt list (data-parallel shards); 0 for one process. */
  groupOffset = 0,
): Promise<Rollout[]> {
  const G = cfg.rollout.groupSize;
  if (prompts.length === 0) return [];
  const gens = await model.generate(prompts.map((p) => p.input), {
    maxNewTokens: cfg.rollout.maxNewTokens,
    temperature: cfg.rollout.temperature,
    topP: cfg.rollout.topP,
    topK: cfg.rollout.topK,
    minP: cfg.rollout.minP,
    numSamples: G,
    seed: cfg.train.seed,
    sequenceIdBase: (sequenceIdBase(step, round, cfg) + groupOffset * G) % 0xffffffff,
  });
  return gens.map((g, i) => ({
    prompt: prompts[g.prompt]!,
    group: groupOffset + g.prompt,
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

interface PackedMeta {
  extra: unknown;
  items: { group: number; sample: number; text: string; truncated: boolean; rewards: Record<string, number>; reward: number; n: number; m: number }[];
}

/**
 * Serialises scored rollouts (everything but the prompt, which every rank already has) plus any JSON `extra`:
 * [u32 JSON length][JSON][pad to 4][int32 tokens][float32 sample log-probs]. Numbers round-trip exactly.
 */
export function packRollouts(rollouts: readonly Rollout[], extra: unknown = null): Uint8Array {
  const meta: PackedMeta = {
    extra,
    items: rollouts.map((r) => ({ group: r.group, sample: r.sample, text: r.text, truncated: r.truncated, rewards: r.rewards, reward: r.reward, n: r.tokens.length, m: r.sampleLogprobs.length })),
  };
  const json = Buffer.from(toJson(meta), 'utf8');
  const head = 4 * Math.ceil((4 + json.length) / 4);
  const nTok = meta.items.reduce((a, x) => a + x.n, 0), nLp = meta.items.reduce((a, x) => a + x.m, 0);
  const out = new Uint8Array(head + 4 * (nTok + nLp));
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  const tokens = new Int32Array(out.buffer, head, nTok), lps = new Float32Array(out.buffer, head + 4 * nTok, nLp);
  let t = 0, l = 0;
  for (const r of rollouts) {
    tokens.set(r.tokens, t);
    t += r.tokens.length;
    lps.set(r.sampleLogprobs, l);
    l += r.sampleLogprobs.length;
  }
  return out;
}

/** Inverse of packRollouts; `prompts` is the step's global prompt list (rollout.group indexes it). */
export function unpackRollouts(bytes: Uint8Array, prompts: readonly PreparedPrompt[]): { rollouts: Rollout[]; extra: unknown } {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const jsonLen = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
  const meta = fromJson<PackedMeta>(Buffer.from(b.buffer, b.byteOffset + 4, jsonLen).toString('utf8'));
  const head = 4 * Math.ceil((4 + jsonLen) / 4);
  const nTok = meta.items.reduce((a, x) => a + x.n, 0), nLp = meta.items.reduce((a, x) => a + x.m, 0);
  if (b.byteLength !== head + 4 * (nTok + nLp)) throw new RangeError(`packed rollouts hold ${b.byteLength} bytes, their header describes ${head + 4 * (nTok + nLp)}`);
  const tokens = new Int32Array(b.buffer, b.byteOffset + head, nTok), lps = new Float32Array(b.buffer, b.byteOffset + head + 4 * nTok, nLp);
  let t = 0, l = 0;
  const rollouts = meta.items.map((x): Rollout => {
    const prompt = prompts[x.group];
    if (!prompt) throw new RangeError(`packed rollout of group ${x.group}, but the step has ${prompts.length} prompts`);
    const r: Rollout = {
      prompt, group: x.group, sample: x.sample, tokens: tokens.slice(t, t + x.n), sampleLogprobs: lps.slice(l, l + x.m), text: x.text,
      truncated: x.truncated, rewards: x.rewards, reward: x.reward, advantage: 0,
    };
    t += x.n;
    l += x.m;
    return r;
  });
  return { rollouts, extra: meta.extra };
}
