/**
 * One rank of test/dist-communicator.test.ts: joins through the env (RANK, WORLD_SIZE, MASTER_PORT), runs every
 * collective on deterministic random data and prints the results as one JSON line for the parent to check.
 */
import { Communicator } from '../../src/dist/communicator.js';
import { countLayouts, rankData, rankEnv, toB64 } from './comm-data.js';

const { rank, world, port, seed } = rankEnv();
const comm = await Communicator.create({ rank, worldSize: world, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 20_000 });
const out: Record<string, unknown> = { rank, worldSize: comm.worldSize, backend: comm.backend };

const N = 1537;
for (const op of ['sum', 'max', 'min'] as const) {
  const a = Float32Array.from(rankData(seed, rank, 1, N));
  await comm.allReduce(a, op);
  out[`allReduce32_${op}`] = toB64(a);
}
const d = rankData(seed, rank, 2, N);
await comm.allReduce(d);
out.allReduce64_sum = toB64(d);

countLayouts(world).forEach((counts, li) => (out[`layout${li}`] = counts));
let li = 0;
for (const counts of countLayouts(world)) {
  const n = counts.reduce((x, y) => x + y, 0);
  const rs = Float32Array.from(rankData(seed, rank, 10 + li, n));
  await comm.reduceScatter(rs, counts);
  out[`reduceScatter${li}`] = toB64(rs);
  // all-gather: garbage everywhere except this rank's own slice
  const ag = Float32Array.from(rankData(seed, rank + 100, 20 + li, n));
  const mine = rankData(seed, rank, 20 + li, n);
  let off = 0;
  for (let r = 0; r < rank; r++) off += counts[r] ?? 0;
  for (let i = off; i < off + (counts[rank] ?? 0); i++) ag[i] = mine[i] ?? NaN;
  await comm.allGather(ag, counts);
  out[`allGather${li}`] = toB64(ag);
  li++;
}

const b = Float32Array.from(rankData(seed, rank, 30, 333));
await comm.broadcast(b, world - 1);
out.broadcast32 = toB64(b);
const bytes = Uint8Array.from({ length: 17 }, (_, i) => (rank * 31 + i) & 0xff);
await comm.broadcast(bytes, 0);
out.broadcast8 = toB64(bytes);

// Several operations queued without awaiting in between still run in submission order.
const q = [Float32Array.from([rank + 1]), Float32Array.from([(rank + 1) * 10])];
await Promise.all([comm.allReduce(q[0]!), comm.allReduce(q[1]!, 'max'), comm.barrier()]);
out.queued = [q[0]![0], q[1]![0]];

await comm.barrier();
await comm.dispose();
await comm.dispose(); // idempotent
process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
