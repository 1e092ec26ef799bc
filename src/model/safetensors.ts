/**
 * safetensors files: header parsing with full validation, a typed-array reader (for small files and tests),
 * an atomic writer, and the fp16 / bf16 ⇄ fp32 conversions.
 *
 * Format: u64 little-endian header length N, N bytes of UTF-8 JSON starting with '{' (space-padded),
 * then the data buffer. The JSON maps tensor name → {dtype, shape, data_offsets: [begin, end)} with offsets
 * relative to the data buffer, plus an optional "__metadata__" string→string map. The offsets must tile
 * the data buffer exactly (no gaps, no overlaps), and the buffer must end where the file ends: a shorter file
 * is truncated and is reported with the first tensor whose bytes are missing.
 *
 * Large checkpoints are never read here: readSafetensorsHeader() reads only the header, and the weight plan
 * (weights.ts) hands the absolute byte ranges to the native loader, which memory-maps the file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

import { writeFileAtomic } from '../util/atomic-file.js';
import { VlmGrpoError } from '../errors.js';

/** A safetensors file that cannot be used; `tensor` is set when one tensor is at fault. */
export class SafetensorsError extends VlmGrpoError {
  readonly file: string;
  readonly tensor: string | null;

  constructor(file: string, tensor: string | null, message: string, remedy?: string) {
    super(
      'ERR_SAFETENSORS',
      `${file}: ${tensor !== null ? `tensor ${tensor}: ` : ''}${message}`,
      remedy ?? 'The file is damaged or incomplete: download or export it again.',
    );
    this.name = 'SafetensorsError';
    this.file = file;
    this.tensor = tensor;
  }
}

/** Every dtype of the safetensors format, with its element size in bytes. */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly numel: number;
  /** [begin, end) relative to the start of the data buffer, as written in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute byte offset of the first element in the file (8 + header length + begin). */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  /** N: length of the JSON header in bytes. */
  readonly headerLength: number;
  /** 8 + N: absolute offset of the data buffer. */
  readonly dataOffset: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in data-buffer order. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly byName: ReadonlyMap<string, SafetensorsTensorInfo>;
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, s);
}

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/**
 * Reads and validates the header of a safetensors file (header bytes only; tensor data is not read).
 * Throws SafetensorsError naming the file (and the tensor where one is at fault) for: a file shorter than
 * its header, a bad header length, invalid UTF-8 or JSON, an unknown dtype, a shape that disagrees with the
 * byte range, offsets that overlap or leave gaps, a truncated data buffer (naming the first tensor whose
 * bytes are missing) or trailing bytes after the last tensor.
 */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new SafetensorsError(file, null, `cannot open: ${(e as Error).message}`, 'Check the path and the file permissions.');
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) throw new SafetensorsError(file, null, `file is ${fileSize} bytes, shorter than the 8-byte header length field (truncated)`);
    const n64 = readExactly(fd, 8, 0).readBigUInt64LE(0);
    if (n64 < 2n || n64 > BigInt(MAX_HEADER_BYTES)) {
      throw new SafetensorsError(file, null, `header length ${n64} is not in [2, ${MAX_HEADER_BYTES}]: not a safetensors file, or a damaged one`);
    }
    const headerLength = Number(n64);
    if (8 + headerLength > fileSize) {
      throw new SafetensorsError(file, null, `file is truncated inside its header: the header needs ${8 + headerLength} bytes, the file has ${fileSize}`);
    }
    const bytes = readExactly(fd, headerLength, 8);
    return parseHeaderBytes(file, bytes, headerLength, fileSize);
  } finally {
    closeSync(fd);
  }
}

function parseHeaderBytes(file: string, bytes: Buffer, headerLength: number, fileSize: number): SafetensorsHeader {
  if (bytes[0] !== 0x7b) throw new SafetensorsError(file, null, "header does not start with '{': not a safetensors file");
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SafetensorsError(file, null, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, null, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, null, 'header JSON is not an object');
  }
  const dataOffset = 8 + headerLength;
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; numel: number; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info)) throw new SafetensorsError(file, null, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, null, `__metadata__.${k} is not a string (${typeof v})`);
      }
      metadata = { ...(info as Record<string, string>) };
      continue;
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw new SafetensorsError(file, name, 'header entry is not an object');
    const { dtype, shape, data_offsets: off } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDtype(dtype)) {
      throw new SafetensorsError(file, name, `unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`);
    }
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && (s as number) >= 0)) {
      throw new SafetensorsError(file, name, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) || (off[0] as number) > (off[1] as number)) {
      throw new SafetensorsError(file, name, `data_offsets ${JSON.stringify(off)} is not [begin, end] with 0 ≤ begin ≤ end`);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const begin = off[0] as number;
    const end = off[1] as number;
    const want = numel * SAFETENSORS_DTYPE_BYTES[dtype];
    if (end - begin !== want) {
      throw new SafetensorsError(file, name, `shape [${(shape as number[]).join(', ')}] × ${dtype} needs ${want} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], numel, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expect = 0;
  let prev: string | null = null;
  for (const e of entries) {
    if (e.begin < expect) throw new SafetensorsError(file, e.name, `data_offsets [${e.begin}, ${e.end}] overlap tensor ${prev} (which ends at ${expect})`);
    if (e.begin > expect) throw new SafetensorsError(file, e.name, `data_offsets start at ${e.begin}, leaving a gap after ${prev ?? 'the header'} (which ends at ${expect})`);
    expect = e.end;
    prev = e.name;
  }
  const needed = dataOffset + expect;
  if (fileSize < needed) {
    const first = entries.find((e) => dataOffset + e.end > fileSize)!;
    throw new SafetensorsError(
      file,
      first.name,
      `file is truncated: it has ${fileSize} bytes but the header describes ${needed}; the data of tensor ${first.name} (bytes ${dataOffset + first.begin}..${dataOffset + first.end}) is missing${
        dataOffset + first.begin < fileSize ? ' in part' : ''
      } (and of every tensor after it)`,
    );
  }
  if (fileSize > needed) {
    throw new SafetensorsError(file, null, `file has ${fileSize - needed} bytes after the last tensor (header describes ${needed} bytes, file has ${fileSize})`);
  }
  const tensors: SafetensorsTensorInfo[] = entries.map((e) => ({
    name: e.name,
    dtype: e.dtype,
    shape: e.shape,
    numel: e.numel,
    dataOffsets: [e.begin, e.end] as const,
    byteOffset: dataOffset + e.begin,
    byteLength: e.end - e.begin,
  }));
  return { file, fileSize, headerLength, dataOffset, metadata, tensors, byName: new Map(tensors.map((t) => [t.name, t])) };
}

// ------------------------------------------------------------------------------------------------------------
// fp16 / bf16 conversions (round to nearest even, NaN stays NaN, overflow becomes ±inf)

let f16Table: Float32Array | null = null;

function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** IEEE half bits → float32 values. */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const t = f16ToF32Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}

/** float32 (or float64, first rounded to float32) values → IEEE half bits, round to nearest even. */
export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const x = u[i]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // Subnormal half: value = full_mantissa · 2^(e − 14) units of 2^-24.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      let r = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      if (rem > half || (rem === half && (r & 1) === 1)) r++;
      out[i] = sign | r;
      continue;
    }
    let r = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // a carry into the exponent is correct (up to inf)
    out[i] = sign | r;
  }
  return out;
}

/** bfloat16 bits → float32 values (the 16 bits are the high half of the float32). */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

/** float32 (or float64, first rounded to float32) values → bfloat16 bits, round to nearest even. */
export function float32ToBfloat16Bits(values: ArrayLike<number>): Uint16Array {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const x = u[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) out[i] = (x >>> 16) | 0x40;
    // (x + bias) >>> 16 without int32 wrap-around: the sum stays below 2^32 and the Uint16Array store truncates.
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) / 65536;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------------
// reader

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface LoadedTensor {
  readonly name: string;
  /** dtype in the file. */
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** F16 and BF16 become Float32Array; F32 Float32Array; F64 Float64Array; integers their own array type;
   *  BOOL and the 8-bit floats are returned as raw Uint8Array bytes. */
  readonly data: TensorData;
}

function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors typed-array reading/writing needs a little-endian host');
}

function decode(dtype: SafetensorsDtype, raw: Buffer): TensorData {
  // Copy into a fresh, aligned buffer: the raw slice's offset in the file need not be aligned.
  const ab = new ArrayBuffer(raw.length);
  new Uint8Array(ab).set(raw);
  switch (dtype) {
    case 'F32':
      return new Float32Array(ab);
    case 'F64':
      return new Float64Array(ab);
    case 'F16':
      return float16BitsToFloat32(new Uint16Array(ab));
    case 'BF16':
      return bfloat16BitsToFloat32(new Uint16Array(ab));
    case 'I8':
      return new Int8Array(ab);
    case 'I16':
      return new Int16Array(ab);
    case 'U16':
      return new Uint16Array(ab);
    case 'I32':
      return new Int32Array(ab);
    case 'U32':
      return new Uint32Array(ab);
    case 'I64':
      return new BigInt64Array(ab);
    case 'U64':
      return new BigUint64Array(ab);
    case 'U8':
    case 'BOOL':
    case 'F8_E4M3':
    case 'F8_E5M2':
      return new Uint8Array(ab);
  }
}

/**
 * Reads tensors of a (small) safetensors file into typed arrays, converting F16/BF16 to float32.
 * `names` limits the read to those tensors (each must exist). The header is validated first.
 */
export function readSafetensors(file: string, names?: readonly string[]): Map<string, LoadedTensor> {
  assertLittleEndianHost();
  const header = readSafetensorsHeader(file);
  const want = names ? names.map((n) => {
    const t = header.byName.get(n);
    if (!t) throw new SafetensorsError(file, n, 'no such tensor in the file');
    return t;
  }) : header.tensors;
  const out = new Map<string, LoadedTensor>();
  const fd = openSync(file, 'r');
  try {
    for (const t of want) {
      const raw = readExactly(fd, t.byteLength, t.byteOffset);
      if (raw.length !== t.byteLength) throw new SafetensorsError(file, t.name, `file changed while reading: got ${raw.length} of ${t.byteLength} bytes`);
      out.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, data: decode(t.dtype, raw) });
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------------
// writer

export interface TensorToWrite {
  /** dtype to store. F16/BF16 accept float values (rounded to nearest even) or Uint16Array raw bits. */
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: TensorData | readonly number[];
}

function encode(file: string, name: string, t: TensorToWrite, numel: number): Uint8Array {
  const { dtype, data } = t;
  if (data.length !== numel) {
    throw new RangeError(`${file}: tensor ${name}: shape [${t.shape.join(', ')}] has ${numel} elements, data has ${data.length}`);
  }
  const isBig = data instanceof BigInt64Array || data instanceof BigUint64Array;
  const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const numbers = (): ArrayLike<number> => {
    if (isBig) throw new TypeError(`${file}: tensor ${name}: ${dtype} cannot be written from a ${data.constructor.name}`);
    return data as ArrayLike<number>;
  };
  switch (dtype) {
    case 'F32':
      return bytesOf(data instanceof Float32Array ? data : Float32Array.from(numbers()));
    case 'F64':
      return bytesOf(data instanceof Float64Array ? data : Float64Array.from(numbers()));
    case 'F16':
      return bytesOf(data instanceof Uint16Array ? data : float32ToFloat16Bits(numbers()));
    case 'BF16':
      return bytesOf(data instanceof Uint16Array ? data : float32ToBfloat16Bits(numbers()));
    case 'I64':
    case 'U64': {
      const Ctor = dtype === 'I64' ? BigInt64Array : BigUint64Array;
      if (data instanceof Ctor) return bytesOf(data);
      const out = new Ctor(numel);
      for (let i = 0; i < numel; i++) {
        const v = (data as ArrayLike<number | bigint>)[i]!;
        if (typeof v === 'number' && !Number.isInteger(v)) throw new RangeError(`${file}: tensor ${name}: element ${i} (${v}) is not an integer`);
        out[i] = BigInt(v);
      }
      return bytesOf(out);
    }
    default: {
      const Ctors = { I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array, F8_E4M3: Uint8Array, F8_E5M2: Uint8Array, I16: Int16Array, U16: Uint16Array, I32: Int32Array, U32: Uint32Array } as const;
      const Ctor = Ctors[dtype];
      if (data instanceof Ctor) return bytesOf(data);
      const src = numbers();
      for (let i = 0; i < numel; i++) {
        if (!Number.isInteger(src[i])) throw new RangeError(`${file}: tensor ${name}: element ${i} (${src[i]}) is not an integer`);
      }
      return bytesOf(Ctor.from(src));
    }
  }
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary file in the same folder, which is
 * fsynced and renamed over `file`, so readers never see a half-written file.
 * Tensors are laid out by element size (largest first), then name, so every tensor is naturally aligned
 * (the header is space-padded to a multiple of 8).
 */
export function writeSafetensors(
  file: string,
  tensors: ReadonlyMap<string, TensorToWrite> | Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  assertLittleEndianHost();
  const list: [string, TensorToWrite][] =
    tensors instanceof Map ? [...(tensors as ReadonlyMap<string, TensorToWrite>).entries()] : Object.entries(tensors as Record<string, TensorToWrite>);
  const encoded: { name: string; dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array }[] = [];
  for (const [name, t] of list) {
    if (name.length === 0 || name === '__metadata__') throw new RangeError(`${file}: invalid tensor name ${JSON.stringify(name)}`);
    if (!isDtype(t.dtype)) throw new RangeError(`${file}: tensor ${name}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!t.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) throw new RangeError(`${file}: tensor ${name}: bad shape ${JSON.stringify(t.shape)}`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    encoded.push({ name, dtype: t.dtype, shape: [...t.shape], bytes: encode(file, name, t, numel) });
  }
  encoded.sort((a, b) => SAFETENSORS_DTYPE_BYTES[b.dtype] - SAFETENSORS_DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const e of encoded) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.length] };
    off += e.bytes.length;
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`${file}: metadata ${k} must be a string, got ${typeof v}`);
    }
    header.__metadata__ = { ...metadata };
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));

  writeFileAtomic(file, [len, json, ...encoded.map((e) => e.bytes)]);
}
