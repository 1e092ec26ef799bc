// `vlm-grpo data synth-counting` and `vlm-grpo data init-model` end to end (spawned like a user runs them), then
// `vlm-grpo eval` of the new model on the new data (the real data path), and the usage errors (one spawned, the
// rest in process through dataCommand).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

import { UsageError } from '../../src/cli/args.js';
import { DATA_USAGE, dataCommand, INIT_MODEL_USAGE, SYNTH_COUNTING_USAGE } from '../../src/cli/data.js';
import { packageRoot } from '../../src/native/binding.js';
import { tempDir } from '../data/helpers.js';

const cli = join(packageRoot, 'src', 'cli', 'main.ts');
const tsx = import.meta.resolve('tsx');
function run(args: string[], cwd: string) {
  return spawnSync(process.execPath, ['--import', tsx, cli, ...args], { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, FORCE_COLOR: '0' } });
}

const { dir: ws, cleanup } = tempDir('vg-demo-cli-');
afterAll(cleanup);

describe('vlm-grpo data', () => {
  it('synth-counting writes the data set, refuses a non-empty folder without --force, and is reproducible', async () => {
    const r = run(['data', 'synth-counting', '--out', 'data', '--train', '30', '--test', '10', '--ood', '12', '--ood-counts', '5', '--seed', '2'], ws);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/train\s+30 rows\s+condition A/);
    expect(r.stdout).toMatch(/test_ood\s+12 rows\s+condition B/);
    const rows = (f: string) => readFileSync(join(ws, 'data', f), 'utf8').trim().split('\n');
    expect(rows('train.jsonl')).toHaveLength(30);
    expect(rows('test_id.jsonl')).toHaveLength(10);
    expect(rows('test_ood.jsonl')).toHaveLength(12);
    expect(rows('test_ood_counts.jsonl')).toHaveLength(5);
    expect(existsSync(join(ws, 'data', 'images', 'test_ood-00011.png'))).toBe(true);
    const before = readFileSync(join(ws, 'data', 'train.jsonl'));

    await expect(dataCommand(['synth-counting', '--out', join(ws, 'data'), '--train', '30'])).rejects.toThrow(/not empty; pass --force/);

    const forced = run(['data', 'synth-counting', '--out', 'data', '--train', '30', '--test', '10', '--ood', '12', '--seed', '2', '--force', '--json'], ws);
    expect(forced.status, forced.stderr).toBe(0);
    const res = JSON.parse(forced.stdout);
    expect(res.stats.train.rows).toBe(30);
    expect(readFileSync(join(ws, 'data', 'train.jsonl')).equals(before)).toBe(true);
  });

  it('init-model writes a loadable model folder and eval runs it on the generated data', () => {
    const r = run(['data', 'init-model', '--out', 'model', '--preset', 'test', '--seed', '1', '--json'], ws);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.parameterCount).toBeGreaterThan(100_000);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'generation_config.json']) {
      expect(existsSync(join(ws, 'model', f)), f).toBe(true);
    }
    const ev = run(['eval', '--model', 'model', '--data', join('data', 'test_ood.jsonl'), '--max-new-tokens', '6', '--json'], ws);
    expect(ev.status, ev.stderr).toBe(0);
    const out = JSON.parse(ev.stdout.trim().split('\n').pop()!);
    expect(out.prompts).toBe(12);
    expect(out.accuracy).toBeGreaterThanOrEqual(0);
  });

  it('a usage error exits with 2 naming the problem', () => {
    const r = run(['data', 'synth-counting', '--out', 'x', '--size', '100'], ws);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/vlm-grpo data: --size: imageSize must be a multiple of 28/);
    expect(existsSync(join(ws, 'x'))).toBe(false);
  });

  it('usage errors name the problem (in process)', async () => {
    const x = join(ws, 'x');
    const cases: [string[], RegExp][] = [
      [[], /a subcommand is required/],
      [['bogus', '--out', x], /unknown subcommand 'bogus'/],
      [['synth-counting'], /--out is required/],
      [['synth-counting', '--out', x, '--train', '1.5'], /--train must be an integer >= 0, got '1.5'/],
      [['synth-counting', '--out', x, '--colour', 'red'], /Unknown option '--colour'/],
      [['init-model', '--out', x, '--preset', 'big'], /--preset must be one of demo, test/],
      [['init-model', '--out', join(ws, 'data', 'train.jsonl')], /exists and is not a folder/],
    ];
    for (const [args, msg] of cases) {
      const err = await dataCommand(args).then(() => undefined, (e: unknown) => e);
      expect(err, args.join(' ')).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(msg);
    }
    expect(existsSync(x)).toBe(false);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await dataCommand(['synth-counting', '--help'])).toBe(0);
      expect(await dataCommand(['--help'])).toBe(0);
      expect(log.mock.calls.map((c) => String(c[0]))).toEqual([SYNTH_COUNTING_USAGE, DATA_USAGE]);
    } finally {
      log.mockRestore();
    }
    expect(SYNTH_COUNTING_USAGE).toMatch(/--ood N/);
    expect(INIT_MODEL_USAGE).toMatch(/--preset NAME/);
  });
});
