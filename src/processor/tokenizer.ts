/**
 * Qwen2 / Qwen2.5 byte-level BPE tokenizer loaded from a model folder's tokenizer.json (+ optional
 * tokenizer_config.json), running on @huggingface/tokenizers.
 *
 * - Added tokens listed only in tokenizer_config.json `added_tokens_decoder` are merged into the
 *   tokenizer (some Qwen2-VL tokenizer.json copies lack the image/video pad entries, spec 5.1).
 * - No BOS/EOS is added on encode (Qwen's `bos_token` is null); special tokens in the text, e.g.
 *   `<|image_pad|>`, are matched as whole strings before BPE.
 * - `clean_up_tokenization_spaces` defaults to false (Qwen's tokenizer_config sets false, and the
 *   library's default of true would rewrite " ." / " 's" in decoded completions).
 * - Tokenizer files are optional for a model folder: `loadTokenizer(dir, { optional: true })` returns a
 *   tokenizer whose methods throw `ERR_TOKENIZER_MISSING`, naming the folder and the missing file.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { VlmGrpoError } from '../errors.js';

/** Ids of the special tokens the VL pipeline needs. */
export interface SpecialTokenIds {
  /** `<|im_start|>` */
  imStart: number;
  /** `<|im_end|>` */
  imEnd: number;
  /** `<|vision_start|>` */
  visionStart: number;
  /** `<|vision_end|>` */
  visionEnd: number;
  /** `<|image_pad|>`: one per image token after placeholder expansion. */
  imagePad: number;
  /** `<|video_pad|>` when the vocabulary has it. */
  videoPad: number | undefined;
  /** `<|endoftext|>` when the vocabulary has it. */
  endOfText: number | undefined;
  /** tokenizer_config `eos_token` (default `<|im_end|>`). */
  eos: number;
  /** tokenizer_config `pad_token` (default `<|endoftext|>`), if in the vocabulary. */
  pad: number | undefined;
}

/** Token strings of the Qwen2-VL special tokens. */
export const QWEN_SPECIAL_TOKENS = {
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
  visionStart: '<|vision_start|>',
  visionEnd: '<|vision_end|>',
  imagePad: '<|image_pad|>',
  videoPad: '<|video_pad|>',
  endOfText: '<|endoftext|>',
} as const;

type Json = Record<string, unknown>;

interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function missingError(dir: string, file: string): VlmGrpoError {
  return new VlmGrpoError(
    'ERR_TOKENIZER_MISSING',
    `No tokenizer in ${dir}: ${file} not found.`,
    'Copy tokenizer.json and tokenizer_config.json from the base model (e.g. Qwen/Qwen2.5-VL-3B-Instruct) into ' +
      'the folder, or pass token ids instead of text. (Only the fast-tokenizer tokenizer.json is read; ' +
      'vocab.json + merges.txt alone are not enough: save the tokenizer with save_pretrained to get it.)',
  );
}

/** Token-level view of a Qwen tokenizer; see the module comment. Create with {@link loadTokenizer}. */
export class QwenTokenizer {
  /** Folder (or description) the tokenizer came from. */
  readonly source: string;
  /** false when the folder had no tokenizer files; every other member then throws `ERR_TOKENIZER_MISSING`. */
  readonly available: boolean;
  readonly #tok: Tokenizer | undefined;
  readonly #special: SpecialTokenIds | undefined;
  readonly #vocabSize: number;
  readonly #missing: VlmGrpoError | undefined;

  private constructor(
    source: string,
    tok: Tokenizer | undefined,
    special: SpecialTokenIds | undefined,
    vocabSize: number,
    missing: VlmGrpoError | undefined,
  ) {
    this.source = source;
    this.available = tok !== undefined;
    this.#tok = tok;
    this.#special = special;
    this.#vocabSize = vocabSize;
    this.#missing = missing;
  }

  /** A tokenizer that throws `error` from every method: what an optional load of a bare folder gives. */
  static unavailable(source: string, error: VlmGrpoError): QwenTokenizer {
    return new QwenTokenizer(source, undefined, undefined, 0, error);
  }

  /**
   * Build from parsed tokenizer.json and tokenizer_config.json objects. `source` names them in errors.
   * Throws VlmGrpoError `ERR_TOKENIZER_INVALID` for malformed files or missing Qwen special tokens.
   */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = 'tokenizer.json'): QwenTokenizer {
    const invalid = (msg: string, cause?: unknown): VlmGrpoError =>
      new VlmGrpoError(
        'ERR_TOKENIZER_INVALID',
        `Invalid tokenizer in ${source}: ${msg}`,
        'Re-download tokenizer.json / tokenizer_config.json from the base model; they must be Hugging Face fast-tokenizer files.',
        cause === undefined ? undefined : { cause },
      );
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson)) {
      throw invalid('tokenizer.json must be a JSON object');
    }
    if (!tokenizerConfig || typeof tokenizerConfig !== 'object' || Array.isArray(tokenizerConfig)) {
      throw invalid('tokenizer_config.json must be a JSON object');
    }
    const tj = { ...(tokenizerJson as Json) };
    const cfg: Json = { ...(tokenizerConfig as Json) };
    const model = tj.model as Json | undefined;
    if (!model || typeof model !== 'object' || typeof model.type !== 'string') {
      throw invalid('field "model" with a "type" (e.g. "BPE") is missing');
    }
    const added: AddedTokenJson[] = Array.isArray(tj.added_tokens) ? [...(tj.added_tokens as AddedTokenJson[])] : [];
    const decoder = cfg.added_tokens_decoder;
    if (decoder && typeof decoder === 'object') {
      const haveIds = new Set(added.map((t) => t.id));
      for (const [idStr, entry] of Object.entries(decoder as Record<string, Json>)) {
        const id = Number(idStr);
        const content = tokenString(entry);
        if (!Number.isSafeInteger(id) || id < 0 || content === undefined) {
          throw invalid(`tokenizer_config.json added_tokens_decoder entry "${idStr}" needs an integer id and a "content" string`);
        }
        if (haveIds.has(id)) continue;
        added.push({
          id,
          content,
          single_word: entry.single_word === true,
          lstrip: entry.lstrip === true,
          rstrip: entry.rstrip === true,
          normalized: entry.normalized === true,
          special: entry.special !== false,
        });
      }
    }
    tj.added_tokens = added;
    for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(key in tj)) tj[key] = null;
    cfg.clean_up_tokenization_spaces = cfg.clean_up_tokenization_spaces ?? false;
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(tj, cfg);
    } catch (err) {
      throw invalid((err as Error).message, err);
    }
    const id = (s: string): number | undefined => tok.token_to_id(s);
    const required = (key: keyof typeof QWEN_SPECIAL_TOKENS): number => {
      const v = id(QWEN_SPECIAL_TOKENS[key]);
      if (v === undefined) {
        throw invalid(`special token ${QWEN_SPECIAL_TOKENS[key]} is not in the vocabulary or added_tokens, so this is not a Qwen2/2.5-VL tokenizer`);
      }
      return v;
    };
    const eosStr = tokenString(cfg.eos_token) ?? QWEN_SPECIAL_TOKENS.imEnd;
    const padStr = tokenString(cfg.pad_token) ?? QWEN_SPECIAL_TOKENS.endOfText;
    const eos = id(eosStr);
    if (eos === undefined) throw invalid(`eos_token ${JSON.stringify(eosStr)} of tokenizer_config.json is not in the vocabulary`);
    const special: SpecialTokenIds = {
      imStart: required('imStart'),
      imEnd: required('imEnd'),
      visionStart: required('visionStart'),
      visionEnd: required('visionEnd'),
      imagePad: required('imagePad'),
      videoPad: id(QWEN_SPECIAL_TOKENS.videoPad),
      endOfText: id(QWEN_SPECIAL_TOKENS.endOfText),
      eos,
      pad: id(padStr),
    };
    let maxId = -1;
    for (const v of tok.get_vocab(true).values()) if (v > maxId) maxId = v;
    return new QwenTokenizer(source, tok, special, maxId + 1, undefined);
  }

  #require(): Tokenizer {
    if (!this.#tok) throw this.#missing!;
    return this.#tok;
  }

  /** Ids of `<|im_start|>`, `<|image_pad|>`, eos, pad, …. */
  get specialTokens(): SpecialTokenIds {
    this.#require();
    return { ...this.#special! };
  }

  /** Largest token id + 1 (BPE vocabulary plus added tokens); the model's embedding may be larger. */
  get vocabSize(): number {
    this.#require();
    return this.#vocabSize;
  }

  /**
   * Token ids of `text`. Special-token strings in the text become their single ids. With
   * `addSpecialTokens` the tokenizer's post-processor runs (a no-op for Qwen, which adds no BOS/EOS).
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const tok = this.#require();
    if (typeof text !== 'string') throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    if (text.length === 0) return [];
    return tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  /**
   * Text of `ids`. Ids the tokenizer does not know (model rows past the vocabulary) are skipped, as
   * the Rust tokenizers do; `skipSpecialTokens` also drops special tokens such as `<|im_end|>`.
   */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const tok = this.#require();
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`decode: ids[${i}] = ${v} is not a non-negative integer`);
      if (tok.id_to_token(v) !== undefined) known.push(v);
    }
    if (known.length === 0) return '';
    return tok.decode(known, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Id of one token string (vocabulary or added token), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#require().token_to_id(token);
  }

  /** Token string of one id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.#require().id_to_token(id);
  }
}

async function readJsonIfExists(file: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VlmGrpoError('ERR_TOKENIZER_INVALID', `Cannot read ${file}: ${(err as Error).message}`,
      'Check the file permissions.', { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new VlmGrpoError('ERR_TOKENIZER_INVALID', `${file} is not valid JSON: ${(err as Error).message}`,
      'Re-download the file from the base model.', { cause: err });
  }
}

/**
 * Load the tokenizer of a model folder (tokenizer.json required, tokenizer_config.json optional).
 * Without tokenizer.json this throws `ERR_TOKENIZER_MISSING` naming the folder and the file, or, with
 * `{ optional: true }`, returns a tokenizer with `available === false` whose methods throw that error.
 */
export async function loadTokenizer(dir: string, options: { optional?: boolean } = {}): Promise<QwenTokenizer> {
  const abs = path.resolve(dir);
  const tokenizerFile = path.join(abs, 'tokenizer.json');
  const tj = await readJsonIfExists(tokenizerFile);
  if (tj === undefined) {
    const err = missingError(abs, 'tokenizer.json');
    if (options.optional) return QwenTokenizer.unavailable(abs, err);
    throw err;
  }
  const cfg = (await readJsonIfExists(path.join(abs, 'tokenizer_config.json'))) ?? {};
  return QwenTokenizer.fromJSON(tj, cfg, abs);
}
