/** Shared by the multi-rank trainer tests: a free port, a tiny-model config, and N ranks of train-rank.ts via the launcher. */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { launch, type LaunchResult } from '../../src/dist/launcher.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { FIXTURES } from '../model/fixtures.js';
import { tinyModelDir } from '../rl/helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
export const TSX = import.meta.resolve('tsx');
export const TRAIN_RANK = join(here, 'train-rank.ts');

/** A TCP port that was free a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RankReport {
  rank: number;
  world: number;
  stateBytes: number;
  steps: { step: number; loss: number | null; gradNorm: number | null; reward: number }[];
  rollouts: { step: number; texts: string[]; advantages: number[] }[];
}

/** Runs `world` ranks of train-rank.ts on this machine; resolves with the launch result and the combined output. */
export async function runRanks(world: number, spec: { config: Record<string, unknown> & { train: { outDir: string } }; resume?: boolean }, opts: { graceMs?: number; onOutput?: (text: string) => void } = {}): Promise<LaunchResult & { output: string }> {
  mkdirSync(spec.config.train.outDir, { recursive: true });
  const specFile = join(spec.config.train.outDir, `spec-${world}-${Date.now()}.json`);
  writeFileSync(specFile, JSON.stringify(spec));
  const out = new PassThrough();
  let output = '';
  out.on('data', (d: Buffer) => {
    output += d.toString();
    opts.onOutput?.(output);
  });
  const res = await launch({
    nprocPerNode: world, masterPort: await freePort(), argv: [specFile], graceMs: opts.graceMs ?? 3000, forwardSignals: false,
    entry: { command: process.execPath, args: ['--import', TSX, TRAIN_RANK] }, stdout: out, stderr: out,
    env: { ...process.env, VG_NUM_THREADS: '1' },
  });
  return { ...res, output };
}

export function rankReport(outDir: string, rank: number): RankReport {
  return JSON.parse(readFileSync(join(outDir, `rank-${rank}.json`), 'utf8')) as RankReport;
}

/** All tensors of a checkpoint's model.safetensors, by name. */
export function checkpointTensors(dir: string): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [k, t] of readSafetensors(join(dir, 'model.safetensors'))) m.set(k, t.data as Float32Array);
  return m;
}

/** Largest |a − b| over all tensors, and the largest |a| (to put it in scale). */
export function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { diff: number; scale: number; where: string } {
  let diff = 0, scale = 0, where = '';
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y || y.length !== x.length) return { diff: Infinity, scale: 0, where: k };
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(x[i]! - y[i]!);
      if (d > diff || Number.isNaN(d)) { diff = Number.isNaN(d) ? Infinity : d; where = `${k}[${i}]`; }
      scale = Math.max(scale, Math.abs(x[i]!));
    }
  }
  return { diff, scale, where };
}

/**
 * A run folder for the CLI: the tiny model, two images, a VLM-R1 JSONL file with image and text-only rows and a
 * run.yaml (accuracy + format rewards). Returns the folder.
 */
export function cliWorkspace(root: string, opts: { steps: number; promptsPerStep: number; saveEvery: number; validationSplit?: number; evalEvery?: number }): string {
  const d = mkdtempSync(join(root, 'ws-'));
  const model = tinyModelDir();
  mkdirSync(join(d, 'images'));
  copyFileSync(join(FIXTURES, 'tiny-a', 'image1.png'), join(d, 'images', 'a.png'));
  copyFileSync(join(FIXTURES, 'tiny-a', 'image2.png'), join(d, 'images', 'b.png'));
  const rows = [
    { id: 'r1', image: 'a.png', conversations: [{ from: 'human', value: '<image>How many shapes?' }, { from: 'gpt', value: '3' }] },
    { id: 'r2', image: 'b.png', conversations: [{ from: 'human', value: '<image>Count them.' }, { from: 'gpt', value: '2' }] },
    { id: 'r3', conversations: [{ from: 'human', value: 'What is 1 + 1?' }, { from: 'gpt', value: '2' }] },
    { id: 'r4', conversations: [{ from: 'human', value: 'What is 2 + 2?' }, { from: 'gpt', value: '4' }] },
  ];
  writeFileSync(join(d, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(d, 'run.yaml'), [
    `model:\n  path: ${model}`,
    `data:\n  train:\n    - path: train.jsonl\n      imageFolder: images\n  maxPixels: 12544\n  promptTemplate: r1\n  validationSplit: ${opts.validationSplit ?? 0}`,
    'rewards:\n  - name: accuracy\n  - name: format\n    weight: 0.5',
    `rollout:\n  groupSize: 4\n  promptsPerStep: ${opts.promptsPerStep}\n  maxNewTokens: 8`,
    'optim:\n  lr: 0.001\n  microBatchSize: 4',
    `train:\n  steps: ${opts.steps}\n  outDir: run\n  saveEvery: ${opts.saveEvery}\n  keepLast: 2\n  evalEvery: ${opts.evalEvery ?? 0}`,
  ].join('\n') + '\n');
  return d;
}

export const CLI = join(here, '..', '..', 'src', 'cli', 'main.ts');
