/**
 * verl / Ocean-R1 rows (Parquet, or the same fields in JSONL):
 *
 *   data_source: "geoqa", ability: "math",
 *   prompt: [{role: "user", content: "<image>Find x. …"}],          (content may also be a list of parts)
 *   images: [{bytes: <png>}] | [{path: "img/1.png"}] | ["img/1.png"] | null,
 *   videos: ["clip.mp4"] | [["f1.jpg", "f2.jpg"]] | [{video: "clip.mp4"}] | null,      (verl's video_key)
 *   reward_model: {style: "rule", ground_truth: "3"},
 *   extra_info: {index: 7, reward_func: "acc" | "iou", …}
 *
 * Each `<image>` in the prompt takes the next image and each `<video>` the next video (verl's RLHFDataset); bytes win over a path when an image has
 * both (verl's `process_image`). The ground truth is `reward_model.ground_truth`, the reward method
 * `extra_info.reward_func`, the id `extra_info.index`. `prompt` and `images` are consumed; every other column,
 * `reward_model` and `extra_info` included, goes to `extra`.
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
import type { PromptRow, RowContentPart } from '../types.js';

/** Fields a verl row must have (for detection messages). */
export const VERL_FIELDS = ['prompt', 'reward_model.ground_truth'] as const;

/** True when the record looks like a verl row: `prompt` is a list of chat messages. */
export function isVerlRecord(record: Record<string, unknown>): boolean {
  const p = record.prompt;
  return Array.isArray(p) && p.length > 0 && p.every((m) => isRecord(m) && 'role' in m && 'content' in m);
}

function parseParts(content: unknown[], where: string): RowContentPart[] {
  return content.map((part, k) => {
    if (!isRecord(part)) throw new InvalidRowError(`${where}[${k}] must be an object part, got ${describeValue(part)}`);
    const type = asText(part.type);
    if (type === 'text') {
      const text = asText(part.text);
      if (text === undefined) throw new InvalidRowError(`${where}[${k}].text must be a string, got ${describeValue(part.text)}`);
      return { type: 'text', text };
    }
    if (type === 'image' || type === 'image_url' || (type === undefined && ('image' in part || 'image_url' in part))) return { type: 'image' };
    if (type === 'video' || (type === undefined && 'video' in part)) return { type: 'video' };
    throw new InvalidRowError(`${where}[${k}] has type ${describeValue(part.type)}; expected "text", "image" or "video"`);
  });
}

/** Normalise one verl record; throws InvalidRowError for rows that do not fit. */
export function normaliseVerl(record: Record<string, unknown>, ctx: RowContext): PromptRow {
  const prompt = record.prompt;
  if (!Array.isArray(prompt) || prompt.length === 0) {
    throw new InvalidRowError(`"prompt" must be a non-empty list of {role, content} messages, got ${describeValue(prompt)}`);
  }
  const raw: RawMessage[] = prompt.map((m, i) => {
    if (!isRecord(m)) throw new InvalidRowError(`"prompt"[${i}] must be an object {role, content}, got ${describeValue(m)}`);
    const role = asText(m.role);
    if (role === undefined || role.length === 0) throw new InvalidRowError(`"prompt"[${i}].role must be a string, got ${describeValue(m.role)}`);
    const text = asText(m.content);
    if (text !== undefined) return { role, content: text };
    if (Array.isArray(m.content)) return { role, content: parseParts(m.content, `"prompt"[${i}].content`) };
    throw new InvalidRowError(`"prompt"[${i}].content must be a string or a list of parts, got ${describeValue(m.content)}`);
  });
  const imageField = record.images !== undefined ? 'images' : 'image';
  const images = parseImageList(record[imageField], ctx, imageField);
  const videoField = record.videos !== undefined ? 'videos' : 'video';
  const videos = parseVideoList(record[videoField], ctx, videoField, videoField === 'video');
  const rm = record.reward_model;
  if (!isRecord(rm) || rm.ground_truth === undefined || rm.ground_truth === null) {
    throw new InvalidRowError(`"reward_model.ground_truth" is missing (reward_model is ${describeValue(rm)})`);
  }
  const info = isRecord(record.extra_info) ? record.extra_info : {};
  return makeRow({
    ownId: info.index ?? record.id,
    ctx,
    format: 'verl',
    messages: buildMessages(raw, images.length, videos.length),
    images,
    videos,
    groundTruth: rm.ground_truth,
    rewardMethod: optionalName(info.reward_func ?? record.reward_func, 'extra_info.reward_func'),
    dataSource: optionalName(record.data_source, 'data_source'),
    extra: extraColumns(record, ['prompt', 'images', 'image', 'videos', 'video']),
  });
}
