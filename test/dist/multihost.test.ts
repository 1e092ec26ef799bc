// Two "hosts" on one machine: network namespaces created here, joined by a veth pair with 10.x addresses, each
// running `vlm-grpo train --nnodes 2 --node-rank R --master-addr <host 0>` (one rank per node). Together they run
// ONE job to completion: rank 0 (host 0) writes the run folder, both ranks write their optimizer shards. Needs root
// (CAP_NET_ADMIN) for `ip netns`; without it the test is skipped with a message saying why.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { CLI, cliWorkspace, TSX } from './run-ranks.js';

const tag = String(process.pid % 100000);
const ns = [`vgd-h0-${tag}`, `vgd-h1-${tag}`];
const veth = [`vgd${tag}a`, `vgd${tag}b`];
const addr = ['10.213.7.1', '10.213.7.2'];

function ip(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || '').trim() };
}

/** Creates the two namespaces and the link; returns why not when this machine does not allow it. */
function setUpHosts(): string | null {
  const probe = ip(['netns', 'add', ns[0]!]);
  if (!probe.ok) return `ip netns add failed (${probe.err || 'no ip command'}); this test needs root / CAP_NET_ADMIN and iproute2`;
  const steps: string[][] = [
    ['netns', 'add', ns[1]!],
    ['link', 'add', veth[0]!, 'type', 'veth', 'peer', 'name', veth[1]!],
    ...[0, 1].flatMap((h) => [
      ['link', 'set', veth[h]!, 'netns', ns[h]!],
      ['-n', ns[h]!, 'addr', 'add', `${addr[h]}/24`, 'dev', veth[h]!],
      ['-n', ns[h]!, 'link', 'set', veth[h]!, 'up'],
      ['-n', ns[h]!, 'link', 'set', 'lo', 'up'],
    ]),
  ];
  for (const s of steps) {
    const r = ip(s);
    if (!r.ok) return `ip ${s.join(' ')} failed: ${r.err}`;
  }
  return null;
}

const root = mkdtempSync(join(tmpdir(), 'vg-dist-mh-'));
const why = setUpHosts();
if (why) console.warn(`multihost test skipped: ${why}`);
afterAll(() => {
  for (const n of ns) ip(['netns', 'del', n]);  // deleting a namespace deletes its end of the veth pair (and the pair)
  ip(['link', 'del', veth[0]!]);  // in case it never left the root namespace
  rmSync(root, { recursive: true, force: true });
});

function runNode(h: number, ws: string, port: number): Promise<{ code: number | null; out: string }> {
  const p = spawn('ip', ['netns', 'exec', ns[h]!, process.execPath, '--import', TSX, CLI, 'train', '--config', 'run.yaml',
    '--nnodes', '2', '--node-rank', String(h), '--master-addr', addr[0]!, '--master-port', String(port), '--nproc-per-node', '1'],
  { cwd: ws, env: { ...process.env, FORCE_COLOR: '0', VG_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
  return new Promise((resolve) => p.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, out });
  }));
}

describe('multi-host (network namespaces)', () => {
  it.skipIf(why !== null)('two hosts run one training job together over a veth link', async () => {
    // host 1's namespace has only lo and its veth end: reaching host 0's rendezvous at all proves the link carries it
    expect(spawnSync('ip', ['-n', ns[1]!, '-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim().split('@')[0])).toEqual(['lo', veth[1]]);
    const ws = cliWorkspace(root, { steps: 2, promptsPerStep: 2, saveEvery: 1, validationSplit: 0.5, evalEvery: 2 });
    const port = 29000 + (process.pid % 1000);
    const [h0, h1] = await Promise.all([runNode(0, ws, port), runNode(1, ws, port)]);
    expect(h0.code, h0.out).toBe(0);
    expect(h1.code, h1.out).toBe(0);
    expect(h0.out).toMatch(/\[rank 0\] .*rank 0 of 2 \(gloo\)/);
    expect(h1.out).toMatch(/\[rank 1\] .*rank 1 of 2 \(gloo\)/);
    expect(h0.out).toMatch(/\[rank 0\] done after 2 steps/);
    const out = join(ws, 'run');
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2]);
    // evaluation is sharded (one validation prompt per host) and summed: the same line on both hosts
    expect(typeof metrics[1].extra['eval/accuracy']).toBe('number');
    expect(h0.out).toMatch(/\[rank 0\] .*eval at step 2: accuracy [\d.]+% on 2 prompts/);
    expect(h1.out).toMatch(/\[rank 1\] .*eval at step 2: accuracy [\d.]+% on 2 prompts/);
    const trainer = join(out, 'checkpoints', 'step-000002', 'trainer');
    expect(readdirSync(trainer).filter((f) => f.startsWith('optimizer')).sort()).toEqual(['optimizer-rank0-of-2.safetensors', 'optimizer-rank1-of-2.safetensors']);
    expect(existsSync(join(out, 'checkpoints', 'step-000002', 'model.safetensors'))).toBe(true);
    const state = JSON.parse(readFileSync(join(trainer, 'state.json'), 'utf8'));
    expect(state.worldSize).toBe(2);
  }, 120_000);
});
