// A rank killed with SIGKILL after the first step: the launcher stops the other rank and exits non-zero within a
// bounded time, with one message naming the rank and its signal and saying --resume; running the same command with
// --resume then completes the run from the latest complete checkpoint.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { CLI, cliWorkspace, freePort, TSX } from './run-ranks.js';

const root = mkdtempSync(join(tmpdir(), 'vg-dist-fault-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The launcher's child processes and their RANK, from /proc. */
function ranksOf(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let kids: string;
    try {
      kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const k of kids.trim().split(/\s+/).filter(Boolean).map(Number)) {
      const env = readFileSync(`/proc/${k}/environ`, 'utf8').split('\0');
      const rank = env.find((e) => e.startsWith('RANK='));
      if (rank) out.set(Number(rank.slice(5)), k);
    }
  }
  return out;
}

/** Running (a zombie waiting for a reaper counts as gone). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const STEPS = 6;

describe('fault tolerance', () => {
  it('kill -9 of one rank stops the job with a message naming it; --resume completes the run', async () => {
    const ws = cliWorkspace(root, { steps: STEPS, promptsPerStep: 2, saveEvery: 1 });
    const port = await freePort();
    const args = ['--import', TSX, CLI, 'train', '--config', 'run.yaml', '--nproc-per-node', '2', '--master-port', String(port)];
    const env = { ...process.env, FORCE_COLOR: '0', VG_NUM_THREADS: '1' };
    const p = spawn(process.execPath, args, { cwd: ws, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const closed = new Promise<{ code: number | null; at: number }>((resolve) => p.on('close', (code) => resolve({ code, at: Date.now() })));
    // wait for the first complete checkpoint, i.e. after the first step
    const latest = join(ws, 'run', 'checkpoints', 'latest');
    const t0 = Date.now();
    while (!existsSync(latest) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(latest), out).toBe(true);
    const ranks = ranksOf(p.pid!);
    expect([...ranks.keys()].sort()).toEqual([0, 1]);
    const killedAt = Date.now();
    process.kill(ranks.get(1)!, 'SIGKILL');
    const { code, at } = await closed;
    console.log(`launcher exited ${((at - killedAt) / 1000).toFixed(1)} s after the kill, with code ${code}`);
    expect(code).toBe(137);  // 128 + SIGKILL
    expect(at - killedAt).toBeLessThan(15_000);  // the survivor is stopped by the launcher, not by a collective timeout
    const lastLines = out.trim().split('\n').slice(-2).join('\n');
    console.log(`the launcher's last lines:\n${lastLines}`);
    expect(lastLines).toMatch(/^vlm-grpo: rank 1 \(pid \d+, local rank 1 on node 0\) was killed by signal SIGKILL; the other ranks of this node were stopped\./m);
    expect(lastLines).toMatch(/--resume/);
    expect([...ranks.values()].filter(running), 'ranks left running').toEqual([]);
    const before = readFileSync(latest, 'utf8').trim();
    expect(Number(before.slice(5))).toBeLessThan(STEPS);  // killed mid-run

    const resumed = spawnSync(process.execPath, [...args, '--resume'], { cwd: ws, env, encoding: 'utf8', timeout: 120_000 });
    expect(resumed.status, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stdout + resumed.stderr).toMatch(new RegExp(`resumed from .*${before}`));
    expect(resumed.stdout).toMatch(new RegExp(`\\[rank 0\\] done after ${STEPS} steps`));
    const steps = readFileSync(join(ws, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);
    expect(steps.at(-1)).toBe(STEPS);
    expect(new Set(steps).size).toBe(STEPS);  // every step logged once (a resumed step replaces its earlier line)
  }, 180_000);

  it('Ctrl-C stops every rank after the same step with a complete checkpoint; the launcher exits 130', async () => {
    const ws = cliWorkspace(root, { steps: 40, promptsPerStep: 2, saveEvery: 0 });
    const args = ['--import', TSX, CLI, 'train', '--config', 'run.yaml', '--nproc-per-node', '2', '--master-port', String(await freePort())];
    const p = spawn(process.execPath, args, { cwd: ws, env: { ...process.env, FORCE_COLOR: '0', VG_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const closed = new Promise<number | null>((resolve) => p.on('close', resolve));
    const metrics = join(ws, 'run', 'metrics.jsonl');
    const t0 = Date.now();
    while (!(existsSync(metrics) && readFileSync(metrics, 'utf8').length > 0) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50));
    p.kill('SIGINT');
    const code = await closed;
    expect(code, out).toBe(130);
    expect(out).toMatch(/\[launcher\] interrupt/);
    expect(out).toMatch(/interrupted; every rank saved its part of the checkpoint/);
    const stops = [...out.matchAll(/\[rank (\d)\] .*saving a checkpoint at step (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(stops.map(([r]) => r).sort()).toEqual([0, 1]);
    expect(stops[0]![1]).toBe(stops[1]![1]);  // both ranks stopped after the same step
    const step = stops[0]![1]!;
    expect(step).toBeGreaterThanOrEqual(1);
    expect(step).toBeLessThan(40);
    const dir = join(ws, 'run', 'checkpoints', `step-${String(step).padStart(6, '0')}`);
    expect(readFileSync(join(ws, 'run', 'checkpoints', 'latest'), 'utf8').trim()).toBe(`step-${String(step).padStart(6, '0')}`);
    expect(readdirSync(join(dir, 'trainer')).filter((f) => f.startsWith('optimizer')).sort()).toEqual(['optimizer-rank0-of-2.safetensors', 'optimizer-rank1-of-2.safetensors']);
  }, 120_000);
});
