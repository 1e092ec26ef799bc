import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { configSchema } from '../../src/config/schema.js';
import type { StepMetrics } from '../../src/report/step-metrics.js';
import {
  attachWandb,
  decodeJsonWithNonFinite,
  encodeJsonWithNonFinite,
  syncWandbOffline,
  wandbMetrics,
  WandbError,
  type WandbOptions,
} from '../../src/report/wandb.js';

interface Req {
  path: string;
  auth: string | undefined;
  raw: string;
  body: Record<string, unknown>;
}

/** A fake W&B server: records every request; `fail(req)` returns a status to fail with, or 0 to answer normally. */
let server: Server;
let base = '';
let reqs: Req[] = [];
let fail: (r: Req) => number = () => 0;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      const r: Req = { path: req.url ?? '', auth: req.headers.authorization, raw, body: decodeJsonWithNonFinite(raw) as Record<string, unknown> };
      reqs.push(r);
      const status = fail(r);
      if (status) {
        res.writeHead(status);
        res.end('unavailable');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      if (r.path === '/graphql') {
        const v = (r.body.variables ?? {}) as Record<string, unknown>;
        res.end(JSON.stringify({
          data: { upsertBucket: { bucket: { id: 'b1', name: v.name, displayName: v.displayName ?? 'bright-sun-1', project: { id: 'p1', name: v.project, entity: { id: 'e1', name: v.entity ?? 'default-team' } } }, inserted: true } },
        }));
      } else res.end(JSON.stringify({ exitcode: null, limits: {} }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

let dir = '';
beforeEach(() => {
  reqs = [];
  fail = () => 0;
  dir = mkdtempSync(join(tmpdir(), 'vg-wandb-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A trainer stand-in: a config and 'step' events (GrpoTrainer and SftTrainer have exactly this surface). */
class FakeTrainer extends EventEmitter {
  config = { model: { path: '/models/tiny', lora: { enabled: true, r: 8 } }, rollout: { groupSize: 4 }, train: { outDir: '' } };
}

function metrics(step: number, over: Partial<StepMetrics> = {}): StepMetrics {
  return {
    step, time: Date.now(), epoch: step / 10,
    reward: { mean: 0.5 + step / 100, std: 0.1, min: 0, max: 1 },
    rewards: { accuracy: { mean: step / 10, std: 0.2, min: 0, max: 1 }, format: { mean: 1, std: 0, min: 1, max: 1 } },
    accuracy: step / 10, fracZeroStdGroups: 0.25, completionLength: { mean: 40, min: 10, max: 64 }, truncatedFrac: 0.1,
    kl: 0.01 * step, entropy: 1.5, clipFrac: { low: 0.01, high: 0.02, dual: 0 }, loss: 0.3, gradNorm: 2, lr: 1e-6,
    tokens: { prompt: 1000, completion: 500 }, tokensPerSecond: 250, seconds: { generation: 2, scoring: 0.1, update: 1, total: 3.2 },
    reflection: { total: 3, perCompletion: 0.2, fracWithAny: 0.1, counts: { wait: 2, recheck: 1 } },
    extra: { 'reward_errors/llm': step === 2 ? 1 : 0, 'eval/accuracy': null },
    ...over,
  };
}

const env = { WANDB_API_KEY: 'secret-key' };
const waitFor = async (cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};
const historyLines = (rs: Req[]) =>
  rs.flatMap((r) => {
    const f = (r.body.files as Record<string, { offset: number; content: string[] }> | undefined)?.['wandb-history.jsonl'];
    return f ? f.content.map((c, i) => ({ offset: f.offset + i, row: decodeJsonWithNonFinite(c) as Record<string, number> })) : [];
  });

describe('row encoding', () => {
  it('flattens StepMetrics to W&B keys and keeps NaN/Infinity as bare tokens', () => {
    const m = wandbMetrics(metrics(3, { kl: null, loss: NaN, gradNorm: Infinity }));
    expect(m['reward/mean']).toBeCloseTo(0.53, 12);
    expect(m['rewards/accuracy/mean']).toBeCloseTo(0.3, 12);
    expect(m['clipFrac/high']).toBe(0.02);
    expect(m['reflection/counts/wait']).toBe(2);
    expect(m['reward_errors/llm']).toBe(0);
    expect(m.entropy).toBe(1.5);
    for (const k of ['kl', 'step', 'time', 'eval/accuracy', 'extra/reward_errors/llm']) expect(k in m, k).toBe(false);
    const text = encodeJsonWithNonFinite({ a: NaN, b: Infinity, c: -Infinity, d: 1, s: 'NaN "x" \u0000NaN\u0000' });
    expect(text).toBe('{"a":NaN,"b":Infinity,"c":-Infinity,"d":1,"s":"NaN \\"x\\" \\u0000NaN\\u0000"}');
    const back = decodeJsonWithNonFinite(text) as Record<string, unknown>;
    expect(back.a).toBeNaN();
    expect([back.b, back.c, back.d, back.s]).toEqual([Infinity, -Infinity, 1, 'NaN "x" \u0000NaN\u0000']);
  });
});

describe('online mode against a fake W&B server', () => {
  it('creates the run with project/entity/name/config, streams rows in order and finishes', async () => {
    const t = new FakeTrainer();
    const logs: string[] = [];
    const warnings: string[] = [];
    const run = await attachWandb(t, {
      project: 'grpo-tests', entity: 'my-team', name: 'first run', group: 'sweep-1', tags: ['tiny', 'cpu'], baseUrl: `${base}/`,
      env, onLog: (l) => logs.push(l), onWarning: (w) => warnings.push(w),
    });
    expect(run.mode).toBe('online');
    expect(run.id).toMatch(/^[a-z0-9]{8}$/);
    const gql = reqs[0]!;
    expect(gql.path).toBe('/graphql');
    expect(gql.auth).toBe(`Basic ${Buffer.from('api:secret-key').toString('base64')}`);
    expect(String(gql.body.query)).toMatch(/upsertBucket\(input:/);
    const v = gql.body.variables as Record<string, unknown>;
    expect(v).toMatchObject({ name: run.id, project: 'grpo-tests', entity: 'my-team', displayName: 'first run', groupName: 'sweep-1', tags: ['tiny', 'cpu'], jobType: 'train' });
    expect(JSON.parse(v.config as string)).toEqual({
      model: { value: t.config.model, desc: null }, rollout: { value: { groupSize: 4 }, desc: null }, train: { value: { outDir: '' }, desc: null },
    });
    expect(logs).toEqual([`W&B run: ${base}/my-team/grpo-tests/runs/${run.id}`]);
    expect(run.url()).toBe(`${base}/my-team/grpo-tests/runs/${run.id}`);

    for (let s = 1; s <= 3; s++) t.emit('step', metrics(s, s === 2 ? { kl: null, loss: NaN } : {}));
    await waitFor(() => run.stats().uploaded === 3);
    await run.finish({ exitCode: 0 });
    await run.finish(); // idempotent
    t.emit('step', metrics(4)); // after finish: not logged

    const streams = reqs.filter((r) => r.path.endsWith('/file_stream'));
    for (const r of streams) expect(r.path).toBe(`/files/my-team/grpo-tests/${run.id}/file_stream`);
    const rows = historyLines(streams);
    expect(rows.map((r) => r.offset)).toEqual([0, 1, 2]);
    expect(rows.map((r) => r.row._step)).toEqual([1, 2, 3]);
    expect(rows[0]!.row['reward/mean']).toBeCloseTo(0.51, 12);
    expect(rows[2]!.row['rewards/accuracy/mean']).toBeCloseTo(0.3, 12);
    expect(rows[0]!.row.kl).toBeCloseTo(0.01, 12);
    expect('kl' in rows[1]!.row).toBe(false);
    expect(rows[1]!.row.loss).toBeNaN();
    expect(rows[1]!.row['reward_errors/llm']).toBe(1);
    for (const r of rows) {
      expect(r.row._runtime).toBeGreaterThanOrEqual(0);
      expect(Math.abs(r.row._timestamp! - Date.now() / 1000)).toBeLessThan(60);
    }
    // Each history line travels as a JSON string inside the (plain JSON) request; the line itself carries NaN.
    const contents = streams.flatMap((r) => (r.body.files as Record<string, { content: string[] }> | undefined)?.['wandb-history.jsonl']?.content ?? []);
    expect(contents[1]).toMatch(/"loss":NaN/);
    for (const r of streams) expect(() => JSON.parse(r.raw)).not.toThrow();
    const last = streams[streams.length - 1]!;
    expect(last.body).toEqual({ complete: true, exitcode: 0 });
    // The summary sent with the last rows holds each key's latest value.
    const summaries = streams.map((r) => (r.body.files as Record<string, { content: string[] }> | undefined)?.['wandb-summary.json']).filter(Boolean);
    expect((decodeJsonWithNonFinite(summaries[summaries.length - 1]!.content[0]!) as Record<string, number>)['rewards/accuracy/mean']).toBeCloseTo(0.3, 12);
    expect(run.stats()).toEqual({ rows: 3, uploaded: 3, dropped: 0, pending: 0, failures: 0 });
    expect(warnings).toEqual([]);
  });

  it("uses the server's entity when none is configured, and logs SFT steps", async () => {
    const t = new FakeTrainer();
    const run = await attachWandb(t, { project: 'sft', baseUrl: base, env });
    t.emit('step', { step: 1, loss: 2.5, tokens: 300, gradNorm: 1.25, lr: 2e-5, seconds: 0.7 });
    await run.finish();
    expect(run.url()).toBe(`${base}/default-team/sft/runs/${run.id}`);
    expect((reqs[0]!.body.variables as Record<string, unknown>).entity).toBeUndefined();
    const rows = historyLines(reqs.filter((r) => r.path === `/files/default-team/sft/${run.id}/file_stream`));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.row).toMatchObject({ _step: 1, loss: 2.5, tokens: 300, gradNorm: 1.25, lr: 2e-5, seconds: 0.7 });
  });

  it('keeps training when the server is down: one warning, bounded queue, rows counted as dropped', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const t = new FakeTrainer();
    const warnings: string[] = [];
    const logs: string[] = [];
    const t0 = Date.now();
    const run = await attachWandb(t, {
      project: 'p', baseUrl: `http://127.0.0.1:${port}`, env, onWarning: (w) => warnings.push(w), onLog: (l) => logs.push(l),
      initialBackoffMs: 20, maxBackoffMs: 40, maxQueuedRows: 4, finishTimeoutMs: 150,
    });
    // A training loop: emitting never throws or waits on the network.
    for (let s = 1; s <= 6; s++) {
      t.emit('step', metrics(s));
      await new Promise((r) => setTimeout(r, 15));
    }
    expect(run.stats().rows).toBe(6);
    expect(run.stats().pending).toBe(4);
    expect(run.stats().dropped).toBe(2);
    expect(run.stats().failures).toBeGreaterThanOrEqual(2);
    await run.finish({ exitCode: 1 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(run.stats()).toMatchObject({ rows: 6, uploaded: 0, dropped: 6, pending: 0 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/W&B: .*ECONNREFUSED.*Training continues; retrying with backoff/);
    expect(logs.some((l) => /4 row\(s\) could not be uploaded/.test(l))).toBe(true);
    expect(run.url()).toBeNull();
  });

  it('retries with backoff and delivers every row exactly once when the server comes back', async () => {
    let failures = 0;
    fail = (r) => (r.path.endsWith('/file_stream') && failures++ < 3 ? 503 : 0);
    const t = new FakeTrainer();
    const warnings: string[] = [];
    const run = await attachWandb(t, { project: 'p', entity: 'e', baseUrl: base, env, onWarning: (w) => warnings.push(w), initialBackoffMs: 10, maxBackoffMs: 20 });
    for (let s = 1; s <= 5; s++) {
      t.emit('step', metrics(s));
      await new Promise((r) => setTimeout(r, 3));
    }
    await waitFor(() => run.stats().uploaded === 5);
    await run.finish();
    const ok = reqs.filter((r, i) => r.path.endsWith('/file_stream') && i >= 0);
    // Successful history requests are the ones after the first three 503s.
    const delivered = historyLines(ok.slice(3));
    expect(delivered.map((d) => d.row._step)).toEqual([1, 2, 3, 4, 5]);
    expect(delivered.map((d) => d.offset)).toEqual([0, 1, 2, 3, 4]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/HTTP 503/);
    expect(run.stats()).toMatchObject({ rows: 5, uploaded: 5, dropped: 0, failures: 3 });
  });

  it('stops uploading after a fatal 401, with one warning', async () => {
    fail = (r) => (r.path === '/graphql' ? 401 : 0);
    const t = new FakeTrainer();
    const warnings: string[] = [];
    const run = await attachWandb(t, { project: 'p', baseUrl: base, env, onWarning: (w) => warnings.push(w) });
    t.emit('step', metrics(1));
    t.emit('step', metrics(2));
    await run.finish();
    expect(reqs).toHaveLength(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/HTTP 401.*Uploading stopped/);
    expect(run.stats()).toMatchObject({ rows: 2, uploaded: 0, dropped: 2 });
  });

  it('needs WANDB_API_KEY online; WANDB_MODE and mode disabled turn it off', async () => {
    const t = new FakeTrainer();
    await expect(attachWandb(t, { project: 'p', baseUrl: base, env: {} })).rejects.toMatchObject({ code: 'ERR_WANDB_NO_KEY' });
    await expect(attachWandb(t, { project: '', env })).rejects.toBeInstanceOf(WandbError);
    for (const o of [{ project: 'p', mode: 'disabled' }, { project: 'p', env: { ...env, WANDB_MODE: 'disabled' } }] as WandbOptions[]) {
      const run = await attachWandb(t, { baseUrl: base, ...o });
      t.emit('step', metrics(1));
      await run.finish();
      expect(run.mode).toBe('disabled');
    }
    expect(reqs).toHaveLength(0);
    expect(t.listenerCount('step')).toBe(0);
  });
});

describe('offline mode', () => {
  it('writes run.json and history.jsonl under RUN_DIR/wandb/, which sync uploads later', async () => {
    const t = new FakeTrainer();
    t.config.train.outDir = dir;
    const run = await attachWandb(t, { project: 'offline-p', name: 'later', tags: ['x'], mode: 'offline', env: {} });
    for (let s = 1; s <= 3; s++) t.emit('step', metrics(s, s === 3 ? { gradNorm: Infinity } : {}));
    await run.finish({ exitCode: 130 });
    expect(reqs).toHaveLength(0);
    const folders = readdirSync(join(dir, 'wandb'));
    expect(folders).toHaveLength(1);
    expect(folders[0]).toMatch(new RegExp(`^offline-run-\\d{8}_\\d{6}-${run.id}$`));
    expect(run.dir).toBe(join(dir, 'wandb', folders[0]!));
    const meta = JSON.parse(readFileSync(join(run.dir!, 'run.json'), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ format: 'vlm-grpo-wandb-offline', version: 1, id: run.id, project: 'offline-p', entity: null, name: 'later', tags: ['x'], config: t.config, exitCode: 130, rows: 3, program: 'vlm-grpo' });
    expect(typeof meta.finishedAt).toBe('string');
    const lines = readFileSync(join(run.dir!, 'history.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/"gradNorm":Infinity/);
    expect(lines.map((l) => (decodeJsonWithNonFinite(l) as Record<string, number>)._step)).toEqual([1, 2, 3]);

    const res = await syncWandbOffline(run.dir!, { env, baseUrl: base });
    expect(res).toEqual({ id: run.id, url: `${base}/default-team/offline-p/runs/${run.id}`, rows: 3 });
    expect((reqs[0]!.body.variables as Record<string, unknown>)).toMatchObject({ name: run.id, project: 'offline-p', displayName: 'later', tags: ['x'] });
    const streams = reqs.filter((r) => r.path.endsWith('/file_stream'));
    const sent = streams.flatMap((r) => (r.body.files as Record<string, { content: string[] }> | undefined)?.['wandb-history.jsonl']?.content ?? []);
    expect(sent).toEqual(lines);
    expect(streams[streams.length - 1]!.body).toEqual({ complete: true, exitcode: 130 });
    const summary = decodeJsonWithNonFinite(((streams[0]!.body.files as Record<string, { content: string[] }>)['wandb-summary.json']!.content[0])!) as Record<string, number>;
    expect(summary.gradNorm).toBe(Infinity);
    expect('_step' in summary).toBe(false);
  });

  it('sync reports a broken folder and a failing server with the reason', async () => {
    await expect(syncWandbOffline(dir, { env, baseUrl: base })).rejects.toMatchObject({ code: 'ERR_WANDB_OFFLINE' });
    const t = new FakeTrainer();
    t.config.train.outDir = dir;
    const run = await attachWandb(t, { project: 'p', mode: 'offline', env: {} });
    t.emit('step', metrics(1));
    await run.finish();
    fail = () => 500;
    await expect(syncWandbOffline(run.dir!, { env, baseUrl: base, retries: 1, retryDelayMs: 5 })).rejects.toMatchObject({ code: 'ERR_WANDB_SYNC' });
  });
});

describe('config', () => {
  it('has a logging.wandb section, off by default, with strict keys', () => {
    const base = { model: { path: 'm' }, data: { train: [{ path: 'd.jsonl' }] } };
    expect(configSchema.parse(base).logging).toEqual({ wandb: null });
    expect(configSchema.parse({ ...base, logging: { wandb: { project: 'p' } } }).logging.wandb).toEqual({ project: 'p', tags: [], mode: 'online' });
    expect(configSchema.safeParse({ ...base, logging: { wandb: { project: 'p', projet: 'x' } } }).success).toBe(false);
    expect(configSchema.safeParse({ ...base, logging: { wandb: { project: 'p', mode: 'sometimes' } } }).success).toBe(false);
  });
});
