// The pieces of data-parallel training that need no processes: rollouts packed and gathered bit for bit, JSON
// values with NaN/Infinity, sums; sharded checkpoints written by N in-process "ranks" (FakeGroup) and read back on
// any other number of ranks, the single-file layout read by ranks, and a checkpoint missing a shard never loads.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { latestCheckpoint, loadCheckpoint, readOptimizerMoments, saveCheckpoint, saveShardedCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { allGatherBytes, allGatherJson, allReduceSum, anyRank } from '../../src/dist/gather.js';
import { shardRange } from '../../src/dist/shard.js';
import { packRollouts, unpackRollouts } from '../../src/rl/rollout.js';
import type { PreparedPrompt, Rollout } from '../../src/rl/types.js';
import { FakeGroup } from './fake-group.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'vg-dist-ck-'));
  dirs.push(d);
  return d;
}
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const layout = [
  { name: 'a.weight', shape: [3, 5], offset: 0, numel: 15 },
  { name: 'b.bias', shape: [7], offset: 15, numel: 7 },
];
const TOTAL = 22;
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

function prompt(id: string): PreparedPrompt {
  return { id, input: { inputIds: Int32Array.of(1, 2, 3) }, text: id, groundTruth: 1, row: {}, images: [], imagePaths: [] };
}

describe('exchanges between ranks', () => {
  it('packs and unpacks rollouts exactly, NaN bits and non-finite rewards included', () => {
    const prompts = [prompt('p0'), prompt('p1'), prompt('p2')];
    const lp = new Float32Array(new Uint32Array([0x7fc00123, 0x3f800000, 0xff800000]).buffer);  // a NaN payload, 1, -inf
    const rs: Rollout[] = [
      { prompt: prompts[1]!, group: 1, sample: 0, tokens: Int32Array.of(5, -1, 2147483647), sampleLogprobs: lp, text: 'héllo ✓', truncated: true, rewards: { a: 0.1 + 0.2, b: NaN }, reward: -Infinity, advantage: 3 },
      { prompt: prompts[2]!, group: 2, sample: 3, tokens: new Int32Array(0), sampleLogprobs: new Float32Array(0), text: '', truncated: false, rewards: {}, reward: 1e-300, advantage: 0 },
    ];
    const bytes = packRollouts(rs, { errs: 2 });
    const u = unpackRollouts(bytes.slice(), prompts);
    expect(u.extra).toEqual({ errs: 2 });
    expect(u.rollouts).toHaveLength(2);
    const [a, b] = u.rollouts as [Rollout, Rollout];
    expect(a.prompt).toBe(prompts[1]);
    expect(a.rewards.a).toBe(0.1 + 0.2);
    expect(a.rewards.b).toBeNaN();
    expect(a.reward).toBe(-Infinity);
    expect(Array.from(a.tokens)).toEqual([5, -1, 2147483647]);
    expect(Array.from(new Uint32Array(a.sampleLogprobs.buffer, a.sampleLogprobs.byteOffset, 3))).toEqual([0x7fc00123, 0x3f800000, 0xff800000]);
    expect(a.text).toBe('héllo ✓');
    expect(a.truncated).toBe(true);
    expect(a.advantage).toBe(0);  // advantages are recomputed on the gathered batch
    expect(b).toMatchObject({ group: 2, sample: 3, text: '', reward: 1e-300 });
    expect(() => unpackRollouts(bytes.subarray(0, bytes.length - 4), prompts)).toThrow(/packed rollouts hold/);
    expect(() => unpackRollouts(bytes, [prompts[0]!])).toThrow(/group 1, but the step has 1 prompts/);
  });

  it('gathers bytes of different lengths (some empty) and JSON values in rank order; sums and flags agree', async () => {
    const g = new FakeGroup(3);
    const blobs = [Uint8Array.of(1, 2, 3, 4, 5), new Uint8Array(0), Uint8Array.from({ length: 9 }, (_, i) => 200 + i)];
    const got = await Promise.all([0, 1, 2].map((r) => allGatherBytes(g.comm(r), blobs[r]!)));
    for (const x of got) expect(x.map((b) => Array.from(b))).toEqual(blobs.map((b) => Array.from(b)));
    const js = await Promise.all([0, 1, 2].map((r) => allGatherJson(g.comm(r), { r, v: r === 1 ? NaN : 1 / 3, s: 'x'.repeat(r) })));
    for (const x of js) {
      expect(x.map((o) => o.r)).toEqual([0, 1, 2]);
      expect(x[1]!.v).toBeNaN();
      expect(x[2]).toEqual({ r: 2, v: 1 / 3, s: 'xx' });
    }
    const sums = await Promise.all([0, 1, 2].map((r) => allReduceSum(g.comm(r), [r, 0.5])));
    for (const s of sums) expect(s).toEqual([3, 1.5]);
    expect(await Promise.all([0, 1, 2].map((r) => anyRank(g.comm(r), r === 2)))).toEqual([true, true, true]);
    expect(await Promise.all([0, 1, 2].map((r) => anyRank(g.comm(r), false)))).toEqual([false, false, false]);
  });
});

/** A sharded checkpoint of `world` ranks whose full moments are m, v (each rank saves its slice). */
async function saveSharded(run: string, world: number, step: number, params: Float32Array, m: Float32Array, v: Float32Array, modelDir: string) {
  const g = new FakeGroup(world);
  return Promise.all(Array.from({ length: world }, (_, r) => {
    const { begin, end } = shardRange(TOTAL, world, r);
    return saveShardedCheckpoint(run, {
      step, optimizerStep: step * 2,
      shard: { begin, end, total: TOTAL, expAvg: m.slice(begin, end), expAvgSq: v.slice(begin, end) },
      ...(r === 0 ? { rank0: { modelDir, layout, params, exportDtype: 'fp32' as const, state: { dataCursor: { index: step } } } } : {}),
    }, 2, g.peers(r));
  }));
}

describe('sharded checkpoints', () => {
  it('N ranks write one model folder plus one shard each; any number of ranks reads back its own range', async () => {
    const run = tmp(), model = tmp();
    writeFileSync(join(model, 'config.json'), '{"model_type":"qwen2_5_vl"}');
    const params = rand(TOTAL), m = rand(TOTAL), v = rand(TOTAL).map(Math.abs);
    const dirs = await saveSharded(run, 3, 4, params, m, v, model);
    expect(new Set(dirs).size).toBe(1);
    const dir = dirs[0]!;
    expect(latestCheckpoint(run)!.dir).toBe(dir);
    expect(readdirSync(join(dir, 'trainer')).sort()).toEqual(['optimizer-rank0-of-3.safetensors', 'optimizer-rank1-of-3.safetensors', 'optimizer-rank2-of-3.safetensors', 'state.json']);
    expect(existsSync(join(dir, 'config.json'))).toBe(true);
    expect(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.tmp'))).toEqual([]);
    const state = JSON.parse(readFileSync(join(dir, 'trainer', 'state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 4, optimizerStep: 8, worldSize: 3, dataCursor: { index: 4 } });
    expect(state.optimizerShards).toEqual([{ rank: 0, file: 'optimizer-rank0-of-3.safetensors', begin: 0, end: 8 }, { rank: 1, file: 'optimizer-rank1-of-3.safetensors', begin: 8, end: 15 }, { rank: 2, file: 'optimizer-rank2-of-3.safetensors', begin: 15, end: 22 }]);
    // one process reads everything (model weights and all moments)
    const ck = loadCheckpoint(dir, layout, TOTAL);
    expect(ck.params).toEqual(params);
    expect(ck.optimizer.expAvg).toEqual(m);
    expect(ck.optimizer.expAvgSq).toEqual(v);
    expect(ck.optimizer.step).toBe(8);
    // 2, 4 and 5 ranks read ranges that straddle the saved shards
    for (const world of [2, 4, 5]) {
      for (let r = 0; r < world; r++) {
        const { begin, end } = shardRange(TOTAL, world, r);
        const part = loadCheckpoint(dir, layout, TOTAL, { begin, end }).optimizer;
        expect(part.expAvg, `${world} ranks, rank ${r}`).toEqual(m.slice(begin, end));
        expect(part.expAvgSq).toEqual(v.slice(begin, end));
      }
    }
    expect(() => readOptimizerMoments(dir, state, { begin: 20, end: 23 })).toThrow(/hold 22 moments; moments \[20, 23\)/);
  });

  it('ranks read their range of a single-process checkpoint, and the one-process layout is unchanged', async () => {
    const run = tmp();
    const params = rand(TOTAL), m = rand(TOTAL), v = rand(TOTAL);
    const dir = await saveCheckpoint(run, { step: 2, modelDir: run, layout, params, exportDtype: 'fp32', optimizer: { expAvg: m, expAvgSq: v, step: 2 }, state: {} }, 2);
    expect(readdirSync(join(dir, 'trainer')).sort()).toEqual(['optimizer.safetensors', 'state.json']);
    expect(loadCheckpoint(dir, layout, TOTAL, { begin: 5, end: 16 }).optimizer.expAvgSq).toEqual(v.slice(5, 16));
    expect(loadCheckpoint(dir, layout, TOTAL).optimizer.expAvg).toEqual(m);
  });

  it('a missing shard never loads silently; a sharded write that did not finish never becomes latest', async () => {
    const run = tmp();
    const params = rand(TOTAL), m = rand(TOTAL), v = rand(TOTAL);
    const [dir] = await saveSharded(run, 2, 1, params, m, v, run);
    rmSync(join(dir!, 'trainer', 'optimizer-rank1-of-2.safetensors'));
    expect(() => loadCheckpoint(dir!, layout, TOTAL)).toThrow(/optimizer-rank1-of-2\.safetensors \(optimizer shard of rank 1\) is missing/);
    // rank 0's range is still readable on its own
    expect(loadCheckpoint(dir!, layout, TOTAL, { begin: 0, end: 11 }).optimizer.expAvg).toEqual(m.slice(0, 11));
    // a temporary folder of a later step (a crash while ranks wrote shards) is not a checkpoint
    const run2 = tmp();
    await saveSharded(run2, 2, 1, params, m, v, run2);
    const g = new FakeGroup(2);
    const rank0 = saveShardedCheckpoint(run2, {
      step: 2, optimizerStep: 2, shard: { begin: 0, end: 11, total: TOTAL, expAvg: m.slice(0, 11), expAvgSq: v.slice(0, 11) },
      rank0: { modelDir: run2, layout, params, exportDtype: 'fp32', state: {} },
    }, 2, g.peers(0));
    await new Promise((r) => setTimeout(r, 50));  // rank 1 never arrives: rank 0 waits at the first barrier
    expect(latestCheckpoint(run2)!.step).toBe(1);
    expect(readdirSync(join(run2, 'checkpoints')).some((n) => n.startsWith('.tmp-step-000002'))).toBe(true);
    void rank0;
  });

  it('ranks that do not share the run folder fail together with a message saying so', async () => {
    const run = tmp(), elsewhere = tmp();
    const params = rand(TOTAL), m = rand(TOTAL), v = rand(TOTAL);
    const g = new FakeGroup(2);
    const results = await Promise.allSettled([0, 1].map((r) => {
      const { begin, end } = shardRange(TOTAL, 2, r);
      return saveShardedCheckpoint(r === 0 ? run : elsewhere, {
        step: 3, optimizerStep: 3, shard: { begin, end, total: TOTAL, expAvg: m.slice(begin, end), expAvgSq: v.slice(begin, end) },
        ...(r === 0 ? { rank0: { modelDir: run, layout, params, exportDtype: 'fp32' as const, state: {} } } : {}),
      }, 2, g.peers(r));
    }));
    for (const res of results) {
      expect(res.status).toBe('rejected');
      expect(String((res as PromiseRejectedResult).reason)).toMatch(/optimizer shards of rank 1 are not in .* as rank 0 sees it[\s\S]*filesystem shared by every node/);
    }
    expect(latestCheckpoint(run)).toBeNull();
  });
});
