/**
 * What the data-parallel trainer exchanges besides gradients, on top of the communicator's float collectives:
 * byte blobs and JSON values gathered from every rank (rollout texts, rewards, token ids), and sums of a few
 * statistics in double precision. Bytes travel bit for bit: they are viewed as float32 words and all-gathered,
 * which is a pure copy in every backend (no arithmetic touches them, and no JS code reads them as floats, so NaN
 * bit patterns cannot be canonicalised).
 */

/** The part of the communicator (src/dist/communicator.ts) the trainer's exchanges need. */
export interface Collectives {
  readonly rank: number;
  readonly worldSize: number;
  allReduce(buf: Float32Array | Float64Array, op?: 'sum' | 'max' | 'min'): Promise<unknown>;
  allGather(buf: Float32Array, counts: number[]): Promise<unknown>;
  barrier(): Promise<unknown>;
}

/** Every rank's `bytes`, in rank order (a copy for the own rank too). */
export async function allGatherBytes(comm: Collectives, bytes: Uint8Array): Promise<Uint8Array[]> {
  const world = comm.worldSize;
  if (world === 1) return [bytes.slice()];
  // 1) lengths: one uint32 word per rank, gathered as its float32 bit pattern
  const lens = new Uint32Array(world);
  lens[comm.rank] = bytes.length;
  await comm.allGather(new Float32Array(lens.buffer), new Array<number>(world).fill(1));
  // 2) payloads, each padded to whole 4-byte words
  const words = Array.from(lens, (n) => Math.ceil(n / 4));
  const offsets: number[] = [];
  let total = 0;
  for (const w of words) {
    offsets.push(total);
    total += w;
  }
  const buf = new Uint8Array(total * 4);
  buf.set(bytes, offsets[comm.rank]! * 4);
  await comm.allGather(new Float32Array(buf.buffer), words);
  return Array.from(lens, (n, r) => buf.slice(offsets[r]! * 4, offsets[r]! * 4 + n));
}

const NONFINITE = '__vg_nonfinite__:';

/** JSON text that keeps NaN and ±Infinity (JSON itself would turn them into null). Finite doubles round-trip exactly. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? `${NONFINITE}${String(v)}` : v));
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text, (_k, v: unknown) => (typeof v === 'string' && v.startsWith(NONFINITE) ? Number(v.slice(NONFINITE.length)) : v)) as T;
}

/** Every rank's JSON value, in rank order. */
export async function allGatherJson<T>(comm: Collectives, value: T): Promise<T[]> {
  const parts = await allGatherBytes(comm, Buffer.from(toJson(value), 'utf8'));
  return parts.map((p) => fromJson<T>(Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('utf8')));
}

/** Elementwise sums over ranks, in double precision (identical on every rank). */
export async function allReduceSum(comm: Collectives, values: readonly number[]): Promise<number[]> {
  if (comm.worldSize === 1) return [...values];
  const buf = Float64Array.from(values);
  await comm.allReduce(buf, 'sum');
  return Array.from(buf);
}

/** True on every rank when `flag` is true on any rank (e.g. "stop after this step"). */
export async function anyRank(comm: Collectives, flag: boolean): Promise<boolean> {
  if (comm.worldSize === 1) return flag;
  const buf = Float64Array.of(flag ? 1 : 0);
  await comm.allReduce(buf, 'max');
  return buf[0]! > 0;
}
