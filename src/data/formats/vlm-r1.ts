/**
 * VLM-R1 JSONL rows (`OR/grpo_jsonl.py`):
 *
 *   {"id": 1, "image": "coco/1.jpg" | ["a.jpg", "b.jpg"],
 *    "conversations": [{"from": "human", "value": "<image>How many …?"}, {"from": "gpt", "value": "3"}],
 *    "accu_reward_method": "default"}
 *
 * Videos: `"video": "clip.mp4"` (a video file, or a directory of frames) or `"video": ["f1.jpg", "f2.jpg"]` (one
 * video given as its frames, as VLM-R1 / qwen-vl-utils accept), or `"videos": [...]` (several), placed by `<video>`.
 * Image and video paths are relative to the source's image folder. The prompt is every turn before the last `gpt` turn
 * (`human` → user, `gpt` → assistant, `system` → system); the ground truth is that last gpt turn's value, kept as
 * given (VLM-R1 wraps it as `<answer> … </answer>`; our rewards read a bare answer or an `<answer>` span alike).
 * `accu_reward_method` is the per-row reward method, falling back to the source's `rewardMethod` (VLM-R1's per-file
 * `--reward_method`).
 */
import {
  InvalidRowError,
  asText,
  buildMessages,
  describeValue,
  extraColumns,
  isRecord,
  makeRow,
  optionalName,
  parseImageList,
  parseVideoList,
  type RawMessage,
  type RowContext,
} from './common.js';
import type { PromptRow } from '../types.js';

/** Fields a VLM-R1 row must have (for detection messages). */
export const VLM_R1_FIELDS = ['conversations'] as const;

const ROLE: Record<string, string> = {
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  system: 'system',
};

/** True when the record looks like a VLM-R1 row. */
export function isVlmR1Record(record: Record<string, unknown>): boolean {
  return Array.isArray(record.conversations);
}

/** Normalise one VLM-R1 record; throws InvalidRowError for rows that do not fit. */
export function normaliseVlmR1(record: Record<string, unknown>, ctx: RowContext): PromptRow {
  const conv = record.conversations;
  if (!Array.isArray(conv)) throw new InvalidRowError(`"conversations" must be a list of {from, value} turns, got ${describeValue(conv)}`);
  const turns = conv.map((t, i) => {
    if (!isRecord(t)) throw new InvalidRowError(`"conversations"[${i}] must be an object {from, value}, got ${describeValue(t)}`);
    const from = asText(t.from ?? t.role);
    const role = from !== undefined ? ROLE[from.toLowerCase()] : undefined;
    if (role === undefined) {
      throw new InvalidRowError(`"conversations"[${i}].from must be one of human, gpt, system; got ${describeValue(t.from ?? t.role)}`);
    }
    return { role, value: t.value ?? t.content, index: i };
  });
  let last = -1;
  for (let i = turns.length - 1; i >= 0; i--) if (turns[i]!.role === 'assistant') { last = i; break; }
  if (last < 0) throw new InvalidRowError('"conversations" has no gpt turn holding the answer');
  const answer = turns[last]!.value;
  if (answer === null || answer === undefined) throw new InvalidRowError(`"conversations"[${last}] (the gpt answer) has no value`);
  const prompt: RawMessage[] = turns.slice(0, last).map((t) => {
    const text = asText(t.value);
    if (text === undefined) throw new InvalidRowError(`"conversations"[${t.index}].value must be a string, got ${describeValue(t.value)}`);
    return { role: t.role, content: text };
  });
  if (prompt.length === 0) throw new InvalidRowError('"conversations" has no human turn before the gpt answer');
  const imageField = record.image !== undefined ? 'image' : 'images';
  const images = parseImageList(record[imageField], ctx, imageField);
  const videoField = record.video !== undefined ? 'video' : 'videos';
  const videos = parseVideoList(record[videoField], ctx, videoField, videoField === 'video');
  return makeRow({
    ownId: record.id,
    ctx,
    format: 'vlm-r1',
    messages: buildMessages(prompt, images.length, videos.length),
    images,
    videos,
    groundTruth: answer,
    rewardMethod: optionalName(record.accu_reward_method, 'accu_reward_method'),
    dataSource: optionalName(record.data_source, 'data_source'),
    extra: extraColumns(record, ['conversations', 'image', 'images', 'video', 'videos']),
  });
}
