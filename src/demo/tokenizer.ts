/**
 * A small byte-level BPE tokenizer in Hugging Face `tokenizer.json` format, made for one task: Qwen2's
 * normalizer (NFC), pre-tokenizer (the Qwen split regex, then ByteLevel), BPE model and ByteLevel decoder, with
 * the 256 byte tokens, merges learned from a corpus, and the 7 Qwen special tokens. It loads through the same
 * QwenTokenizer.fromJSON / loadTokenizer as a Hub model's tokenizer.
 *
 * Ids: 0–255 the byte tokens (GPT-2 bytes_to_unicode order by byte value), 256… one token per merge in rank
 * order, then the special tokens <|endoftext|>, <|im_start|>, <|im_end|>, <|vision_start|>, <|vision_end|>,
 * <|image_pad|>, <|video_pad|> (Qwen's relative order). Any text still encodes (every byte has a token); the
 * merges only make the task's text short.
 *
 * Training (classic BPE, deterministic): special-token strings are cut out of each corpus text, the rest is split
 * with the Qwen pre-tokenizer regex into words, each word becomes its byte symbols, and the most frequent adjacent
 * pair (counted over all word occurrences) is merged, ties broken by the smaller pair in string order, until the
 * best pair occurs fewer than `minFrequency` times or the vocabulary reaches `maxVocab`.
 */
import { ChatTemplate } from '../processor/chat-template.js';
import { QWEN_SPECIAL_TOKENS } from '../processor/tokenizer.js';
import { PROMPT_TEMPLATES } from '../data/prompt-template.js';
import { allQuestions, countingCompletion, questionText } from './scenes.js';

/**
 * The Qwen2 pre-tokenizer split pattern (tokenizer.json form, Rust regex syntax). `(?i:…)` is not JavaScript
 * syntax before Node 23, so training uses {@link QWEN_SPLIT_REGEX_JS}, the same pattern spelled out.
 */
export const QWEN_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** {@link QWEN_SPLIT_REGEX} as a JavaScript regex (case-insensitive contractions spelled with classes). */
export const QWEN_SPLIT_REGEX_JS =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Special tokens in id order (they follow the BPE vocabulary). */
export const SPECIAL_TOKEN_ORDER: readonly string[] = [
  QWEN_SPECIAL_TOKENS.endOfText,
  QWEN_SPECIAL_TOKENS.imStart,
  QWEN_SPECIAL_TOKENS.imEnd,
  QWEN_SPECIAL_TOKENS.visionStart,
  QWEN_SPECIAL_TOKENS.visionEnd,
  QWEN_SPECIAL_TOKENS.imagePad,
  QWEN_SPECIAL_TOKENS.videoPad,
];

/** GPT-2 bytes_to_unicode: byte value → the printable character that stands for it. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

export interface BuildTokenizerOptions {
  /** Largest vocabulary (bytes + merges + 7 special tokens). Default 1024. */
  maxVocab?: number;
  /** Stop merging when the best pair occurs fewer times. Default 2. */
  minFrequency?: number;
  /** Written to tokenizer_config.json as `chat_template`. Default: the Qwen2-VL template. */
  chatTemplate?: string;
  /** tokenizer_config.json `model_max_length`. Default 32768. */
  modelMaxLength?: number;
}

export interface TaskTokenizer {
  /** tokenizer.json content. */
  tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json content. */
  tokenizerConfig: Record<string, unknown>;
  /** Largest id + 1 (the model's vocab_size). */
  vocabSize: number;
  /** Merges learned, in rank order ("a b"). */
  merges: string[];
  /** Id of each special token string. */
  specialTokenIds: Record<string, number>;
}

/** The pre-tokenizer's words of `text` (special tokens removed first, as the tokenizer matches them whole). */
export function preTokenize(text: string): string[] {
  const out: string[] = [];
  for (const piece of splitOnSpecialTokens(text)) for (const m of piece.matchAll(QWEN_SPLIT_REGEX_JS)) out.push(m[0]);
  return out;
}

function splitOnSpecialTokens(text: string): string[] {
  let pieces = [text];
  for (const s of SPECIAL_TOKEN_ORDER) pieces = pieces.flatMap((p) => p.split(s));
  return pieces.filter((p) => p.length > 0);
}

/** Learn BPE merges (see the module comment). Returns merges in rank order as [left, right] symbol pairs. */
export function learnMerges(corpus: readonly string[], maxMerges: number, minFrequency = 2): [string, string][] {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of corpus) {
    if (typeof text !== 'string') throw new TypeError(`learnMerges: corpus entries must be strings, got ${typeof text}`);
    for (const w of preTokenize(text.normalize('NFC'))) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }
  // Words in sorted order so every count and tie-break is independent of insertion order.
  const words = [...wordCounts.keys()].sort().map((w) => ({ symbols: [...enc.encode(w)].map((b) => b2u[b]!), count: wordCounts.get(w)! }));
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const pairCounts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = `${w.symbols[i]} ${w.symbols[i + 1]}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + w.count);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [k, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && best !== undefined && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (best === undefined || bestCount < minFrequency) break;
    const sp = best.indexOf(' ');
    const a = best.slice(0, sp);
    const b = best.slice(sp + 1);
    merges.push([a, b]);
    const ab = a + b;
    for (const w of words) {
      const s = w.symbols;
      if (s.length < 2) continue;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(ab);
          i++;
        } else out.push(s[i]!);
      }
      w.symbols = out;
    }
  }
  return merges;
}

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * Build tokenizer.json and tokenizer_config.json objects for a task from a corpus of its texts (rendered prompts
 * and completions; special-token strings in them are fine). Deterministic: the same corpus gives the same files.
 */
export function buildTaskTokenizer(corpus: readonly string[], options: BuildTokenizerOptions = {}): TaskTokenizer {
  if (!Array.isArray(corpus)) throw new TypeError('buildTaskTokenizer: corpus must be an array of strings');
  const maxVocab = options.maxVocab ?? 1024;
  const minVocab = 256 + SPECIAL_TOKEN_ORDER.length;
  if (!Number.isSafeInteger(maxVocab) || maxVocab < minVocab) throw new RangeError(`buildTaskTokenizer: maxVocab must be an integer ≥ ${minVocab} (256 bytes + 7 special tokens), got ${maxVocab}`);
  const minFrequency = options.minFrequency ?? 2;
  if (!Number.isSafeInteger(minFrequency) || minFrequency < 1) throw new RangeError(`buildTaskTokenizer: minFrequency must be a positive integer, got ${minFrequency}`);

  const pairs = learnMerges(corpus, maxVocab - minVocab, minFrequency);
  const b2u = bytesToUnicode();
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[b2u[b]!] = b;
  let next = 256;
  for (const [a, b] of pairs) {
    // A merge can produce a string that is already a token (two merge paths to one string): keep the first id.
    if (!(a + b in vocab)) vocab[a + b] = next++;
  }
  const specialTokenIds: Record<string, number> = {};
  for (const s of SPECIAL_TOKEN_ORDER) specialTokenIds[s] = next++;
  const merges = pairs.map(([a, b]) => `${a} ${b}`);

  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKEN_ORDER.map((s) => addedToken(specialTokenIds[s]!, s)),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN_SPLIT_REGEX }, behavior: 'Isolated', invert: false }, byteLevel],
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
      merges,
    },
  };
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKEN_ORDER.map((s) => [String(specialTokenIds[s]), addedToken(specialTokenIds[s]!, s)])),
    additional_special_tokens: SPECIAL_TOKEN_ORDER.slice(1),
    bos_token: null,
    chat_template: options.chatTemplate ?? ChatTemplate.qwen2vl().template,
    clean_up_tokenization_spaces: false,
    eos_token: QWEN_SPECIAL_TOKENS.imEnd,
    errors: 'replace',
    model_max_length: options.modelMaxLength ?? 32768,
    pad_token: QWEN_SPECIAL_TOKENS.endOfText,
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig, vocabSize: next, merges, specialTokenIds };
}

/** Prompt templates whose wording goes into the demo corpus (the question alone, R1-V's and VLM-R1's). */
export const DEMO_CORPUS_TEMPLATES = ['none', 'r1', 'vlm-r1'] as const;

/**
 * The counting task's corpus: every question (all colours, shapes and pairs, held-out ones included), wrapped by
 * each of {@link DEMO_CORPUS_TEMPLATES}, rendered with the Qwen2-VL chat template (default system prompt, one
 * image), followed by answers 0..9 as bare `<answer>n</answer>` and as {@link countingCompletion}, and the
 * end-of-turn token.
 */
export function countingCorpus(): string[] {
  const chat = ChatTemplate.qwen2vl();
  const out: string[] = [];
  for (const q of allQuestions()) {
    const question = questionText(q);
    for (const name of DEMO_CORPUS_TEMPLATES) {
      const t = PROMPT_TEMPLATES[name];
      const text = t.replace(/\{question\}/, question);
      const prompt = chat.render([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text }] }], { addGenerationPrompt: true });
      for (let n = 0; n <= 9; n++) {
        out.push(`${prompt}<answer>${n}</answer>${QWEN_SPECIAL_TOKENS.imEnd}\n`);
        out.push(`${prompt}${countingCompletion(q, n)}${QWEN_SPECIAL_TOKENS.imEnd}\n`);
      }
    }
  }
  return out;
}
