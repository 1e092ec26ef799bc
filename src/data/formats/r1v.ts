/**
 * R1-V style rows (HF dataset exported to Parquet, or JSONL): one question and its solution.
 *
 *   {"image": "clevr/1.png" | {bytes, path} | ["a.png", …] | null, "problem": "How many …?",
 *    "solution": "<answer> 3 </answer>", "reward_func": "acc", "has_image": true}
 *
 * The prompt is one user message with the problem; images go before the text (R1-V) unless the problem has
 * `<image>` placeholders. `has_image: false` (OpenV-R1's mixed text/image data) makes a text-only row even when an
 * image column is filled. The ground truth is `solution` as given (EasyR1-style `answer` when there is no
 * `solution`); rewards extract the `<answer>` span. `reward_func` is the per-row reward method.
 */
import {
  InvalidRowError,
  asText,
  buildMessages,
  describeValue,
  extraColumns,
  makeRow,
  optionalName,
  parseImageList,
  type RowContext,
} from './common.js';
import type { PromptRow } from '../types.js';

/** Fields an R1-V row must have (for detection messages). */
export const R1V_FIELDS = ['problem', 'solution'] as const;

/** True when the record looks like an R1-V row: a `problem` plus a `solution` (or `answer`). */
export function isR1vRecord(record: Record<string, unknown>): boolean {
  return 'problem' in record && ('solution' in record || 'answer' in record);
}

/** Normalise one R1-V record; throws InvalidRowError for rows that do not fit. */
export function normaliseR1v(record: Record<string, unknown>, ctx: RowContext): PromptRow {
  const problem = asText(record.problem);
  if (problem === undefined) throw new InvalidRowError(`"problem" must be a string, got ${describeValue(record.problem)}`);
  const gtField = record.solution !== undefined ? 'solution' : 'answer';
  const solution = record[gtField];
  if (solution === undefined || solution === null) throw new InvalidRowError('"solution" is missing');
  const imageField = record.image !== undefined ? 'image' : 'images';
  const textOnly = record.has_image === false;
  const images = textOnly ? [] : parseImageList(record[imageField], ctx, imageField);
  return makeRow({
    ownId: record.id,
    ctx,
    format: 'r1v',
    messages: buildMessages([{ role: 'user', content: problem }], images.length),
    images,
    groundTruth: asText(solution) ?? solution,
    rewardMethod: optionalName(record.reward_func, 'reward_func'),
    dataSource: optionalName(record.data_source, 'data_source'),
    extra: extraColumns(record, ['problem', 'image', 'images', gtField]),
  });
}
