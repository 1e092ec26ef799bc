/**
 * A tiny Qwen2-style tokenizer.json for tests: the real Qwen2 normalizer (NFC), split regex, byte-level
 * pre-tokenizer / decoder and BPE model, with a 256-symbol byte vocabulary plus a few merges, and the
 * Qwen special tokens at the fixture ids (495–501, see test/fixtures/README.md §2).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { bytesToUnicode } from '../../src/demo/tokenizer.js';

export { bytesToUnicode };

export const QWEN_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export const TINY_SPECIAL_IDS = {
  '<|endoftext|>': 495,
  '<|im_start|>': 496,
  '<|im_end|>': 497,
  '<|vision_start|>': 498,
  '<|vision_end|>': 499,
  '<|image_pad|>': 500,
  '<|video_pad|>': 501,
} as const;

/** Merges in rank order; "Ġ" is the byte-level space. */
export const TINY_MERGES: Array<[string, string]> = [
  ['h', 'e'],
  ['l', 'l'],
  ['he', 'll'],
  ['hell', 'o'],
  ['Ġ', 'w'],
  ['o', 'r'],
  ['Ġw', 'or'],
  ['l', 'd'],
  ['Ġwor', 'ld'],
  ['u', 's'],
  ['us', 'er'],
  ['e', 'r'],
  ['2', '0'],
];

export interface TinyTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocab: Record<string, number>;
}

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * Build the tokenizer objects. `omitFromTokenizerJson` leaves those special tokens out of
 * tokenizer.json's added_tokens (they stay in tokenizer_config.json's added_tokens_decoder).
 */
export function tinyTokenizer(options: { omitFromTokenizerJson?: string[]; omitEverywhere?: string[] } = {}): TinyTokenizerFiles {
  const vocab: Record<string, number> = {};
  const b2u = bytesToUnicode();
  for (let b = 0; b < 256; b++) vocab[b2u[b]!] = b;
  let next = 256;
  for (const [a, b] of TINY_MERGES) if (!(a + b in vocab)) vocab[a + b] = next++;
  const specials = Object.entries(TINY_SPECIAL_IDS).filter(([s]) => !(options.omitEverywhere ?? []).includes(s));
  const inJson = specials.filter(([s]) => !(options.omitFromTokenizerJson ?? []).includes(s));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: inJson.map(([s, id]) => addedToken(id, s)),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: TINY_MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(specials.map(([s, id]) => [String(id), addedToken(id, s)])),
    bos_token: null,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    errors: 'replace',
    model_max_length: 32768,
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig, vocab };
}

/** Write tokenizer.json (+ tokenizer_config.json unless `config` is false) into `dir`. */
export function writeTinyTokenizer(dir: string, files: TinyTokenizerFiles, config = true): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
  if (config) writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
}
