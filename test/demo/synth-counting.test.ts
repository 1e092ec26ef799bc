// The counting data set on disk: byte-for-byte determinism, the held-out colour×shape pairs, answers equal to
// what is drawn (from the scene files and from pixel colours), and the real data path: the JSONL loads with
// src/data using the task tokenizer and processor files of the tiny model, and the counting reward scores it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadPromptDatasets } from '../../src/data/dataset.js';
import type { PromptProcessor } from '../../src/data/prepare.js';
import { CONDITION_B, comboCondition, comboName, countedNoun, countMatches, objectContains, questionText } from '../../src/demo/scenes.js';
import { writeCountingDataset, type CountingDatasetResult, type SceneRecord } from '../../src/demo/synth-counting.js';
import { writeTinyModel } from '../../src/demo/tiny-model.js';
import { readModelConfig } from '../../src/model/config.js';
import { ChatTemplate } from '../../src/processor/chat-template.js';
import { loadPreprocessorConfig } from '../../src/processor/preprocessor-config.js';
import { loadTokenizer } from '../../src/processor/tokenizer.js';
import { rewardFunctions } from '../../src/rewards/builtins.js';
import { toTrainerPrompt } from '../../src/rl/dataset-source.js';
import { tempDir } from '../data/helpers.js';

const { dir: root, cleanup } = tempDir('vg-demo-data-');
afterAll(cleanup);

const SIZES = { train: 80, testId: 30, testOod: 60, testOodCounts: 20 };
let a: CountingDatasetResult;
let b: CountingDatasetResult;
let c: CountingDatasetResult;
let processor: PromptProcessor;

function readScenes(file: string): SceneRecord[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SceneRecord);
}
function readRows(file: string): Record<string, any>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(path.join(dir, f)).isFile()).sort();
}

beforeAll(async () => {
  a = await writeCountingDataset({ outDir: path.join(root, 'a'), seed: 3, ...SIZES });
  b = await writeCountingDataset({ outDir: path.join(root, 'b'), seed: 3, ...SIZES });
  c = await writeCountingDataset({ outDir: path.join(root, 'c'), seed: 4, ...SIZES });
  const model = path.join(root, 'model');
  await writeTinyModel({ outDir: model, preset: 'test' });
  const config = readModelConfig(model);
  processor = {
    tokenizer: await loadTokenizer(model),
    chatTemplate: await ChatTemplate.load(model),
    preprocessor: await loadPreprocessorConfig(model),
    config: { imageTokenId: config.imageTokenId, spatialMergeSize: config.spatialMergeSize },
  };
});

describe('determinism', () => {
  it('the same seed and sizes give identical files, byte for byte', () => {
    const files = listFiles(a.outDir);
    expect(files).toEqual(listFiles(b.outDir));
    expect(files.filter((f) => f.endsWith('.png'))).toHaveLength(SIZES.train + SIZES.testId + SIZES.testOod + SIZES.testOodCounts);
    for (const f of files) expect(readFileSync(path.join(b.outDir, f)).equals(readFileSync(path.join(a.outDir, f))), f).toBe(true);
  });

  it('a different seed gives different rows and images', () => {
    expect(readFileSync(c.splits.train!.jsonl, 'utf8')).not.toBe(readFileSync(a.splits.train!.jsonl, 'utf8'));
    const pngs = listFiles(a.outDir).filter((f) => f.endsWith('.png'));
    let same = 0;
    for (const f of pngs) if (readFileSync(path.join(a.outDir, f)).equals(readFileSync(path.join(c.outDir, f)))) same++;
    expect(same).toBeLessThan(pngs.length * 0.05); // at most a few coincidences (e.g. two empty scenes)
  });

  it('a split does not depend on the size of another split', async () => {
    const d = await writeCountingDataset({ outDir: path.join(root, 'd'), seed: 3, train: 40, testId: SIZES.testId, testOod: 0 });
    expect(readFileSync(d.splits.test_id!.jsonl, 'utf8')).toBe(readFileSync(a.splits.test_id!.jsonl, 'utf8'));
    const first40 = readFileSync(a.splits.train!.jsonl, 'utf8').split('\n').slice(0, 40).join('\n') + '\n';
    expect(readFileSync(d.splits.train!.jsonl, 'utf8')).toBe(first40);
    expect(readFileSync(d.splits.test_ood!.jsonl, 'utf8')).toBe('');
  });
});

describe('splits and answers', () => {
  it('held-out pairs (condition B) never appear in train or test_id; test_ood uses only them, all six', () => {
    for (const split of ['train', 'test_id', 'test_ood_counts'] as const) {
      for (const s of readScenes(a.splits[split]!.scenes)) for (const o of s.objects) expect(comboCondition(o.color, o.shape)).toBe('A');
    }
    const ood = readScenes(a.splits.test_ood!.scenes);
    const seen = new Set<string>();
    for (const s of ood) {
      for (const o of s.objects) {
        expect(comboCondition(o.color, o.shape)).toBe('B');
        seen.add(comboName(o));
      }
    }
    expect([...seen].sort()).toEqual(CONDITION_B.map(comboName).sort());
    // the OOD questions are about B objects: a colour-shape question names a B pair
    for (const s of ood) if (s.question.kind === 'color_shape') expect(comboCondition(s.question.color!, s.question.shape!)).toBe('B');
    const meta = JSON.parse(readFileSync(a.meta, 'utf8'));
    expect(meta.conditions.B).toEqual(CONDITION_B.map(comboName));
    expect(meta.splits.test_ood.condition).toBe('B');
  });

  it('answers equal the counts of the drawn objects; rows carry the question, the answer and the counting method', () => {
    for (const split of ['train', 'test_id', 'test_ood', 'test_ood_counts'] as const) {
      const scenes = readScenes(a.splits[split]!.scenes);
      const rows = readRows(a.splits[split]!.jsonl);
      expect(rows).toHaveLength(scenes.length);
      scenes.forEach((s, i) => {
        const row = rows[i]!;
        const n = countMatches(s.question, s.objects);
        expect(s.answer).toBe(n);
        expect(row.id).toBe(s.id);
        expect(row.image).toBe(`images/${s.id}.png`);
        expect(row.conversations).toEqual([
          { from: 'human', value: `${questionText(s.question)}\n<image>` },
          { from: 'gpt', value: String(n) },
        ]);
        expect(row.accu_reward_method).toBe('counting');
        expect(row.question_type).toBe(s.question.kind);
        expect(row.target).toBe(countedNoun(s.question, 2));
        if (split === 'test_ood_counts') expect(n).toBeGreaterThanOrEqual(6);
        else expect(n).toBeLessThanOrEqual(5);
      });
    }
    expect(a.stats.train!.rows).toBe(SIZES.train);
    expect(Object.values(a.stats.train!.answers).reduce((x, y) => x + y, 0)).toBe(SIZES.train);
  });

  it('pixels: every object centre shows its colour, empty cells show a light background', async () => {
    let checked = 0;
    for (const split of ['train', 'test_ood'] as const) {
      for (const s of readScenes(a.splits[split]!.scenes).slice(0, 30)) {
        const { data, info } = await sharp(path.join(a.outDir, s.image)).raw().toBuffer({ resolveWithObject: true });
        expect([info.width, info.height, info.channels]).toEqual([112, 112, 3]);
        const px = (x: number, y: number) => Array.from(data.subarray((y * 112 + x) * 3, (y * 112 + x) * 3 + 3));
        for (const o of s.objects) {
          const got = px(Math.floor(o.cx), Math.floor(o.cy));
          for (let ch = 0; ch < 3; ch++) expect(Math.abs(got[ch]! - o.rgb[ch]!), `${s.id} ${comboName(o)}`).toBeLessThanOrEqual(2);
          checked++;
        }
        // the centre of every cell no object touches is background: light in all channels
        for (let row = 0; row < 4; row++) {
          for (let col = 0; col < 4; col++) {
            const x = col * 28 + 14;
            const y = row * 28 + 14;
            if (s.objects.some((o) => objectContains(o, x + 0.5, y + 0.5) || Math.hypot(o.cx - x, o.cy - y) < 16)) continue;
            expect(Math.min(...px(x, y))).toBeGreaterThan(210);
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });
});

describe('the real data path', () => {
  it('loads with loadPromptDatasets and the task tokenizer: images are not resized, prompts are short', async () => {
    const { train, validation } = await loadPromptDatasets(
      { sources: [a.splits.train!.jsonl], promptTemplate: 'r1', shuffle: false },
      { processor, log: () => {} },
    );
    expect(validation).toBeNull();
    expect(train.size).toBe(SIZES.train);
    const lengths: number[] = [];
    for await (const batch of train.batches(16)) {
      for (const p of batch) {
        expect(p.input.imageGridThw).toEqual([[1, 8, 8]]);
        expect(p.images[0]!.input).toEqual({ width: 112, height: 112 });
        const pads = Array.from(p.input.inputIds).filter((id) => id === processor.config.imageTokenId).length;
        expect(pads).toBe(16); // 8·8 patches / merge² = one token per 28-pixel cell
        lengths.push(p.promptLength);
      }
    }
    expect(lengths).toHaveLength(SIZES.train);
    expect(train.metrics()['data/skipped_total']).toBe(0);
    lengths.sort((x, y) => x - y);
    const median = lengths[lengths.length >> 1]!;
    console.log(`[demo data] R1-template prompt length in tokens (16 image tokens included): min ${lengths[0]}, median ${median}, max ${lengths[lengths.length - 1]}`);
    expect(lengths[lengths.length - 1]!).toBeLessThan(80);
  });

  it('the accuracy (per-row counting method) and counting rewards score the answers: 1 for the count, 0 otherwise', async () => {
    const { train } = await loadPromptDatasets({ sources: [a.splits.test_ood!.jsonl], promptTemplate: 'r1', shuffle: false }, { processor, log: () => {} });
    const prompts = (await train.next(12)).map(toTrainerPrompt);
    for (const p of prompts) {
      expect(p.row.reward_method).toBe('counting');
      const n = Number(p.groundTruth);
      const sample = (completion: string) => ({ completion, groundTruth: p.groundTruth, row: p.row });
      expect(rewardFunctions.accuracy(sample(`<think>I count them.</think><answer>${n}</answer>`))).toBe(1);
      expect(rewardFunctions.accuracy(sample(`<think>I count them.</think><answer>${n + 1}</answer>`))).toBe(0);
      expect(rewardFunctions.counting(sample(`<think>..</think><answer>${n}</answer>`))).toBe(1);
      expect(rewardFunctions.counting(sample(`<think>..</think><answer>${n + 1}</answer>`))).toBe(0);
    }
    const three = { completion: '<think>..</think><answer>3</answer>', groundTruth: '3', row: { reward_method: 'counting' } };
    expect(rewardFunctions.accuracy(three)).toBe(1);
    expect(rewardFunctions.accuracy({ ...three, completion: '<think>..</think><answer>4</answer>' })).toBe(0);
  });
});

describe('options', () => {
  it('rejects bad sizes and counts', async () => {
    await expect(writeCountingDataset({ outDir: path.join(root, 'x'), imageSize: 100 })).rejects.toThrow(/multiple of 28/);
    await expect(writeCountingDataset({ outDir: path.join(root, 'x'), train: -1 })).rejects.toThrow(/train/);
    await expect(writeCountingDataset({ outDir: path.join(root, 'x'), train: 1.5 })).rejects.toThrow(/train/);
    await expect(writeCountingDataset({ outDir: '' })).rejects.toThrow(TypeError);
  });

  it('an 84-pixel image is a 3×3 grid', async () => {
    const r = await writeCountingDataset({ outDir: path.join(root, 's84'), imageSize: 84, train: 10, testId: 0, testOod: 0 });
    for (const s of readScenes(r.splits.train!.scenes)) {
      expect(s.grid).toBe(3);
      const meta = await sharp(path.join(r.outDir, s.image)).metadata();
      expect([meta.width, meta.height]).toEqual([84, 84]);
    }
  });
});
