// W&B logging and the `llm` reward on the real GRPO trainer (tiny model): every step reaches the fake W&B server
// with the trainer's own metrics, judge failures are counted in the metrics, and a W&B server that is down does
// not stop training.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { StepMetrics } from '../../src/report/step-metrics.js';
import { attachWandb, decodeJsonWithNonFinite } from '../../src/report/wandb.js';
import { GrpoTrainer } from '../../src/rl/trainer.js';
import { fixturePrompts, GROUND_TRUTH_REWARD, ListSource, rewardModule, tinyModelDir } from '../rl/helpers.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'vg-wandb-rl-'));
  dirs.push(d);
  return d;
};
const modelDir = tinyModelDir();
dirs.push(modelDir);

let server: Server;
let base = '';
const seen: Array<{ path: string; body: Record<string, unknown> }> = [];
let judgeCalls = 0;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      const path = req.url ?? '';
      if (path === '/v1/chat/completions') {
        judgeCalls++;
        res.writeHead(500);
        res.end('judge is down');
        return;
      }
      const body = JSON.parse(raw) as Record<string, unknown>;
      seen.push({ path, body });
      res.writeHead(200, { 'content-type': 'application/json' });
      if (path === '/graphql') {
        const v = body.variables as Record<string, unknown>;
        res.end(JSON.stringify({ data: { upsertBucket: { bucket: { name: v.name, project: { name: v.project, entity: { name: 'team' } } } } } }));
      } else res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function config(out: string) {
  return {
    model: { path: modelDir },
    data: { train: [{ path: join(modelDir, 'config.json') }] },
    rewards: [
      { name: 'custom', module: rewardModule(out, 'gt', GROUND_TRUTH_REWARD) },
      { name: 'llm', weight: 0.5, options: { baseUrl: `${base}/v1`, timeoutMs: 5000 } },
    ],
    rollout: { groupSize: 4, promptsPerStep: 2, maxNewTokens: 6, temperature: 1 },
    optim: { lr: 1e-3, microBatchSize: 4 },
    train: { steps: 2, outDir: out, saveEvery: 0, seed: 3 },
  };
}

describe('W&B on the GRPO trainer', () => {
  it('uploads every step of a real run, with the judge failures counted', async () => {
    const out = tmp();
    const t = new GrpoTrainer(config(out), { prompts: new ListSource(fixturePrompts()) });
    const steps: StepMetrics[] = [];
    t.on('step', (m) => steps.push(m));
    const warnings: string[] = [];
    const run = await attachWandb(t, { project: 'tiny', baseUrl: base, env: { WANDB_API_KEY: 'k' }, onWarning: (w) => warnings.push(w) });
    const res = await t.train();
    await run.finish({ exitCode: 0 });
    expect(res.steps).toBe(2);
    expect(warnings).toEqual([]);
    const gql = seen.find((s) => s.path === '/graphql')!;
    const cfg = JSON.parse((gql.body.variables as Record<string, string>).config!) as Record<string, { value: unknown }>;
    expect((cfg.rollout!.value as { groupSize: number }).groupSize).toBe(4);
    const rows = seen
      .filter((s) => s.path === `/files/team/tiny/${run.id}/file_stream`)
      .flatMap((s) => ((s.body.files as Record<string, { content: string[] }> | undefined)?.['wandb-history.jsonl']?.content ?? []))
      .map((l) => decodeJsonWithNonFinite(l) as Record<string, number>);
    expect(rows.map((r) => r._step)).toEqual([1, 2]);
    const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepMetrics);
    rows.forEach((r, i) => {
      expect(r['reward/mean']).toBe(logged[i]!.reward.mean);
      expect(r['rewards/llm/mean']).toBe(logged[i]!.rewards.llm!.mean);
      expect(r['completionLength/mean']).toBe(logged[i]!.completionLength.mean);
      expect(r.loss).toBe(logged[i]!.loss);
      // Each judge call failed (HTTP 500): counted per step in the metrics and in the W&B row.
      expect(r['reward_errors/llm']).toBe(steps[i]!.extra!['reward_errors/llm']);
    });
    const counted = steps.reduce((a, m) => a + (m.extra!['reward_errors/llm'] ?? 0), 0);
    expect(judgeCalls).toBeGreaterThan(0);
    expect(counted).toBe(judgeCalls);
  });

  it('keeps training when the W&B server is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const out = tmp();
    const t = new GrpoTrainer({ ...config(out), rewards: [{ name: 'custom', module: rewardModule(out, 'gt', GROUND_TRUTH_REWARD) }] }, { prompts: new ListSource(fixturePrompts()) });
    const warnings: string[] = [];
    const run = await attachWandb(t, {
      project: 'tiny', baseUrl: `http://127.0.0.1:${port}`, env: { WANDB_API_KEY: 'k' }, onWarning: (w) => warnings.push(w), onLog: () => {},
      initialBackoffMs: 20, maxBackoffMs: 50, finishTimeoutMs: 100,
    });
    const res = await t.train();
    await run.finish();
    expect(res.steps).toBe(2);
    expect(warnings).toHaveLength(1);
    expect(run.stats()).toMatchObject({ rows: 2, uploaded: 0, dropped: 2 });
  });
});
