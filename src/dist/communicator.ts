/**
 * Collective communication between the ranks of a data-parallel job (Gloo on CPU, NCCL on GPU), wrapping the
 * native CommunicatorHandle. Every rank must call the same operations in the same order. Operations work in place
 * on the given typed array and resolve once it holds the result; do not touch the array before that. A rank that
 * dies or stops calling collectives makes the others reject within `timeoutMs`, with a message naming the operation.
 */
import { native, type NativeCommunicatorHandle } from '../native/binding.js';

export type CommBackend = 'gloo' | 'nccl';
export type ReduceOpName = 'sum' | 'max' | 'min';

/** Where and how the ranks meet (torchrun's MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE). */
export interface CommunicatorOptions {
  /** 'gloo' (CPU, default) or 'nccl' (GPU buffers; needs libnccl.so.2 and a CUDA build). */
  backend?: CommBackend;
  rank: number;
  worldSize: number;
  /** Address of rank 0, which serves the rendezvous store. Default 127.0.0.1. */
  masterAddr?: string;
  /** Port of the rendezvous store on rank 0. Default 29500. */
  masterPort?: number;
  /** Rendezvous and per-collective timeout in milliseconds. Default 300000 (5 minutes). */
  timeoutMs?: number;
  /** CUDA device of this rank (nccl only). Default 0. */
  cudaDevice?: number;
  /** Local address to bind (gloo). Default: the local address that routes to masterAddr. */
  localAddr?: string;
}

function intField(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${field} must be a number, got ${typeof v}`);
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${field} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

function checkCounts(op: string, buf: Float32Array, counts: readonly number[], world: number): number[] {
  if (!Array.isArray(counts)) throw new TypeError(`${op}: counts must be an array of ${world} integers`);
  if (counts.length !== world) throw new RangeError(`${op}: counts has ${counts.length} entries, expected worldSize=${world}`);
  let sum = 0;
  counts.forEach((c, i) => {
    if (typeof c !== 'number') throw new TypeError(`${op}: counts[${i}] must be a number`);
    if (!Number.isSafeInteger(c) || c < 0) throw new RangeError(`${op}: counts[${i}] must be a non-negative integer, got ${c}`);
    sum += c;
  });
  if (sum !== buf.length) throw new RangeError(`${op}: counts sum to ${sum} but buf has length ${buf.length}`);
  return [...counts];
}

export class Communicator {
  #handle: NativeCommunicatorHandle | undefined;
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: CommBackend;

  private constructor(handle: NativeCommunicatorHandle) {
    this.#handle = handle;
    this.rank = handle.rank;
    this.worldSize = handle.worldSize;
    this.backend = handle.backend;
  }

  /**
   * Joins the job: rank 0 serves the rendezvous store at masterAddr:masterPort, every rank connects (retrying until
   * timeoutMs) and the backend connects all ranks. Resolves when every rank has joined.
   */
  static async create(opts: CommunicatorOptions): Promise<Communicator> {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('Communicator.create expects an options object');
    const backend = opts.backend ?? 'gloo';
    if (backend !== 'gloo' && backend !== 'nccl') throw new RangeError(`backend must be 'gloo' or 'nccl', got '${String(backend)}'`);
    const worldSize = intField('worldSize', opts.worldSize, 1, 1 << 20);
    const rank = intField('rank', opts.rank, 0, worldSize - 1);
    const masterAddr = opts.masterAddr ?? '127.0.0.1';
    if (typeof masterAddr !== 'string' || masterAddr.length === 0) throw new TypeError('masterAddr must be a non-empty string');
    const masterPort = intField('masterPort', opts.masterPort ?? 29500, 1, 65535);
    const timeoutMs = opts.timeoutMs ?? 300_000;
    if (typeof timeoutMs !== 'number') throw new TypeError('timeoutMs must be a number');
    if (!(timeoutMs > 0) || timeoutMs > 1e9) throw new RangeError(`timeoutMs must be in (0, 1e9], got ${timeoutMs}`);
    const cudaDevice = intField('cudaDevice', opts.cudaDevice ?? 0, 0, 1024);
    if (opts.localAddr !== undefined && (typeof opts.localAddr !== 'string' || opts.localAddr.length === 0)) {
      throw new TypeError('localAddr must be a non-empty string when given');
    }
    const handle = await native().createCommunicator({
      backend, rank, worldSize, masterAddr, masterPort, timeoutMs, cudaDevice,
      ...(opts.localAddr !== undefined ? { localAddr: opts.localAddr } : {}),
    });
    return new Communicator(handle);
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** The native handle, for native code that queues collectives on this communicator's thread itself (ZeroAdamW's bucketed gradient reduction). */
  get nativeHandle(): NativeCommunicatorHandle {
    return this.#live('nativeHandle');
  }

  #live(op: string): NativeCommunicatorHandle {
    if (!this.#handle) throw new Error(`${op}: this communicator has been disposed; create a new one`);
    return this.#handle;
  }

  /** Elementwise sum (default), max or min over ranks; every rank ends with the same values. */
  async allReduce(buf: Float32Array | Float64Array, op: ReduceOpName = 'sum'): Promise<void> {
    if (!(buf instanceof Float32Array) && !(buf instanceof Float64Array)) throw new TypeError('allReduce: buf must be a Float32Array or Float64Array');
    if (op !== 'sum' && op !== 'max' && op !== 'min') throw new RangeError(`allReduce: op must be 'sum', 'max' or 'min', got '${String(op)}'`);
    await this.#live('allReduce').allReduce(buf, op);
  }

  /**
   * buf holds sum(counts) values laid out rank by rank; afterwards this rank's slice holds the sum over ranks of that
   * slice (the other slices hold unspecified values).
   */
  async reduceScatter(buf: Float32Array, counts: readonly number[]): Promise<void> {
    if (!(buf instanceof Float32Array)) throw new TypeError('reduceScatter: buf must be a Float32Array');
    const c = checkCounts('reduceScatter', buf, counts, this.worldSize);
    await this.#live('reduceScatter').reduceScatter(buf, c);
  }

  /** Each rank contributes its own slice of buf (laid out rank by rank); afterwards every rank holds all slices. */
  async allGather(buf: Float32Array, counts: readonly number[]): Promise<void> {
    if (!(buf instanceof Float32Array)) throw new TypeError('allGather: buf must be a Float32Array');
    const c = checkCounts('allGather', buf, counts, this.worldSize);
    await this.#live('allGather').allGather(buf, c);
  }

  /** Every rank ends with root's buf. */
  async broadcast(buf: Float32Array | Uint8Array, root: number): Promise<void> {
    if (!(buf instanceof Float32Array) && !(buf instanceof Uint8Array)) throw new TypeError('broadcast: buf must be a Float32Array or Uint8Array');
    intField('broadcast: root', root, 0, this.worldSize - 1);
    await this.#live('broadcast').broadcast(buf, root);
  }

  /** Resolves once every rank has entered the barrier. */
  async barrier(): Promise<void> {
    await this.#live('barrier').barrier();
  }

  /** Frees the communicator after queued operations finish. Idempotent; later operations throw. */
  async dispose(): Promise<void> {
    const h = this.#handle;
    this.#handle = undefined;
    if (h) await h.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
