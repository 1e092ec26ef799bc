/** Shared setup for the trainer tests: a tiny model folder with a tokenizer, prompts, and reward modules. */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { PreparedPrompt, PromptSource } from '../../src/rl/types.js';
import { tinyTokenizer, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { FIXTURES, ints, tensor } from '../model/fixtures.js';

export function tinyModelDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vg-rl-model-'));
  for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) copyFileSync(join(FIXTURES, 'tiny-a', f), join(d, f));
  writeTinyTokenizer(d, tinyTokenizer());
  return d;
}

/** Two kinds of prompt: one with image1 (12 image tokens), one text only. groundTruth distinguishes them. */
export function fixturePrompts(): PreparedPrompt[] {
  const withImage = Int32Array.from(ints(tensor('tiny-a', 'generate.input_ids')));
  const textIds = Int32Array.from(ints(tensor('tiny-a', 'text_only.input_ids')).slice(0, 25));
  const image: PreparedPrompt = {
    id: 'img', text: '(image prompt)', groundTruth: 0.25, row: { kind: 'image' }, imagePaths: [join(FIXTURES, 'tiny-a', 'image1.png')],
    input: { inputIds: withImage, pixelValues: tensor('tiny-a', 'single.pixel_values').data as Float32Array, imageGridThw: [[1, 6, 8]] },
    images: [{ original: { width: 112, height: 84 }, input: { width: 112, height: 84 } }],
  };
  const text: PreparedPrompt = {
    id: 'txt', text: '(text prompt)', groundTruth: 0.75, row: { kind: 'text' }, imagePaths: [],
    input: { inputIds: textIds }, images: [],
  };
  return [image, text];
}

/** Cycles through `prompts` in order; the cursor is the index of the next prompt. */
export class ListSource implements PromptSource {
  #i = 0;
  constructor(readonly prompts: PreparedPrompt[]) {}
  async next(n: number): Promise<PreparedPrompt[]> {
    const out: PreparedPrompt[] = [];
    for (let k = 0; k < n; k++) out.push(this.prompts[this.#i++ % this.prompts.length]!);
    return out;
  }
  cursor(): unknown { return this.#i; }
  restore(c: unknown): void { this.#i = Number(c); }
}

/** Writes a reward module into `dir` and returns its path. */
export function rewardModule(dir: string, name: string, body: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, body);
  return file;
}

/** Reward: share of completion characters that are ASCII letters (per maxLen characters, capped at 1). */
export const LETTERS_REWARD = `export default function letters(s) {
  const n = (s.completion.match(/[A-Za-z]/g) ?? []).length;
  return Math.min(1, n / 6);
}
`;

/** Reward: the prompt's ground truth plus 0.01 per letter in the completion (so groups have spread). */
export const GROUND_TRUTH_REWARD = `export default function gt(s) {
  return Number(s.groundTruth) + 0.01 * (s.completion.match(/[A-Za-z]/g) ?? []).length;
}
`;
