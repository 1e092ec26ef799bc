import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';

const layout = [
  { name: 'a.weight', shape: [2, 3], offset: 0, numel: 6 },
  { name: 'b.bias', shape: [3], offset: 16, numel: 3 },
];

function content(step: number, exportDtype: 'fp32' | 'bf16', modelDir: string) {
  const params = new Float32Array(32).map(() => Math.random() - 0.5);
  return {
    step, modelDir, layout, params, exportDtype,
    optimizer: { expAvg: params.map((x) => x * 0.1), expAvgSq: params.map((x) => x * x), step: step * 2 },
    state: { optimizerStep: step * 2, dataCursor: { epoch: 1, index: step } },
  };
}

describe('checkpoints', () => {
  it('writes an HF-style folder with side files, keeps the last K, and reads back exactly', async () => {
    const run = mkdtempSync(join(tmpdir(), 'vg-ck-'));
    const model = mkdtempSync(join(tmpdir(), 'vg-ck-model-'));
    writeFileSync(join(model, 'config.json'), '{"model_type":"qwen2_5_vl"}');
    writeFileSync(join(model, 'tokenizer.json'), '{}');
    const saved = [1, 2, 3].map((s) => content(s, 'fp32', model));
    for (const c of saved) await saveCheckpoint(run, { ...c, extraTensors: { lora: c.params.subarray(0, 4) } }, 2);
    expect(listCheckpoints(run).map((c) => c.step)).toEqual([2, 3]);
    const last = latestCheckpoint(run)!;
    expect(last.step).toBe(3);
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors', 'trainer/state.json', 'trainer/optimizer.safetensors']) {
      expect(existsSync(join(last.dir, f)), f).toBe(true);
    }
    const header = readSafetensorsHeader(join(last.dir, 'model.safetensors'));
    expect([...header.byName.keys()].sort()).toEqual(['a.weight', 'b.bias']);
    const ck = loadCheckpoint(last.dir, layout, 32);
    for (const e of layout) expect(ck.params.subarray(e.offset, e.offset + e.numel)).toEqual(saved[2]!.params.subarray(e.offset, e.offset + e.numel));
    expect(ck.optimizer.expAvg).toEqual(saved[2]!.optimizer.expAvg);
    expect(ck.state.dataCursor).toEqual({ epoch: 1, index: 3 });
    expect(ck.extraTensors.lora).toEqual(saved[2]!.params.subarray(0, 4));
  });

  it('a bf16 export keeps fp32 master weights for an exact resume', async () => {
    const run = mkdtempSync(join(tmpdir(), 'vg-ck-'));
    const c = content(7, 'bf16', run);
    const dir = await saveCheckpoint(run, c, 3);
    expect(readSafetensorsHeader(join(dir, 'model.safetensors')).byName.get('a.weight')!.dtype).toBe('BF16');
    expect(loadCheckpoint(dir, layout, 32).params).toEqual(c.params);
  });

  it('a crash mid-write never becomes the latest checkpoint', async () => {
    const run = mkdtempSync(join(tmpdir(), 'vg-ck-'));
    await saveCheckpoint(run, content(4, 'fp32', run), 3);
    // a half-written checkpoint: temp folder left behind, and a step folder without its trainer state
    mkdirSync(join(run, 'checkpoints', '.tmp-step-000005-123', 'trainer'), { recursive: true });
    mkdirSync(join(run, 'checkpoints', 'step-000006'), { recursive: true });
    writeFileSync(join(run, 'checkpoints', 'step-000006', 'model.safetensors'), 'garbage');
    expect(latestCheckpoint(run)!.step).toBe(4);
    expect(readFileSync(join(run, 'checkpoints', 'latest'), 'utf8')).toBe('step-000004');
  });
});
