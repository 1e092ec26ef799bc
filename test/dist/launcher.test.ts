// The launcher over fake rank scripts: environment and argv of each rank, output prefixed line by line, a crash
// stopping the others within a bound with one message naming the rank, SIGKILL after the grace period, Ctrl-C
// forwarded exactly once, and ranks that do not outlive a launcher killed with SIGKILL.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { launch } from '../../src/dist/launcher.js';

const here = dirname(fileURLToPath(import.meta.url));
const tsx = import.meta.resolve('tsx');
const entry = { command: process.execPath, args: ['--import', tsx, join(here, 'fake-rank.ts')] };

/** Collects output; `seen(text)` is when `text` first appeared (ms since the epoch), or NaN. */
function sink(): { stream: PassThrough; text: () => string; seen: (text: string) => number } {
  const stream = new PassThrough();
  let buf = '';
  const times = new Map<number, number>();
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    times.set(buf.length, Date.now());
  });
  const seen = (text: string): number => {
    const i = buf.indexOf(text);
    if (i < 0) return NaN;
    for (const [len, t] of times) if (len >= i + text.length) return t;
    return NaN;
  };
  return { stream, text: () => buf, seen };
}

/** Running (a zombie waiting for a reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('launch', () => {
  it('gives each rank its environment and the argv without launcher flags, and prefixes every line', async () => {
    const out = sink(), err = sink();
    const res = await launch({
      nprocPerNode: 3, nnodes: 2, nodeRank: 1, masterAddr: '10.9.8.7', masterPort: 31000, cores: 7, entry,
      argv: ['train', '--nproc-per-node', '3', '--config', 'x.yaml', '--nnodes=2', '--succeed'], env: { PATH: process.env.PATH }, forwardSignals: false,
      stdout: out.stream, stderr: err.stream,
    });
    expect(res.exitCode, err.text()).toBe(0);
    expect(res.message).toBeNull();
    expect(res.ranks.map((r) => [r.rank, r.code])).toEqual([[3, 0], [4, 0], [5, 0]]);
    const lines = out.text().trim().split('\n');
    for (const l of lines) expect(l).toMatch(/^\[rank [345]\] /);
    for (const rank of [3, 4, 5]) {
      const info = JSON.parse(lines.find((l) => l.startsWith(`[rank ${rank}] {`))!.slice(`[rank ${rank}] `.length));
      expect(info).toEqual({ rank, pid: expect.any(Number), world: 6, localRank: rank - 3, localWorld: 3, addr: '10.9.8.7', port: 31000, threads: '2', launcher: process.pid, argv: ['train', '--config', 'x.yaml', '--succeed'] });
      expect(lines).toContain(`[rank ${rank}] part one of rank ${rank}, part two of rank ${rank}`);
      expect(err.text()).toContain(`[rank ${rank}] stderr line of rank ${rank}\n`);
    }
    // a user's VG_NUM_THREADS wins
    const out2 = sink();
    await launch({ nprocPerNode: 2, entry, argv: ['--succeed'], env: { PATH: process.env.PATH, VG_NUM_THREADS: '5' }, forwardSignals: false, stdout: out2.stream, stderr: sink().stream });
    expect(out2.text()).toContain('"threads":"5"');
  });

  it('one rank crashing stops the others quickly and names the rank, its exit code and --resume', async () => {
    const out = sink(), err = sink();
    const res = await launch({ nprocPerNode: 3, entry, argv: ['--crash-rank', '1', '--code', '7', '--after', '100', '--ready-dir', mkdtempSync(join(tmpdir(), 'vg-launch-'))], forwardSignals: false, stdout: out.stream, stderr: err.stream, graceMs: 5000 });
    const ms = Date.now() - out.seen('rank 1 crashes now');
    expect(ms).toBeLessThan(2500);  // stopped by SIGTERM right away, not by the 5 s SIGKILL grace
    expect(res.exitCode).toBe(7);
    expect(res.failed).toMatchObject({ rank: 1, code: 7 });
    expect(res.message).toMatch(/^vlm-grpo: rank 1 \(pid \d+, local rank 1 on node 0\) exited with code 7; the other ranks of this node were stopped\./);
    expect(res.message).toMatch(/--resume/);
    expect(res.ranks.map((r) => r.rank)).toEqual([0, 1, 2]);
    for (const r of res.ranks.filter((x) => x.rank !== 1)) expect(r.code === 143 || r.signal === 'SIGTERM').toBe(true);
    expect(out.text()).toContain('[rank 1] rank 1 crashes now\n');  // the unterminated last line is flushed
  });

  it('a rank killed by a signal is named with the signal; a rank ignoring SIGTERM is killed after the grace period', async () => {
    const out = sink(), err = sink();
    const res = await launch({ nprocPerNode: 2, entry, argv: ['--crash-rank', '0', '--signal-self', '--ignore-term', '--ready-dir', mkdtempSync(join(tmpdir(), 'vg-launch-'))], forwardSignals: false, stdout: out.stream, stderr: err.stream, graceMs: 800 });
    const ms = Date.now() - out.seen('rank 1 ignores SIGTERM');  // from the SIGTERM to the SIGKILL
    expect(res.failed).toMatchObject({ rank: 0, signal: 'SIGKILL' });
    expect(res.exitCode).toBe(137);
    expect(res.message).toMatch(/rank 0 .* was killed by signal SIGKILL/);
    expect(res.ranks[1]!.signal).toBe('SIGKILL');  // rank 1 ignored SIGTERM
    expect(ms).toBeGreaterThanOrEqual(700);  // the grace period (less the time the line took to arrive)
    expect(ms).toBeLessThan(3000);
  });

  it('forwards Ctrl-C once per press and exits 130 with the resume hint', async () => {
    const p = spawn(process.execPath, ['--import', tsx, join(here, 'launch-fake.ts'), '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    // wait until both ranks are up
    for (let i = 0; i < 200 && (out.match(/part two/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    p.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
    expect(code, err).toBe(130);
    for (const r of [0, 1]) {
      expect(out).toContain(`[rank ${r}] rank ${r} got SIGINT #1`);
      expect(out).not.toContain(`rank ${r} got SIGINT #2`);
    }
    expect(err).toMatch(/\[launcher\] interrupt/);
    expect(err).toMatch(/interrupted; every rank saved its part of the checkpoint/);
  }, 30_000);

  it('ranks stop when the launcher itself is killed with SIGKILL', async () => {
    const p = spawn(process.execPath, ['--import', tsx, join(here, 'launch-fake.ts'), '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    for (let i = 0; i < 200 && (out.match(/part two/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const pids = [...out.matchAll(/"pid":(\d+)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(2);
    expect([...out.matchAll(/"launcher":(\d+)/g)].map((m) => Number(m[1]))).toEqual([p.pid, p.pid]);
    p.kill('SIGKILL');
    await new Promise((r) => p.on('close', r));
    const t0 = Date.now();
    while (pids.some(alive) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(alive), 'ranks still running after their launcher was killed').toEqual([]);
  }, 30_000);
});
