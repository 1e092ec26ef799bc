/**
 * Minimal safetensors reader for tests (F32, F64, I64, I32, U8): 8-byte little-endian header length,
 * JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian data. The real loader
 * lives in the native core; this one only feeds fixture comparisons.
 */
import { readFileSync } from 'node:fs';

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface Tensor {
  dtype: string;
  shape: number[];
  data: TensorData;
}

const DTYPES: Record<string, { bytes: number; make: (buf: ArrayBuffer, off: number, n: number) => TensorData }> = {
  F32: { bytes: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  F64: { bytes: 8, make: (b, o, n) => new Float64Array(b, o, n) },
  I64: { bytes: 8, make: (b, o, n) => new BigInt64Array(b, o, n) },
  I32: { bytes: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  U8: { bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
};

/** Read every tensor of a .safetensors file into (copied, aligned) typed arrays. */
export function readSafetensors(file: string): Map<string, Tensor> {
  const bytes = readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const dataStart = 8 + headerLen;
  const out = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dt = DTYPES[entry.dtype];
    if (!dt) throw new Error(`${file}: tensor ${name} has unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    const n = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== n * dt.bytes) throw new Error(`${file}: tensor ${name} byte size mismatch`);
    // Copy into a fresh buffer so the typed array is aligned whatever the file offset.
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    out.set(name, { dtype: entry.dtype, shape: entry.shape, data: dt.make(copy.buffer, 0, n) });
  }
  return out;
}

/** Fetch a tensor by name or throw naming the file's tensors. */
export function getTensor(tensors: Map<string, Tensor>, name: string): Tensor {
  const t = tensors.get(name);
  if (!t) throw new Error(`tensor ${name} not found; have ${[...tensors.keys()].slice(0, 20).join(', ')}…`);
  return t;
}

/** The `__metadata__` string map of a .safetensors file ({} when absent). */
export function readSafetensorsMetadata(file: string): Record<string, string> {
  const bytes = readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as { __metadata__?: Record<string, string> };
  return header.__metadata__ ?? {};
}
