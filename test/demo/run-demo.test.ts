// The demo pipeline at toy size (seconds): data, tiny model, SFT warm start, evaluation, GRPO, evaluation,
// results.json and the report — the same code path as `npm run demo`.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { runDemo } from '../../src/demo/run-demo.js';
import { readSafetensors } from '../../src/model/safetensors.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

describe('demo pipeline (toy size)', () => {
  it('runs every phase and writes results.json and the report', async () => {
    const out = mkdtempSync(join(tmpdir(), 'vg-demo-'));
    dirs.push(out);
    const phases = new Set<string>();
    const res = await runDemo({ outDir: out, seed: 3, quick: true, onPhase: (p) => phases.add(p.replace(/ \(.*\)$/, '')) });
    for (const p of ['warm start', 'evaluate start', 'GRPO', 'evaluate after']) expect([...phases].some((x) => x.startsWith(p)), p).toBe(true);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.seed).toBe(3);
    expect(results.seconds).toBeGreaterThan(0);
    for (const k of ['start', 'grpo']) {
      for (const split of ['inDistribution', 'outOfDistribution']) {
        expect(results[k][split]).toBeGreaterThanOrEqual(0);
        expect(results[k][split]).toBeLessThanOrEqual(1);
      }
    }
    expect(existsSync(res.report)).toBe(true);
    expect(existsSync(join(out, 'grpo', 'metrics.jsonl'))).toBe(true);
    expect(existsSync(join(out, 'data', 'test_ood.jsonl'))).toBe(true);

    // The vision tower stays at its initialisation through SFT and GRPO; the decoder is trained.
    const init = readSafetensors(join(out, 'model-init', 'model.safetensors'));
    const latest = readFileSync(join(res.runDir, 'checkpoints', 'latest'), 'utf8').trim();
    const final = readSafetensors(join(res.runDir, 'checkpoints', latest, 'model.safetensors'));
    let visionTensors = 0, textChanged = 0;
    for (const [name, t] of init) {
      const a = t.data as Float32Array, b = final.get(name)!.data as Float32Array;
      const same = a.length === b.length && a.every((x, i) => x === b[i]);
      if (name.startsWith('visual.')) { visionTensors++; expect(same, name).toBe(true); } else if (!same) textChanged++;
    }
    expect(visionTensors).toBeGreaterThan(10);
    expect(textChanged).toBeGreaterThan(10);
  }, 120_000);
});
