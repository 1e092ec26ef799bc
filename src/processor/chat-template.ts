/**
 * Chat template for Qwen2-VL / Qwen2.5-VL prompts, rendered with @huggingface/jinja, and the
 * processor's image placeholder expansion.
 *
 * The template comes from the model folder, first found of: chat_template.jinja, chat_template.json
 * (the processor template, which HF's `processor.apply_chat_template` uses), tokenizer_config.json
 * `chat_template`; a folder without any gets {@link DEFAULT_QWEN2_VL_CHAT_TEMPLATE}, the template shipped
 * with Qwen2-VL and Qwen2.5-VL (default system prompt "You are a helpful assistant.").
 *
 * The template emits one `<|vision_start|><|image_pad|><|vision_end|>` per image (`<|video_pad|>` per video); the
 * processor then replaces the k-th `<|image_pad|>` by t·h·w / merge² copies, t·h·w being image k's grid (spec 2.8),
 * and the k-th `<|video_pad|>` likewise with video k's grid.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { z } from 'zod';
import { VlmGrpoError } from '../errors.js';
import type { ImageGridThw } from './image.js';
import { QWEN_SPECIAL_TOKENS } from './tokenizer.js';

/** The chat template of Qwen/Qwen2-VL-*-Instruct and Qwen/Qwen2.5-VL-*-Instruct (chat_template.json). */
export const DEFAULT_QWEN2_VL_CHAT_TEMPLATE =
  "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}" +
  "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}" +
  "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n" +
  "{% else %}{% for content in message['content'] %}" +
  "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}" +
  "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}" +
  '<|vision_start|><|image_pad|><|vision_end|>' +
  "{% elif content['type'] == 'video' or 'video' in content %}" +
  "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}" +
  '<|vision_start|><|video_pad|><|vision_end|>' +
  "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/** One part of a multimodal message. Image parts may carry the image (`image`, `image_url`) for your own use. */
export type ChatContentPart =
  | { type: 'text'; text: string }
  | { type: 'image'; image?: unknown }
  | { type: 'video'; video?: unknown }
  | ({ type?: string } & Record<string, unknown>);

/** A chat message: plain text or a list of text/image parts. */
export interface ChatMessage {
  role: string;
  content: string | ChatContentPart[];
}

/** Options for {@link ChatTemplate.render}. */
export interface RenderChatOptions {
  /** Append `<|im_start|>assistant\n` so the model continues as the assistant. Default false. */
  addGenerationPrompt?: boolean;
  /** Prefix each image with "Picture n: " (Qwen template option). Default false. */
  addVisionId?: boolean;
  /** Extra template variables (e.g. `tools`). */
  variables?: Record<string, unknown>;
}

const messagesSchema = z.array(
  z.looseObject({
    role: z.string(),
    content: z.union([z.string(), z.array(z.looseObject({}))]),
  }),
);

/** A parsed chat template plus the special-token strings templates may reference. */
export class ChatTemplate {
  /** Template text. */
  readonly template: string;
  /** Where it came from: a file path, or "built-in Qwen2-VL template". */
  readonly source: string;
  readonly #compiled: Template;
  readonly #tokens: Record<string, string>;

  /**
   * Parse a Jinja chat template. `specialTokens` (e.g. `{ eos_token: '<|im_end|>' }`) are passed to
   * every render, as HF does. Throws VlmGrpoError `ERR_CHAT_TEMPLATE` on a syntax error, naming `source`.
   */
  constructor(template: string, source = 'inline template', specialTokens: Record<string, string> = {}) {
    if (typeof template !== 'string' || template.length === 0) {
      throw new VlmGrpoError('ERR_CHAT_TEMPLATE', `Chat template from ${source} is empty or not a string.`,
        'Fix the chat_template entry, or delete it to use the built-in Qwen2-VL template.');
    }
    this.template = template;
    this.source = source;
    this.#tokens = { ...specialTokens };
    try {
      this.#compiled = new Template(template);
    } catch (err) {
      throw new VlmGrpoError('ERR_CHAT_TEMPLATE', `Cannot parse the chat template from ${source}: ${(err as Error).message}`,
        'Fix the Jinja syntax (the supported subset is @huggingface/jinja\'s), or delete the template to use the built-in Qwen2-VL one.',
        { cause: err });
    }
  }

  /** The built-in Qwen2-VL / Qwen2.5-VL template. */
  static qwen2vl(): ChatTemplate {
    return new ChatTemplate(DEFAULT_QWEN2_VL_CHAT_TEMPLATE, 'built-in Qwen2-VL template', {
      eos_token: QWEN_SPECIAL_TOKENS.imEnd,
      pad_token: QWEN_SPECIAL_TOKENS.endOfText,
    });
  }

  /**
   * Load the template of a model folder: chat_template.jinja, then chat_template.json, then
   * tokenizer_config.json `chat_template` (a string, or a list of {name, template} where "default" is
   * taken); otherwise the built-in Qwen2-VL template.
   */
  static async load(dir: string): Promise<ChatTemplate> {
    const abs = path.resolve(dir);
    const tokCfgFile = path.join(abs, 'tokenizer_config.json');
    const tokCfg = (await readJson(tokCfgFile)) as Record<string, unknown> | undefined;
    const tokens: Record<string, string> = {};
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const v = tokCfg?.[key];
      const s = typeof v === 'string' ? v : v && typeof v === 'object' ? (v as { content?: unknown }).content : undefined;
      if (typeof s === 'string') tokens[key] = s;
    }
    const jinjaFile = path.join(abs, 'chat_template.jinja');
    const jinja = await readText(jinjaFile);
    if (jinja !== undefined) return new ChatTemplate(jinja, jinjaFile, tokens);
    const jsonFile = path.join(abs, 'chat_template.json');
    const json = (await readJson(jsonFile)) as Record<string, unknown> | undefined;
    if (json !== undefined) {
      const t = json.chat_template;
      if (typeof t !== 'string') {
        throw new VlmGrpoError('ERR_CHAT_TEMPLATE', `${jsonFile} has no "chat_template" string.`,
          'Fix or delete the file (the built-in Qwen2-VL template is used when no template is found).');
      }
      return new ChatTemplate(t, jsonFile, tokens);
    }
    const t = tokCfg?.chat_template;
    if (typeof t === 'string') return new ChatTemplate(t, `${tokCfgFile} (chat_template)`, tokens);
    if (Array.isArray(t)) {
      const named = t as Array<{ name?: unknown; template?: unknown }>;
      const pick = named.find((e) => e?.name === 'default') ?? named[0];
      if (pick && typeof pick.template === 'string') {
        return new ChatTemplate(pick.template, `${tokCfgFile} (chat_template "${String(pick.name)}")`, tokens);
      }
    }
    const builtin = ChatTemplate.qwen2vl();
    return Object.keys(tokens).length > 0 ? new ChatTemplate(builtin.template, builtin.source, tokens) : builtin;
  }

  /**
   * Render a conversation to the prompt string (image placeholders not yet expanded; see
   * {@link expandImagePlaceholders}). Throws VlmGrpoError `ERR_CHAT_MESSAGES` for malformed messages and
   * `ERR_CHAT_TEMPLATE` when the template raises.
   */
  render(messages: readonly ChatMessage[], options: RenderChatOptions = {}): string {
    const parsed = messagesSchema.safeParse(messages);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new VlmGrpoError(
        'ERR_CHAT_MESSAGES',
        `Invalid chat messages at messages.${issue.path.join('.')}: ${issue.message}`,
        'Each message needs a string "role" and a "content" that is a string or a list of parts such as ' +
          '{ type: "text", text } and { type: "image" }.',
      );
    }
    try {
      return this.#compiled.render({
        ...this.#tokens,
        ...options.variables,
        messages: parsed.data,
        add_generation_prompt: options.addGenerationPrompt ?? false,
        add_vision_id: options.addVisionId ?? false,
      });
    } catch (err) {
      throw new VlmGrpoError('ERR_CHAT_TEMPLATE', `The chat template from ${this.source} failed: ${(err as Error).message}`,
        'Check the messages against what the template expects, or use the built-in Qwen2-VL template.', { cause: err });
    }
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VlmGrpoError('ERR_CHAT_TEMPLATE', `Cannot read ${file}: ${(err as Error).message}`, 'Check the file permissions.',
      { cause: err });
  }
}

async function readJson(file: string): Promise<unknown | undefined> {
  const text = await readText(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new VlmGrpoError('ERR_CHAT_TEMPLATE', `${file} is not valid JSON: ${(err as Error).message}`,
      'Re-download the file from the base model.', { cause: err });
  }
}

/** Number of image tokens for one image grid: t·h·w / mergeSize². */
export function imageTokenCount(grid: readonly number[], mergeSize = 2): number {
  if (grid.length !== 3 || grid.some((v) => !Number.isSafeInteger(v) || v < 1)) {
    throw new RangeError(`imageTokenCount: grid must be 3 positive integers [t, h, w], got ${JSON.stringify(grid)}`);
  }
  const n = grid[0]! * grid[1]! * grid[2]!;
  const m2 = mergeSize * mergeSize;
  if (n % m2 !== 0) throw new RangeError(`imageTokenCount: t·h·w = ${n} of grid [${grid.join(', ')}] is not divisible by mergeSize² = ${m2}`);
  return n / m2;
}

function countMismatch(found: number, grids: number, kind: 'image' | 'video' = 'image'): VlmGrpoError {
  return new VlmGrpoError(
    kind === 'image' ? 'ERR_IMAGE_COUNT' : 'ERR_VIDEO_COUNT',
    `The prompt has ${found} ${kind} placeholder(s) but ${grids} ${kind}(s) were given.`,
    `Give exactly one ${kind} per {type: "${kind}"} content part, in the order the parts appear.`,
  );
}

/**
 * Replace the k-th `<|image_pad|>` of `text` by imageTokenCount(grids[k]) copies, as HF's
 * Qwen2VLProcessor does before tokenizing. Throws `ERR_IMAGE_COUNT` when counts differ.
 */
export function expandImagePlaceholders(
  text: string,
  grids: readonly (ImageGridThw | readonly number[])[],
  options: { mergeSize?: number; imageToken?: string } = {},
): string {
  const token = options.imageToken ?? QWEN_SPECIAL_TOKENS.imagePad;
  const parts = text.split(token);
  if (parts.length - 1 !== grids.length) throw countMismatch(parts.length - 1, grids.length);
  let out = parts[0]!;
  for (let k = 0; k < grids.length; k++) {
    out += token.repeat(imageTokenCount(grids[k]!, options.mergeSize ?? 2)) + parts[k + 1]!;
  }
  return out;
}

/**
 * Id-level twin of {@link expandImagePlaceholders}: repeat the k-th `imagePadId` of already tokenized
 * ids. Equivalent to expanding the text first (the pad token is a special token matched whole), and
 * avoids tokenizing thousands of pad strings.
 */
export function expandImageTokenIds(
  ids: ArrayLike<number>,
  grids: readonly (ImageGridThw | readonly number[])[],
  imagePadId: number,
  mergeSize = 2,
): number[] {
  return expandPadIds(ids, grids, imagePadId, mergeSize, 'image');
}

/**
 * Video twin of {@link expandImageTokenIds}: repeat the k-th `videoPadId` t·h·w / mergeSize² times for video k's
 * grid (HF's processor expands `<|video_pad|>` the same way). Throws `ERR_VIDEO_COUNT` when counts differ.
 */
export function expandVideoTokenIds(
  ids: ArrayLike<number>,
  grids: readonly (readonly number[])[],
  videoPadId: number,
  mergeSize = 2,
): number[] {
  return expandPadIds(ids, grids, videoPadId, mergeSize, 'video');
}

function expandPadIds(ids: ArrayLike<number>, grids: readonly (readonly number[])[], padId: number, mergeSize: number, kind: 'image' | 'video'): number[] {
  const counts = grids.map((g) => imageTokenCount(g, mergeSize));
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (v !== padId) {
      out.push(v);
      continue;
    }
    if (k >= counts.length) throw countMismatch(countPads(ids, padId), grids.length, kind);
    for (let j = 0; j < counts[k]!; j++) out.push(v);
    k++;
  }
  if (k !== counts.length) throw countMismatch(k, grids.length, kind);
  return out;
}

function countPads(ids: ArrayLike<number>, pad: number): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === pad) n++;
  return n;
}
