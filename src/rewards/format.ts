/**
 * Format rewards: `<think>…</think><answer>…</answer>` (strict and lenient), with a box in the answer (REC), or
 * with a `\boxed{}` final answer (EasyR1 math / verl geo3k).
 *
 * Peers (peers.md §b.1–b.6): R1-V/VLM-R1/EasyR1 r1v.py — `re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>",
 * DOTALL)`; Ocean-R1 — exactly one of each tag and `re.match` anchored at the start only; OpenV/VLM-R1 REC —
 * the answer must contain `{…[d, d, d, d]…}`; EasyR1 math.py/verl geo3k — `<think>.*</think>.*\\boxed\{.*\}.*`
 * after normalising spaces around `<`, `>`, `/` (the Qwen2.5-VL-32B tag-spacing quirk).
 *
 * Our rules (deliberate differences):
 * - Every tag must occur exactly once (Ocean-R1's count rule). R1-V's fullmatch alone accepts
 *   `<think>a</think><answer>b</answer><answer>c</answer>` because `.*?` can run across tags.
 * - The answer must be non-empty after trimming (an empty `<answer></answer>` never scores, not even for format).
 *   The thinking may be empty.
 * - strict: exactly the R1 fullmatch — the text starts with `<think>` and ends with `</answer>`, only whitespace
 *   between `</think>` and `<answer>`, tags spelled exactly (lower-case, no spaces).
 * - lenient: the same structure, but tags are case-insensitive and may hold spaces (`< answer >`, `</ think>`),
 *   whitespace/newlines before and after the whole text are ignored, and the opening `<think>` may be missing
 *   when the chat template already opened it (the text then starts inside the reasoning and contains `</think>`).
 * - `format_rec`: the structure (strict or lenient) and the answer holds a parseable box (boxes.ts: JSON
 *   `bbox_2d` or `[x1, y1, x2, y2]`, decimals allowed) — peers require integers inside braces.
 * - `format_boxed`: `<think>…</think>` once each (leading/trailing whitespace ignored), then text with a
 *   non-empty `\boxed{…}` after `</think>`.
 */
import { z } from 'zod';

import { isValidBox, parseBoxes } from './boxes.js';
import { extractBoxed } from './numbers.js';
import { readOptions } from './options.js';
import type { RewardSample } from './types.js';

const STRICT = /^<think>([\s\S]*)<\/think>\s*<answer>([\s\S]*)<\/answer>$/;
const LOOSE_TAG = /<\s*(\/?)\s*(think|answer)\s*>/gi;

function countExact(s: string, tag: string): number {
  let n = 0;
  let i = s.indexOf(tag);
  while (i >= 0) {
    n++;
    i = s.indexOf(tag, i + tag.length);
  }
  return n;
}

/** The answer content when the text has the strict structure, else undefined. */
export function strictAnswer(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  for (const t of ['<think>', '</think>', '<answer>', '</answer>']) if (countExact(text, t) !== 1) return undefined;
  // Loose spellings would be extra tags the exact count missed.
  let loose = 0;
  for (const _ of text.matchAll(LOOSE_TAG)) if (++loose > 4) return undefined;
  if (loose !== 4) return undefined;
  const m = STRICT.exec(text);
  const answer = m?.[2]?.trim();
  return answer ? answer : undefined;
}

/** The answer content when the text has the lenient structure, else undefined. */
export function lenientAnswer(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  const s = text.trim();
  const tags: Array<{ kind: string; start: number; end: number }> = [];
  for (const m of s.matchAll(LOOSE_TAG)) {
    if (tags.length === 4) return undefined; // more tags than the structure has
    tags.push({ kind: `${m[1] ? '/' : ''}${(m[2] ?? '').toLowerCase()}`, start: m.index ?? 0, end: (m.index ?? 0) + m[0].length });
  }
  const kinds = tags.map((t) => t.kind).join(' ');
  let rest = tags;
  if (kinds === 'think /think answer /answer') {
    if (tags[0]?.start !== 0) return undefined;
    rest = tags.slice(1);
  } else if (kinds !== '/think answer /answer') return undefined;
  const [closeThink, openAnswer, closeAnswer] = rest;
  if (!closeThink || !openAnswer || !closeAnswer) return undefined;
  if (s.slice(closeThink.end, openAnswer.start).trim() !== '') return undefined;
  if (closeAnswer.end !== s.length) return undefined;
  const answer = s.slice(openAnswer.end, closeAnswer.start).trim();
  return answer ? answer : undefined;
}

const modeSchema = z.enum(['strict', 'lenient']);

export const formatOptionsSchema = z.strictObject({
  /** 'strict' (default) or 'lenient' (see the top of this file). */
  mode: modeSchema.optional(),
  /** Also require a parseable box in the answer (REC). */
  requireBox: z.boolean().optional(),
});
export type FormatOptions = z.output<typeof formatOptionsSchema>;

/** 1 when the completion has the think/answer structure (and a box when required), else 0. Never throws. */
export function formatScore(completion: string, opts: FormatOptions): number {
  const answer = opts.mode === 'lenient' ? lenientAnswer(completion) : strictAnswer(completion);
  if (answer === undefined) return 0;
  if (opts.requireBox) {
    const first = parseBoxes(answer)[0];
    return first && isValidBox(first.box) ? 1 : 0;
  }
  return 1;
}

/** `format`: think/answer structure; options.mode 'strict' (default) or 'lenient', options.requireBox. */
export function format(sample: RewardSample): number {
  return formatScore(sample.completion, readOptions('format', formatOptionsSchema, sample.options));
}

export const formatRecOptionsSchema = z.strictObject({ mode: modeSchema.optional() });
export const noOptionsSchema = z.strictObject({});

/** `format_strict`: the R1 fullmatch with each tag exactly once and a non-empty answer. */
export function formatStrict(sample: RewardSample): number {
  readOptions('format_strict', noOptionsSchema, sample.options);
  return formatScore(sample.completion, { mode: 'strict' });
}

/** `format_lenient`: tolerant of tag spacing/case, surrounding whitespace and a template-opened `<think>`. */
export function formatLenient(sample: RewardSample): number {
  readOptions('format_lenient', noOptionsSchema, sample.options);
  return formatScore(sample.completion, { mode: 'lenient' });
}

/** `format_rec`: the think/answer structure with a box in the answer (options.mode as for `format`). */
export function formatRec(sample: RewardSample): number {
  const o = readOptions('format_rec', formatRecOptionsSchema, sample.options);
  return formatScore(sample.completion, { ...o, requireBox: true });
}

/** 1 when the text is `<think>…</think>` then text with a non-empty `\boxed{…}`. Never throws. */
export function boxedFormatScore(completion: string): number {
  if (typeof completion !== 'string') return 0;
  const s = completion.trim();
  if (countExact(s, '<think>') !== 1 || countExact(s, '</think>') !== 1) return 0;
  if (!s.startsWith('<think>')) return 0;
  const after = s.slice(s.indexOf('</think>') + '</think>'.length);
  const boxed = extractBoxed(after);
  return boxed !== undefined && boxed.trim() !== '' ? 1 : 0;
}

/** `format_boxed`: `<think>…</think>` followed by a `\boxed{}` answer (EasyR1 math / verl geo3k). */
export function formatBoxed(sample: RewardSample): number {
  readOptions('format_boxed', noOptionsSchema, sample.options);
  return boxedFormatScore(sample.completion);
}
