import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VlmGrpoError } from '../../src/errors.js';
import { loadTokenizer, QwenTokenizer } from '../../src/processor/tokenizer.js';
import { bytesToUnicode, tinyTokenizer, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

/** Seeded uniform [0, 1) generator (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('QwenTokenizer', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'vg-tok-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const files = tinyTokenizer();
  const modelDir = path.join(tmp, 'model');
  writeTinyTokenizer(modelDir, files);

  it('loads tokenizer.json + tokenizer_config.json and resolves the special tokens', async () => {
    const tok = await loadTokenizer(modelDir);
    expect(tok.available).toBe(true);
    expect(tok.specialTokens).toEqual({
      imStart: 496,
      imEnd: 497,
      visionStart: 498,
      visionEnd: 499,
      imagePad: 500,
      videoPad: 501,
      endOfText: 495,
      eos: 497,
      pad: 495,
    });
    expect(tok.vocabSize).toBe(502);
    expect(tok.tokenToId('<|image_pad|>')).toBe(500);
    expect(tok.idToToken(496)).toBe('<|im_start|>');
  });

  it('encodes with the Qwen split rules and BPE merges', async () => {
    const tok = await loadTokenizer(modelDir);
    const v = files.vocab;
    const b = bytesToUnicode();
    expect(tok.encode('hello world')).toEqual([v.hello, v['Ġworld']]);
    // Digits are split one per token by the Qwen regex (the vocabulary has a "20" merge that must not
    // apply); no BOS/EOS is added.
    expect(v['20']).toBeDefined();
    expect(tok.encode('2024')).toEqual(['2', '0', '2', '4'].map((c) => v[c]));
    // Special tokens are matched whole; "\n" is the byte-level "Ċ".
    expect(tok.encode('<|im_start|>user\nhello<|im_end|>')).toEqual([496, v.user, v[b[10]!], v.hello, 497]);
    expect(tok.encode('<|vision_start|><|image_pad|><|image_pad|><|vision_end|>')).toEqual([498, 500, 500, 499]);
    expect(tok.encode('')).toEqual([]);
    expect(() => tok.encode(5 as unknown as string)).toThrow(TypeError);
  });

  it('decode(encode(s)) == s on random text (unicode, whitespace, specials)', async () => {
    const tok = await loadTokenizer(modelDir);
    const pieces = ['hello', ' world', 'world', ' ', '  ', '\n', '\n\n', '\t', 'é', 'e\u0301'.normalize('NFC'), '日本語', '🙂', "'s", '123', '!?', '<|im_end|>', '<|image_pad|>', 'user', 'Ünïcödé'];
    const r = rng(1234);
    for (let trial = 0; trial < 200; trial++) {
      let s = '';
      const n = 1 + Math.floor(r() * 12);
      for (let i = 0; i < n; i++) s += pieces[Math.floor(r() * pieces.length)]!;
      const ids = tok.encode(s);
      expect(tok.decode(ids)).toBe(s);
    }
  });

  it('decode options and id validation', async () => {
    const tok = await loadTokenizer(modelDir);
    const ids = tok.encode('<|im_start|>hello world<|im_end|>');
    expect(tok.decode(ids)).toBe('<|im_start|>hello world<|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello world');
    // " ." is kept (clean_up_tokenization_spaces is false for Qwen).
    expect(tok.decode(tok.encode('a . b'))).toBe('a . b');
    // Ids past the vocabulary (model rows with no token) are skipped; typed arrays work.
    expect(tok.decode(Int32Array.from([...tok.encode('hello'), 100000, 511]))).toBe('hello');
    expect(tok.decode([])).toBe('');
    expect(() => tok.decode([1, -1])).toThrow(/ids\[1\] = -1/);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
  });

  it('adds special tokens that only tokenizer_config.json lists (added_tokens_decoder)', async () => {
    const dir = path.join(tmp, 'partial');
    writeTinyTokenizer(dir, tinyTokenizer({ omitFromTokenizerJson: ['<|image_pad|>', '<|video_pad|>'] }));
    const tok = await loadTokenizer(dir);
    expect(tok.specialTokens.imagePad).toBe(500);
    expect(tok.specialTokens.videoPad).toBe(501);
    expect(tok.encode('<|image_pad|>')).toEqual([500]);
    expect(tok.decode([500], { skipSpecialTokens: true })).toBe('');
    // Without tokenizer_config.json the pad token is missing → not usable for Qwen-VL.
    const bare = path.join(tmp, 'bare');
    writeTinyTokenizer(bare, tinyTokenizer({ omitFromTokenizerJson: ['<|image_pad|>'] }), false);
    await expect(loadTokenizer(bare)).rejects.toMatchObject({
      code: 'ERR_TOKENIZER_INVALID',
      message: expect.stringContaining('<|image_pad|>'),
    });
  });

  it('a folder without tokenizer.json: clear error, or an unavailable tokenizer when optional', async () => {
    const empty = path.join(tmp, 'weights-only');
    mkdirSync(empty);
    writeFileSync(path.join(empty, 'config.json'), '{}');
    const err = await loadTokenizer(empty).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VlmGrpoError);
    expect((err as VlmGrpoError).code).toBe('ERR_TOKENIZER_MISSING');
    expect((err as VlmGrpoError).message).toContain(empty);
    expect((err as VlmGrpoError).message).toContain('tokenizer.json');
    expect((err as VlmGrpoError).remedy).toMatch(/Copy tokenizer\.json/);
    const tok = await loadTokenizer(empty, { optional: true });
    expect(tok.available).toBe(false);
    expect(() => tok.encode('hi')).toThrow(/No tokenizer in .*weights-only: tokenizer\.json not found/);
    expect(() => tok.decode([1])).toThrow(VlmGrpoError);
    expect(() => tok.specialTokens).toThrow(VlmGrpoError);
  });

  it('malformed tokenizer files give ERR_TOKENIZER_INVALID naming the source', async () => {
    const dir = path.join(tmp, 'broken');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(dir)).rejects.toMatchObject({
      code: 'ERR_TOKENIZER_INVALID',
      message: expect.stringContaining(path.join(dir, 'tokenizer.json')),
    });
    expect(() => QwenTokenizer.fromJSON({ added_tokens: [] }, {}, 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: field "model"/);
    const noVision = tinyTokenizer({ omitEverywhere: ['<|vision_start|>'] });
    expect(() => QwenTokenizer.fromJSON(noVision.tokenizerJson, noVision.tokenizerConfig)).toThrow(
      /<\|vision_start\|> is not in the vocabulary/,
    );
    expect(() => QwenTokenizer.fromJSON(files.tokenizerJson, { ...files.tokenizerConfig, eos_token: '</s>' })).toThrow(
      /eos_token "<\/s>"/,
    );
  });
});
