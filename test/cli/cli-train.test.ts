// The command line end to end on a tiny model and a VLM-R1 JSONL dataset with images: train (with the
// run folder, checkpoints and report it writes), resume, eval, generate, report, and bad input.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { packageRoot } from '../../src/native/binding.js';
import { FIXTURES } from '../model/fixtures.js';
import { tinyModelDir } from '../rl/helpers.js';

const cli = join(packageRoot, 'src', 'cli', 'main.ts');
// tsx is resolved from the package, not from the temporary working directory.
const tsx = import.meta.resolve('tsx');
function run(args: string[], cwd: string) {
  return spawnSync(process.execPath, ['--import', tsx, cli, ...args], { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, FORCE_COLOR: '0' } });
}

function workspace(): string {
  const d = mkdtempSync(join(tmpdir(), 'vg-cli-'));
  const model = tinyModelDir();
  mkdirSync(join(d, 'images'));
  copyFileSync(join(FIXTURES, 'tiny-a', 'image1.png'), join(d, 'images', 'a.png'));
  copyFileSync(join(FIXTURES, 'tiny-a', 'image2.png'), join(d, 'images', 'b.png'));
  const rows = [
    { id: 'r1', kind: 'shapes', image: 'a.png', conversations: [{ from: 'human', value: '<image>How many shapes?' }, { from: 'gpt', value: '3' }] },
    { id: 'r2', image: 'b.png', conversations: [{ from: 'human', value: '<image>Count them.' }, { from: 'gpt', value: '2' }] },
    { id: 'r3', kind: 'math', conversations: [{ from: 'human', value: 'What is 1 + 1?' }, { from: 'gpt', value: '2' }] },
    { id: 'r4', image: ['a.png', 'b.png'], conversations: [{ from: 'human', value: '<image> and <image>: how many?' }, { from: 'gpt', value: '5' }] },
  ];
  // Two broken rows: a malformed line and a missing image; they are skipped, warned about and counted.
  const lines = rows.map((r) => JSON.stringify(r));
  lines.splice(2, 0, '{"id": "bad", "conversations": [', JSON.stringify({ id: 'gone', image: 'missing.png', conversations: [{ from: 'human', value: '<image>?' }, { from: 'gpt', value: '1' }] }));
  writeFileSync(join(d, 'train.jsonl'), lines.join('\n') + '\n');
  writeFileSync(join(d, 'run.yaml'), [
    `model:\n  path: ${model}`,
    'data:\n  train:\n    - path: train.jsonl\n      imageFolder: images\n  maxPixels: 12544\n  promptTemplate: r1\n  validationSplit: 0.25',
    'rewards:\n  - name: accuracy\n  - name: format\n    weight: 0.5',
    'rollout:\n  groupSize: 4\n  promptsPerStep: 2\n  maxNewTokens: 8',
    'optim:\n  lr: 0.001\n  microBatchSize: 4',
    'train:\n  steps: 2\n  outDir: run\n  saveEvery: 1\n  keepLast: 2\n  evalEvery: 2',
  ].join('\n') + '\n');
  return d;
}

describe('vlm-grpo CLI', () => {
  it('train writes metrics, rollouts, checkpoints and the report; --resume continues; eval, generate and report work', () => {
    const d = workspace();
    const r = run(['train', '--config', 'run.yaml'], d);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/done after 2 steps/);
    const out = join(d, 'run');
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2]);
    expect(Object.keys(metrics[0].rewards).sort()).toEqual(['accuracy', 'format']);
    expect(metrics[0].extra['eval/accuracy']).toBeUndefined();
    expect(metrics[0].extra['data/skipped_total']).toBe(2);
    expect(r.stderr).toMatch(/train\.jsonl:3/);        // the malformed line, named by file and line
    expect(r.stderr).toMatch(/missing\.png/);
    expect(typeof metrics[1].extra['eval/accuracy']).toBe('number');  // evalEvery: 2 on the held-out row
    expect(readdirSync(join(out, 'rollouts'))).toHaveLength(2);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    expect(readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('step-')).sort()).toEqual(['step-000001', 'step-000002']);

    const resumed = run(['train', '--config', 'run.yaml', '--set', 'train.steps=3', '--resume'], d);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr + resumed.stdout).toMatch(/resumed from .*step-000002/);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2, 3]);

    const ck = join(out, 'checkpoints', 'step-000003');
    const ev = run(['eval', '--model', ck, '--data', 'train.jsonl', '--image-folder', 'images', '--max-new-tokens', '4', '--json'], d);
    expect(ev.status, ev.stderr).toBe(0);
    const res = JSON.parse(ev.stdout.trim().split('\n').pop()!);
    expect(res.prompts).toBe(4);
    expect(res.accuracy).toBeGreaterThanOrEqual(0);
    const grouped = run(['eval', '--model', ck, '--data', 'train.jsonl', '--image-folder', 'images', '--max-new-tokens', '4', '--group-by', 'kind', '--json'], d);
    const groups = JSON.parse(grouped.stdout.trim().split('\n').pop()!).groups;
    expect(Object.keys(groups).sort()).toEqual(['(none)', 'math', 'shapes']);
    expect(Object.values(groups as Record<string, { prompts: number }>).reduce((a, g) => a + g.prompts, 0)).toBe(4);
    const pk = run(['eval', '--model', ck, '--data', 'train.jsonl', '--image-folder', 'images', '--max-new-tokens', '4', '--samples', '3', '--json'], d);
    expect(JSON.parse(pk.stdout.trim().split('\n').pop()!).samples).toBe(3);

    const gen = run(['generate', '--model', ck, '--prompt', 'hello', '--image', 'images/a.png', '--max-new-tokens', '5', '--samples', '2', '--temperature', '1', '--json'], d);
    expect(gen.status, gen.stderr).toBe(0);
    expect(gen.stdout.trim().split('\n')).toHaveLength(2);

    writeFileSync(join(d, 'sft.yaml'), readFileSync(join(d, 'run.yaml'), 'utf8').split('rewards:')[0] + 'sft:\n  batchSize: 2\ntrain:\n  steps: 2\n  outDir: sft-run\n');
    const sft = run(['sft', '--config', 'sft.yaml'], d);
    expect(sft.status, sft.stderr).toBe(0);
    expect(sft.stdout).toMatch(/done after 2 steps; checkpoint .*sft-run\/checkpoints\/step-000002/);

    const rep = run(['report', out], d);
    expect(rep.status, rep.stderr).toBe(0);
    expect(rep.stdout.trim()).toBe(join(out, 'report.html'));
  }, 300_000);

  it('bad input fails before heavy work, naming the problem', () => {
    const d = workspace();
    const typo = run(['train', '--config', 'run.yaml', '--set', 'rollout.groupSise=4'], d);
    expect(typo.status).toBe(1);
    expect(typo.stderr).toMatch(/Did you mean 'rollout\.groupSize'/);
    const missing = run(['train', '--config', 'run.yaml', '--set', 'data.train.0.path=nope.jsonl'], d);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/nope\.jsonl does not exist/);
    const reward = run(['train', '--config', 'run.yaml', '--set', 'rewards=[{name: acuracy}]'], d);
    expect(reward.status).toBe(1);
    expect(reward.stderr).toMatch(/Unknown reward 'acuracy'.*accuracy/s);
    const usage = run(['train'], d);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/--config is required/);
  }, 120_000);
});
