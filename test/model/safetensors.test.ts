import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  readSafetensors,
  readSafetensorsHeader,
  SAFETENSORS_DTYPE_BYTES,
  SafetensorsError,
  writeSafetensors,
  type SafetensorsDtype,
  type TensorToWrite,
} from '../../src/model/index.js';
import { cleanupTempDirs, FIXTURES, inputsJson, ints, rng, tempDir, thrown } from './fixtures.js';

afterAll(cleanupTempDirs);

/** Builds a safetensors file from a header object and a data length (bytes filled with a pattern). */
function rawFile(header: unknown, dataBytes: number, opts: { headerText?: string; lengthField?: bigint } = {}): Buffer {
  const json = Buffer.from(opts.headerText ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lengthField ?? BigInt(json.length));
  const data = Buffer.alloc(dataBytes);
  for (let i = 0; i < dataBytes; i++) data[i] = i & 0xff;
  return Buffer.concat([len, json, data]);
}

function stError(bytes: Buffer): SafetensorsError {
  const d = tempDir();
  const f = join(d, 'w.safetensors');
  writeFileSync(f, bytes);
  const e = thrown(() => readSafetensorsHeader(f));
  expect(e).toBeInstanceOf(SafetensorsError);
  expect(e.message).toContain(f);
  return e as SafetensorsError;
}

describe('safetensors: reading the fixtures', () => {
  it('reads expected.safetensors (I64, F32, U8) with the shapes inputs.json lists', () => {
    const file = join(FIXTURES, 'tiny-a', 'expected.safetensors');
    const h = readSafetensorsHeader(file);
    expect(h.metadata.config).toBe('tiny-a');
    const listed = inputsJson('tiny-a').tensors as Record<string, { dtype: string; shape: number[] }>;
    expect(h.tensors.length).toBe(Object.keys(listed).length);
    const all = readSafetensors(file);
    const dtypeName: Record<string, string> = { I64: 'int64', F32: 'float32', U8: 'uint8' };
    for (const [name, info] of Object.entries(listed)) {
      const t = all.get(name)!;
      expect(t.shape).toEqual(info.shape);
      expect(dtypeName[t.dtype]).toBe(info.dtype);
      expect(t.data.length).toBe(info.shape.reduce((a, b) => a * b, 1));
    }
    const ids = all.get('single.input_ids')!;
    expect(ids.data).toBeInstanceOf(BigInt64Array);
    expect(ints(ids)).toEqual(inputsJson('tiny-a').cases.single.input_ids);
    expect(all.get('resize.resized_u8')!.data).toBeInstanceOf(Uint8Array);
    const loss = all.get('single.loss')!.data as Float32Array;
    expect(loss).toBeInstanceOf(Float32Array);
    expect(Number.isFinite(loss[0]!) && loss[0]! > 0).toBe(true);
  });

  it('reads a subset by name and names a tensor that is not there', () => {
    const file = join(FIXTURES, 'tiny-a', 'model.safetensors');
    const m = readSafetensors(file, ['model.norm.weight']);
    expect([...m.keys()]).toEqual(['model.norm.weight']);
    const e = thrown(() => readSafetensors(file, ['lm_head.weight']));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toContain('lm_head.weight');
  });
});

describe('safetensors: writer round trip', () => {
  it('writes every dtype with metadata, aligned, atomically, and reads it back', () => {
    const r = rng(1);
    const n = 7;
    const f32 = Float32Array.from({ length: n }, () => r() * 4 - 2);
    const tensors: Record<string, TensorToWrite> = {
      f64: { dtype: 'F64', shape: [n], data: Float64Array.from({ length: n }, () => r() - 0.5) },
      f32: { dtype: 'F32', shape: [1, n], data: f32 },
      f16: { dtype: 'F16', shape: [n], data: f32 },
      bf16: { dtype: 'BF16', shape: [n], data: f32 },
      i64: { dtype: 'I64', shape: [n], data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * -123456789012n) },
      u64: { dtype: 'U64', shape: [n], data: BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 2n ** 60n) },
      i32: { dtype: 'I32', shape: [n], data: Int32Array.from({ length: n }, (_, i) => -i * 1e8) },
      u32: { dtype: 'U32', shape: [n], data: Uint32Array.from({ length: n }, (_, i) => i * 6e8) },
      i16: { dtype: 'I16', shape: [n], data: Int16Array.from({ length: n }, (_, i) => -i * 4000) },
      u16: { dtype: 'U16', shape: [n], data: Uint16Array.from({ length: n }, (_, i) => i * 9000) },
      i8: { dtype: 'I8', shape: [n], data: Int8Array.from({ length: n }, (_, i) => -i * 18) },
      u8: { dtype: 'U8', shape: [n], data: Uint8Array.from({ length: n }, (_, i) => i * 36) },
      bool: { dtype: 'BOOL', shape: [n], data: Uint8Array.from({ length: n }, (_, i) => i & 1) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      fromNumbers: { dtype: 'I64', shape: [2, 2], data: [1, -2, 3, 2 ** 40] },
    };
    const d = tempDir();
    const file = join(d, 'all.safetensors');
    writeSafetensors(file, tensors, { format: 'pt', note: 'ünïcode' });
    expect(readdirSync(d)).toEqual(['all.safetensors']); // no temp file left behind
    const h = readSafetensorsHeader(file);
    expect(h.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    expect(h.dataOffset % 8).toBe(0);
    for (const t of h.tensors) expect(t.byteOffset % SAFETENSORS_DTYPE_BYTES[t.dtype]).toBe(0);
    const back = readSafetensors(file);
    expect(back.size).toBe(Object.keys(tensors).length);
    for (const name of ['f64', 'f32', 'i64', 'u64', 'i32', 'u32', 'i16', 'u16', 'i8', 'u8', 'bool']) {
      expect(Array.from(back.get(name)!.data as ArrayLike<unknown>)).toEqual(Array.from(tensors[name]!.data as ArrayLike<unknown>));
      expect(back.get(name)!.dtype).toBe(tensors[name]!.dtype);
    }
    expect(back.get('f32')!.shape).toEqual([1, n]);
    expect(back.get('f16')!.data).toEqual(float16BitsToFloat32(float32ToFloat16Bits(f32)));
    expect(back.get('bf16')!.data).toEqual(bfloat16BitsToFloat32(float32ToBfloat16Bits(f32)));
    expect(back.get('empty')!.shape).toEqual([0, 3]);
    expect(ints(back.get('fromNumbers')!)).toEqual([1, -2, 3, 2 ** 40]);
  });

  it('replaces an existing file and leaves it untouched when writing fails', () => {
    const d = tempDir();
    const file = join(d, 'x.safetensors');
    writeSafetensors(file, { a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const before = readFileSync(file);
    expect(() => writeSafetensors(file, { a: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2]) } })).toThrow(/shape \[3\] has 3 elements, data has 2/);
    expect(() => writeSafetensors(file, { a: { dtype: 'I32', shape: [1], data: [1.5] } })).toThrow(/not an integer/);
    expect(() => writeSafetensors(file, { __metadata__: { dtype: 'U8', shape: [0], data: [] } })).toThrow(/invalid tensor name/);
    expect(() => writeSafetensors(file, { a: { dtype: 'F32', shape: [1], data: new BigInt64Array(1) } })).toThrow(TypeError);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(d)).toEqual(['x.safetensors']);
    writeSafetensors(file, { b: { dtype: 'U8', shape: [1], data: [7] } });
    expect([...readSafetensors(file).keys()]).toEqual(['b']);
  });
});

describe('safetensors: header validation', () => {
  const ok = { a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] }, b: { dtype: 'I64', shape: [1], data_offsets: [16, 24] } };

  it('accepts a well-formed hand-made file (padding spaces after the JSON)', () => {
    const text = JSON.stringify(ok) + '   ';
    const d = tempDir();
    const f = join(d, 'ok.safetensors');
    writeFileSync(f, rawFile(null, 24, { headerText: text }));
    const h = readSafetensorsHeader(f);
    expect(h.tensors.map((t) => [t.name, t.byteOffset, t.byteLength])).toEqual([
      ['a', 8 + text.length, 16],
      ['b', 8 + text.length + 16, 8],
    ]);
  });

  it('rejects bad header lengths, bytes and JSON', () => {
    expect(stError(Buffer.alloc(5)).message).toMatch(/5 bytes, shorter than the 8-byte header length field/);
    expect(stError(rawFile(ok, 24, { lengthField: 1n << 40n })).message).toMatch(/header length 1099511627776 is not in/);
    expect(stError(rawFile(ok, 0, { lengthField: 5000n })).message).toMatch(/truncated inside its header/);
    expect(stError(rawFile(null, 0, { headerText: '[1, 2, 3]' })).message).toMatch(/does not start with '\{'/);
    expect(stError(rawFile(null, 0, { headerText: '{"a": ' })).message).toMatch(/not valid JSON/);
    const badUtf8 = rawFile(null, 0, { headerText: '{"a":"xx"}' });
    badUtf8[8 + 6] = 0xff;
    expect(stError(badUtf8).message).toMatch(/not valid UTF-8/);
    expect(stError(rawFile({ __metadata__: { n: 1 } }, 0)).message).toMatch(/__metadata__.n is not a string/);
  });

  it('rejects bad entries naming the tensor', () => {
    let e = stError(rawFile({ w: { dtype: 'F13', shape: [1], data_offsets: [0, 4] } }, 4));
    expect(e.tensor).toBe('w');
    expect(e.message).toMatch(/unknown dtype "F13"/);
    e = stError(rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8));
    expect(e.message).toMatch(/shape \[3\] × F32 needs 12 bytes, but data_offsets \[0, 8\] span 8/);
    e = stError(rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4));
    expect(e.message).toMatch(/not a list of non-negative integers/);
    e = stError(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4));
    expect(e.message).toMatch(/data_offsets \[4,0\] is not/);
  });

  it('rejects overlapping offsets, gaps and trailing bytes', () => {
    let e = stError(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12));
    expect(e.tensor).toBe('b');
    expect(e.message).toMatch(/overlap tensor a/);
    e = stError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, 12));
    expect(e.message).toMatch(/gap after a/);
    e = stError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8));
    expect(e.message).toMatch(/gap after the header/);
    e = stError(rawFile(ok, 30));
    expect(e.message).toMatch(/6 bytes after the last tensor/);
  });

  it('a truncated file names the first tensor whose data is missing', () => {
    const src = join(FIXTURES, 'tiny-a', 'model.safetensors');
    const h = readSafetensorsHeader(src);
    const bytes = readFileSync(src);
    const d = tempDir();
    const cases: [number, string][] = [
      [bytes.length - 1, h.tensors[h.tensors.length - 1]!.name],
      // cut inside the 10th tensor: that one is named, not the last
      [h.tensors[9]!.byteOffset + 3, h.tensors[9]!.name],
      // cut exactly at the end of the 10th tensor: the 11th is the first with missing data
      [h.tensors[9]!.byteOffset + h.tensors[9]!.byteLength, h.tensors[10]!.name],
    ];
    for (const [len, name] of cases) {
      const f = join(d, `cut-${len}.safetensors`);
      writeFileSync(f, bytes.subarray(0, len));
      const e = thrown(() => readSafetensorsHeader(f)) as SafetensorsError;
      expect(e).toBeInstanceOf(SafetensorsError);
      expect(e.file).toBe(f);
      expect(e.tensor).toBe(name);
      expect(e.message).toContain(`${f}: tensor ${name}: file is truncated: it has ${len} bytes`);
    }
    const whole = join(d, 'whole.safetensors');
    copyFileSync(src, whole);
    expect(readSafetensorsHeader(whole).tensors.length).toBe(56);
  });
});

describe('fp16 / bf16 conversions', () => {
  /** The float32 value nearest to x among decode(bits - 1), decode(bits), decode(bits + 1). */
  function checkNearest(x: number, bits: number, decode: (b: Uint16Array) => Float32Array, what: string): void {
    const here = decode(Uint16Array.of(bits))[0]!;
    const errHere = Math.abs(here - x);
    const mag = bits & 0x7fff;
    for (const nb of [mag - 1, mag + 1]) {
      if (nb < 0 || nb > 0x7fff) continue;
      const other = decode(Uint16Array.of((bits & 0x8000) | nb))[0]!;
      if (!Number.isFinite(other)) continue;
      const errOther = Math.abs(other - x);
      if (errOther < errHere || (errOther === errHere && (bits & 1) === 1)) {
        throw new Error(`${what}(${x}) = 0x${bits.toString(16)} (${here}) but 0x${nb.toString(16)} (${other}) is nearer or the even tie`);
      }
    }
  }

  it('decode → encode is the identity on all 65536 bit patterns (NaN stays NaN)', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const [dec, enc, what] of [
      [float16BitsToFloat32, float32ToFloat16Bits, 'f16'],
      [bfloat16BitsToFloat32, float32ToBfloat16Bits, 'bf16'],
    ] as const) {
      const f = dec(all);
      const back = enc(f);
      let mismatches = 0;
      for (let i = 0; i < 65536; i++) {
        if (Number.isNaN(f[i])) {
          if (!Number.isNaN(dec(Uint16Array.of(back[i]!))[0])) mismatches++;
        } else if (back[i] !== i) mismatches++;
      }
      expect(mismatches, what).toBe(0);
    }
    // the decoders against the definitions
    expect(Array.from(float16BitsToFloat32(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00)))).toEqual([1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity]);
    expect(Array.from(bfloat16BitsToFloat32(Uint16Array.of(0x3f80, 0xc000, 0x7f7f, 0x0001)))).toEqual([1, -2, 3.3895313892515355e38, 9.183549615799121e-41]);
  });

  it('encodes to the nearest value with ties to even, overflow to infinity', () => {
    const r = rng(2);
    const xs: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const e = Math.floor(r() * 60) - 30;
      xs.push(Math.fround((r() < 0.5 ? -1 : 1) * (1 + r()) * 2 ** e));
    }
    for (let i = 0; i < 2000; i++) xs.push(Math.fround((r() - 0.5) * 2 ** -20)); // f16 subnormals and underflow
    const f = Float32Array.from(xs);
    const h = float32ToFloat16Bits(f);
    const b = float32ToBfloat16Bits(f);
    for (let i = 0; i < f.length; i++) {
      const x = f[i]!;
      if (Math.abs(x) < 65504) checkNearest(x, h[i]!, float16BitsToFloat32, 'f16');
      checkNearest(x, b[i]!, bfloat16BitsToFloat32, 'bf16');
    }
    const ties = Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 65520, 65519, -(2 ** -26));
    expect(Array.from(float16BitsToFloat32(float32ToFloat16Bits(ties)))).toEqual([1, 1 + 2 ** -9, 0, 2 ** -23, Infinity, 65504, -0]);
    const bties = Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4028234663852886e38);
    expect(Array.from(bfloat16BitsToFloat32(float32ToBfloat16Bits(bties)))).toEqual([1, 1 + 2 ** -6, Infinity]);
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits([NaN]))[0])).toBe(true);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits([NaN]))[0])).toBe(true);
  });

  it('reports every dtype size', () => {
    const sizes: Record<SafetensorsDtype, number> = { BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, I16: 2, F16: 2, BF16: 2, U32: 4, I32: 4, F32: 4, U64: 8, I64: 8, F64: 8 };
    expect(SAFETENSORS_DTYPE_BYTES).toEqual(sizes);
  });
});
