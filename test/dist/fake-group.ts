/**
 * N "ranks" as concurrent async calls in one process, for unit tests of the trainer's exchanges and the sharded
 * checkpoint without processes or sockets: barrier, elementwise sums (double) and all-gather (a byte copy, like
 * the real backends) meet when all N ranks have called.
 */
import type { ShardedCheckpointPeers } from '../../src/checkpoint/checkpoint.js';
import type { Collectives } from '../../src/dist/gather.js';

export class FakeGroup {
  #pending: { kind: string; rank: number; buf: Float32Array | Float64Array | null; counts: number[]; done: () => void }[] = [];
  constructor(readonly world: number) {}

  #meet(kind: string, rank: number, buf: Float32Array | Float64Array | null, counts: number[] = []): Promise<void> {
    return new Promise((resolve) => {
      this.#pending.push({ kind, rank, buf, counts, done: resolve });
      if (this.#pending.length < this.world) return;
      const all = this.#pending.sort((a, b) => a.rank - b.rank);
      this.#pending = [];
      if (new Set(all.map((p) => p.kind)).size !== 1) throw new Error(`ranks called different collectives: ${all.map((p) => p.kind).join(', ')}`);
      if (kind === 'sum' || kind === 'max') {
        const n = all[0]!.buf!.length;
        const out = new Float64Array(n);
        for (let i = 0; i < n; i++) out[i] = kind === 'sum' ? all.reduce((a, p) => a + p.buf![i]!, 0) : Math.max(...all.map((p) => p.buf![i]!));
        for (const p of all) p.buf!.set(out);
      } else if (kind === 'gather') {
        const counts = all[0]!.counts;
        let off = 0;
        counts.forEach((c, r) => {
          const src = new Uint8Array(all[r]!.buf!.buffer, all[r]!.buf!.byteOffset + off * 4, c * 4);
          for (const p of all) new Uint8Array(p.buf!.buffer, p.buf!.byteOffset + off * 4, c * 4).set(src);
          off += c;
        });
      }
      for (const p of all) p.done();
    });
  }

  comm(rank: number): Collectives {
    return {
      rank, worldSize: this.world,
      allReduce: (buf, op = 'sum') => this.#meet(op === 'max' ? 'max' : 'sum', rank, buf),
      allGather: (buf, counts) => this.#meet('gather', rank, buf, counts),
      barrier: () => this.#meet('barrier', rank, null),
    };
  }

  peers(rank: number): ShardedCheckpointPeers {
    return {
      rank, world: this.world,
      barrier: () => this.#meet('barrier', rank, null),
      sum: async (values) => {
        const b = Float64Array.from(values);
        await this.#meet('sum', rank, b);
        return Array.from(b);
      },
    };
  }
}
