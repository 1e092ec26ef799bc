/**
 * Prompt templates: how a row's question is wrapped before the chat template renders it, e.g. R1-V's
 * "{Question}  Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags."
 *
 * A template is a named peer template or any string with one `{question}` (or `{Question}`, the peers' spelling)
 * placeholder; other braces are kept literally. It wraps the content of the LAST user message: the text before the
 * placeholder goes before that message's parts (images included), the text after goes after them, so R1-V's
 * `[image, template(problem)]` comes out exactly. An optional system prompt replaces the row's system message or is
 * put first when the row has none (without one the Qwen chat template adds "You are a helpful assistant.").
 */
import { didYouMean } from '../config/did-you-mean.js';
import { DataError } from './errors.js';
import { mergeText } from './formats/common.js';
import type { RowMessage } from './types.js';

/** The peers' question templates, by name (peers.md §b; VLM-R1 `get_question_template` of its Qwen module). */
export const PROMPT_TEMPLATES = {
  /** The question as given. */
  none: '{question}',
  /** R1-V `QUESTION_TEMPLATE` (grpo.py), two spaces after the question included. */
  r1: '{question}  Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.',
  /** VLM-R1 default question template (Qwen module, task_type "default"). */
  'vlm-r1': '{question} First output the thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags.',
  /** VLM-R1 REC question template (Qwen module, task_type "rec"). */
  'vlm-r1-rec':
    '{question} First output the thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags. ' +
    'Output the final answer in JSON format.',
  /** Ocean-R1 question suffix used in training data and eval scripts. */
  'ocean-r1':
    '{question} You FIRST think about the reasoning process as an internal monologue and then provide the final answer. ' +
    'The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE in <answer> </answer> tags.',
} as const;

/** Names of the built-in templates. */
export type PromptTemplateName = keyof typeof PROMPT_TEMPLATES;

/** The built-in template names. */
export const PROMPT_TEMPLATE_NAMES = Object.keys(PROMPT_TEMPLATES) as PromptTemplateName[];

/** A parsed template: the text around the question. */
export interface PromptTemplate {
  /** The built-in name, or "custom". */
  name: PromptTemplateName | 'custom';
  /** The template string. */
  text: string;
  /** Text put before the question. */
  prefix: string;
  /** Text put after the question. */
  suffix: string;
}

const PLACEHOLDER = /\{question\}|\{Question\}/g;

/**
 * A built-in template name or a custom string with exactly one `{question}` → {@link PromptTemplate}. Throws
 * DataError `ERR_DATA_TEMPLATE` naming the built-ins (with a "did you mean") otherwise.
 */
export function resolvePromptTemplate(spec: string): PromptTemplate {
  if (typeof spec !== 'string') throw new TypeError(`prompt template must be a string, got ${typeof spec}`);
  const named = (PROMPT_TEMPLATES as Record<string, string>)[spec];
  const name: PromptTemplateName | 'custom' = named !== undefined ? (spec as PromptTemplateName) : 'custom';
  const text = named ?? spec;
  const matches = [...text.matchAll(PLACEHOLDER)];
  if (matches.length !== 1) {
    const hint = matches.length === 0 ? didYouMean(spec, PROMPT_TEMPLATE_NAMES) : undefined;
    throw new DataError(
      'ERR_DATA_TEMPLATE',
      `Prompt template ${JSON.stringify(spec.length > 80 ? spec.slice(0, 80) + '…' : spec)} is neither a built-in name nor a ` +
        `string with exactly one {question} placeholder (it has ${matches.length}).` +
        (hint ? ` Did you mean "${hint}"?` : ''),
      `Use one of ${PROMPT_TEMPLATE_NAMES.map((n) => `"${n}"`).join(', ')}, or a string such as "{question} Answer in <answer> </answer> tags."`,
    );
  }
  const at = matches[0]!.index!;
  return { name, text, prefix: text.slice(0, at), suffix: text.slice(at + matches[0]![0].length) };
}

/**
 * The messages with the template applied to the last user message and the system prompt set (see the module
 * comment). The input is not modified.
 */
export function applyPromptTemplate(messages: readonly RowMessage[], template: PromptTemplate, systemPrompt: string | null = null): RowMessage[] {
  let out = messages.map((m) => ({ role: m.role, content: m.content.map((p) => ({ ...p })) }));
  let last = -1;
  for (let i = out.length - 1; i >= 0; i--) if (out[i]!.role === 'user') { last = i; break; }
  if (last >= 0 && (template.prefix.length > 0 || template.suffix.length > 0)) {
    const m = out[last]!;
    out[last] = {
      role: m.role,
      content: mergeText([{ type: 'text', text: template.prefix }, ...m.content, { type: 'text', text: template.suffix }]),
    };
  }
  if (systemPrompt !== null) {
    const sys: RowMessage = { role: 'system', content: [{ type: 'text', text: systemPrompt }] };
    out = out[0]?.role === 'system' ? [sys, ...out.slice(1)] : [sys, ...out];
  }
  return out;
}
