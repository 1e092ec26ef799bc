/**
 * `llm`: an LLM judge. Asks an OpenAI-compatible chat-completions endpoint whether the extracted answer matches
 * the ground truth and reads 1.0 / 0.0 from the reply. Asynchronous (returns a Promise).
 *
 * Peers (peers.md §b.3; VLM-R1 `grpo_jsonl.py` `llm_reward` / `evaluate_answer_similarity`): model "qwen2.5:7b",
 * temperature 0, endpoint and key from OPENAI_API_BASE / OPENAI_API_KEY (default https://api.openai.com/v1), two
 * user messages (the judging instruction, then "Student's response: … Correct solution: … Output only 1.0 or
 * 0.0:"), the reply parsed with `float(reply.strip())`; on ANY error (network, HTTP status, unparseable reply)
 * it prints the error and falls back to exact string equality of the two answers.
 *
 * Our rules:
 * - The answer is answer.ts' compared text (last `<answer>` span, else the completion without its thinking) and
 *   the ground truth is groundTruthText (VLM-R1 takes the FIRST single-line span of the solution). An empty answer
 *   or ground truth scores 0 without calling the endpoint.
 * - Request: POST `${baseUrl}/chat/completions` with `{ model, messages, temperature: 0 }`, `Authorization:
 *   Bearer <apiKey>` when a key is set (VLM-R1 sends a dummy key otherwise; we send none). `prompt` is the second
 *   message with `{answer}` and `{groundTruth}` filled in; `instruction` the first (both default to VLM-R1's).
 * - Reply: `<think>…</think>` is removed (reasoning judges), then the trimmed text must be a number in [0, 1]
 *   (`1`, `1.0`, `0.0`, `0.5` …); anything else is a failure. VLM-R1 accepts any float (e.g. 2.0 or -1).
 * - On failure (network error, timeout after `timeoutMs`, non-2xx status, malformed JSON, unparseable reply) the
 *   reward falls back to `exact` (accuracy.ts exactScore: equal after light normalisation) AND reports the failure
 *   through `sample.reportError`, so a RewardScorer counts it in `reward_errors/<label>` and logs it; called
 *   directly (no scorer), the first occurrence of each message is printed with console.warn.
 * - At most `maxConcurrency` requests are in flight per endpoint and model (a queue per baseUrl + model).
 */
import { z } from 'zod';

import { exactScore } from './accuracy.js';
import { extractAnswer, groundTruthText } from './answer.js';
import { RewardError } from './errors.js';
import { readOptions } from './options.js';
import type { RewardSample } from './types.js';

/** VLM-R1's default endpoint when neither options.baseUrl nor OPENAI_API_BASE is set. */
export const DEFAULT_LLM_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_LLM_MODEL = 'qwen2.5:7b';

/** The judging instruction (first user message), VLM-R1's wording. */
export const DEFAULT_LLM_INSTRUCTION =
  "You are a evaluation expert. First, analyze the student's response to identify and extract their final answer. " +
  "Then, compare the extracted answer with the correct solution. Output ONLY '1.0' if the extracted answer matches " +
  "the correct solution in meaning, or '0.0' if the student's response does not contain a clear or correct answer. " +
  'No other output is allowed.';

/** The second user message; `{answer}` and `{groundTruth}` are replaced. */
export const DEFAULT_LLM_PROMPT = "Student's response: {answer}\nCorrect solution: {groundTruth}\nOutput only 1.0 or 0.0:";

export const llmOptionsSchema = z.strictObject({
  /** OpenAI-compatible API root, e.g. http://localhost:11434/v1 (default: env OPENAI_API_BASE, else OpenAI). */
  baseUrl: z.string().url().optional(),
  /** Bearer token (default: env OPENAI_API_KEY; none when unset). */
  apiKey: z.string().optional(),
  /** Judge model name (default "qwen2.5:7b"). */
  model: z.string().min(1).optional(),
  /** Time limit of one request in ms (default 30000). */
  timeoutMs: z.number().int().positive().optional(),
  /** Requests in flight at once per endpoint and model (default 8). */
  maxConcurrency: z.number().int().positive().optional(),
  /** Template of the second user message, with {answer} and {groundTruth}. */
  prompt: z.string().min(1).optional(),
  /** The first user message (the judging instruction). */
  instruction: z.string().min(1).optional(),
});
export type LlmOptions = z.output<typeof llmOptionsSchema>;

/** Resolved request settings (options over environment over defaults). */
export interface LlmSettings {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  timeoutMs: number;
  maxConcurrency: number;
  prompt: string;
  instruction: string;
}

/** Options over `env` (OPENAI_API_BASE, OPENAI_API_KEY) over defaults. */
export function llmSettings(opts: LlmOptions, env: NodeJS.ProcessEnv = process.env): LlmSettings {
  const envBase = env['OPENAI_API_BASE']?.trim();
  const envKey = env['OPENAI_API_KEY']?.trim();
  return {
    baseUrl: (opts.baseUrl ?? (envBase || DEFAULT_LLM_BASE_URL)).replace(/\/+$/, ''),
    apiKey: opts.apiKey ?? (envKey || undefined),
    model: opts.model ?? DEFAULT_LLM_MODEL,
    timeoutMs: opts.timeoutMs ?? 30_000,
    maxConcurrency: opts.maxConcurrency ?? 8,
    prompt: opts.prompt ?? DEFAULT_LLM_PROMPT,
    instruction: opts.instruction ?? DEFAULT_LLM_INSTRUCTION,
  };
}

/** Fills `{answer}` and `{groundTruth}` in one pass (a filled-in value is never re-expanded). */
export function fillPrompt(template: string, answer: string, groundTruth: string): string {
  return template.replace(/\{(answer|groundTruth)\}/g, (_, k: string) => (k === 'answer' ? answer : groundTruth));
}

/** The judge's verdict from its reply text: a number in [0, 1], or undefined when the reply is not one. */
export function parseJudgeReply(reply: string): number | undefined {
  const text = reply.replace(/<think>[\s\S]*?<\/think>/gi, '').trim();
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(text)) return undefined;
  const v = Number(text);
  return v >= 0 && v <= 1 ? v : undefined;
}

/** A counting semaphore: at most `limit` holders at once, FIFO. */
class Semaphore {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(limit: number) {
    this.#free = limit;
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

const gates = new Map<string, Semaphore>();
function gate(s: LlmSettings): Semaphore {
  const key = `${s.baseUrl}\u0000${s.model}\u0000${s.maxConcurrency}`;
  let g = gates.get(key);
  if (!g) gates.set(key, (g = new Semaphore(s.maxConcurrency)));
  return g;
}

function judgeError(message: string, cause?: unknown): RewardError {
  return new RewardError(
    'ERR_REWARD_JUDGE',
    message,
    'Check that the judge endpoint is up (options.baseUrl or OPENAI_API_BASE), the key (OPENAI_API_KEY) and the model name; the reward used exact match meanwhile.',
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Asks the judge once. Resolves to its verdict in [0, 1]; rejects with a RewardError (ERR_REWARD_JUDGE) on any
 * failure (network, timeout, HTTP status, malformed body, unparseable reply).
 */
export async function askJudge(answer: string, groundTruth: string, s: LlmSettings): Promise<number> {
  const release = await gate(s).acquire();
  try {
    const url = `${s.baseUrl}/chat/completions`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (s.apiKey) headers['authorization'] = `Bearer ${s.apiKey}`;
    const body = JSON.stringify({
      model: s.model,
      messages: [
        { role: 'user', content: s.instruction },
        { role: 'user', content: fillPrompt(s.prompt, answer, groundTruth) },
      ],
      temperature: 0,
    });
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(s.timeoutMs) });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      throw judgeError(
        timedOut ? `LLM judge at ${url} did not answer within ${s.timeoutMs} ms.` : `LLM judge request to ${url} failed: ${err instanceof Error ? err.message : String(err)}.`,
        err,
      );
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) throw judgeError(`LLM judge at ${url} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
    let content: unknown;
    try {
      content = (JSON.parse(text) as { choices?: Array<{ message?: { content?: unknown } }> }).choices?.[0]?.message?.content;
    } catch (err) {
      throw judgeError(`LLM judge at ${url} returned a body that is not JSON: ${text.slice(0, 200)}`, err);
    }
    if (typeof content !== 'string') throw judgeError(`LLM judge at ${url} returned no choices[0].message.content: ${text.slice(0, 200)}`);
    const v = parseJudgeReply(content);
    if (v === undefined) throw judgeError(`LLM judge reply is not a number in [0, 1]: ${JSON.stringify(content.slice(0, 200))}`);
    return v;
  } finally {
    release();
  }
}

const warned = new Set<string>();

/** `llm` with validated options (see the top of this file). */
export async function llmScore(sample: RewardSample, opts: LlmOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const answer = extractAnswer(sample.completion);
  const gt = groundTruthText(sample.groundTruth);
  if (!answer || !gt) return 0;
  try {
    return await askJudge(answer, gt, llmSettings(opts, env));
  } catch (err) {
    if (sample.reportError) sample.reportError(err);
    else {
      const msg = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
      if (!warned.has(msg) && warned.size < 100) {
        warned.add(msg);
        console.warn(`[vlm-grpo] reward 'llm' fell back to exact match: ${msg}`);
      }
    }
    return exactScore(answer, gt);
  }
}

/** `llm`: 1.0 / 0.0 from an OpenAI-compatible judge model; exact match when the judge fails. Async. */
export async function llm(sample: RewardSample): Promise<number> {
  return llmScore(sample, readOptions('llm', llmOptionsSchema, sample.options));
}
