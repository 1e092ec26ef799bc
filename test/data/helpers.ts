/** Shared helpers of the data tests: temp folders, PNGs written with sharp, JSONL / Parquet writers, a weight-free processor. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import sharp from 'sharp';
import { ChatTemplate } from '../../src/processor/chat-template.js';
import { QwenTokenizer } from '../../src/processor/tokenizer.js';
import type { PromptProcessor } from '../../src/data/prepare.js';
import { tinyTokenizer, TINY_SPECIAL_IDS } from '../helpers/tiny-tokenizer.js';

/** A fresh temp folder and its cleanup. */
export function tempDir(prefix = 'vg-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random bytes (xorshift32), so images differ per seed. */
export function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/** PNG bytes of a w×h noise image. */
export async function pngBytes(width: number, height: number, seed: number): Promise<Uint8Array> {
  const buf = await sharp(Buffer.from(noise(width * height * 3, seed)), { raw: { width, height, channels: 3 } }).png().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Write a w×h noise PNG to `file` (folders created). */
export async function writePng(file: string, width: number, height: number, seed: number): Promise<string> {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, await pngBytes(width, height, seed));
  return file;
}

/** Write rows as JSON Lines (strings are written as raw lines, to make malformed lines). */
export function writeJsonl(file: string, rows: ReadonlyArray<unknown>): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return file;
}

const str = (name: string) => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
const bin = (name: string) => ({ name, type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' });

/** A verl / Ocean-R1 row for {@link writeVerlParquet}. */
export interface VerlRow {
  data_source: string;
  prompt: Array<{ role: string; content: string }>;
  images: Array<{ bytes: Uint8Array | null; path: string | null }> | null;
  ground_truth: string;
  reward_func: string;
  index: number;
}

/** Write verl rows with pyarrow's nested layout (list<struct>, struct columns). */
export function writeVerlParquet(file: string, rows: readonly VerlRow[]): string {
  const schema = [
    { name: 'root', num_children: 6 },
    str('data_source'),
    { name: 'prompt', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
    str('role'),
    str('content'),
    { name: 'images', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
    bin('bytes'),
    str('path'),
    str('ability'),
    { name: 'reward_model', repetition_type: 'OPTIONAL', num_children: 2 },
    str('style'),
    str('ground_truth'),
    { name: 'extra_info', repetition_type: 'OPTIONAL', num_children: 2 },
    { name: 'index', type: 'INT64', repetition_type: 'OPTIONAL' },
    str('reward_func'),
  ];
  const columnData = [
    { name: 'data_source', data: rows.map((r) => r.data_source) },
    { name: 'prompt', data: rows.map((r) => r.prompt) },
    { name: 'images', data: rows.map((r) => r.images) },
    { name: 'ability', data: rows.map(() => 'math') },
    { name: 'reward_model', data: rows.map((r) => ({ style: 'rule', ground_truth: r.ground_truth })) },
    { name: 'extra_info', data: rows.map((r) => ({ index: BigInt(r.index), reward_func: r.reward_func })) },
  ];
  const buf = parquetWriteBuffer({ columnData: columnData as never, schema: schema as never });
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, new Uint8Array(buf));
  return file;
}

/** An R1-V row as exported from an HF dataset: `image` is the Image feature struct {bytes, path} (or null). */
export interface R1vRow {
  image: { bytes: Uint8Array | null; path: string | null } | null;
  problem: string;
  solution: string;
  reward_func: string | null;
}

/** Write R1-V rows to Parquet (image as struct<bytes: binary, path: string>). */
export function writeR1vParquet(file: string, rows: readonly R1vRow[]): string {
  const schema = [
    { name: 'root', num_children: 4 },
    { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
    bin('bytes'),
    str('path'),
    str('problem'),
    str('solution'),
    str('reward_func'),
  ];
  const columnData = [
    { name: 'image', data: rows.map((r) => r.image) },
    { name: 'problem', data: rows.map((r) => r.problem) },
    { name: 'solution', data: rows.map((r) => r.solution) },
    { name: 'reward_func', data: rows.map((r) => r.reward_func) },
  ];
  const buf = parquetWriteBuffer({ columnData: columnData as never, schema: schema as never });
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, new Uint8Array(buf));
  return file;
}

/** The tiny tokenizer + built-in Qwen2-VL template + HF-default preprocessing: a processor without weights. */
export function tinyProcessor(preprocessor: PromptProcessor['preprocessor'] = {}): PromptProcessor & { tokenizer: QwenTokenizer } {
  const files = tinyTokenizer();
  return {
    tokenizer: QwenTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig, 'tiny tokenizer'),
    chatTemplate: ChatTemplate.qwen2vl(),
    preprocessor,
    config: { imageTokenId: TINY_SPECIAL_IDS['<|image_pad|>'], spatialMergeSize: 2 },
  };
}

/** A log sink that keeps the messages. */
export function logSink(): { log: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { log: (m) => messages.push(m), messages };
}
