/**
 * Format auto-detection: look at the first rows of a file and pick the format most of them fit
 * (VLM-R1 `conversations`, verl `prompt` messages, R1-V `problem` + `solution`), preferring that order on ties.
 * A file none of whose first rows fits any format is an error that lists what each format expects and which
 * fields the file has.
 */
import { DataError } from './errors.js';
import { isR1vRecord, R1V_FIELDS, normaliseR1v } from './formats/r1v.js';
import { isVerlRecord, VERL_FIELDS, normaliseVerl } from './formats/verl.js';
import { isVlmR1Record, VLM_R1_FIELDS, normaliseVlmR1 } from './formats/vlm-r1.js';
import type { RowNormaliser } from './formats/common.js';
import type { DatasetFormat } from './types.js';

interface FormatEntry {
  name: DatasetFormat;
  test: (record: Record<string, unknown>) => boolean;
  fields: readonly string[];
  normalise: RowNormaliser;
  example: string;
}

const FORMATS: readonly FormatEntry[] = [
  {
    name: 'vlm-r1',
    test: isVlmR1Record,
    fields: VLM_R1_FIELDS,
    normalise: normaliseVlmR1,
    example: '{"image": "a.jpg", "conversations": [{"from": "human", "value": "<image>Q"}, {"from": "gpt", "value": "A"}]}',
  },
  {
    name: 'verl',
    test: isVerlRecord,
    fields: VERL_FIELDS,
    normalise: normaliseVerl,
    example: '{"prompt": [{"role": "user", "content": "<image>Q"}], "images": [{"bytes": …}], "reward_model": {"ground_truth": "A"}}',
  },
  {
    name: 'r1v',
    test: isR1vRecord,
    fields: R1V_FIELDS,
    normalise: normaliseR1v,
    example: '{"image": "a.png", "problem": "Q", "solution": "<answer> A </answer>"}',
  },
];

/** The reader of a format. */
export function normaliserFor(format: DatasetFormat): RowNormaliser {
  return FORMATS.find((f) => f.name === format)!.normalise;
}

/** How many leading rows detection looks at. */
export const DETECT_SAMPLE = 20;

/**
 * The format of a file from its first parsed records (objects only; at most {@link DETECT_SAMPLE} are looked at).
 * Throws DataError `ERR_DATA_FORMAT` when no record fits a format, listing the expected fields and the found ones.
 */
export function detectFormat(records: readonly Record<string, unknown>[], file: string): DatasetFormat {
  const sample = records.slice(0, DETECT_SAMPLE);
  let best: FormatEntry | undefined;
  let bestCount = 0;
  for (const f of FORMATS) {
    const n = sample.filter((r) => f.test(r)).length;
    if (n > bestCount) {
      best = f;
      bestCount = n;
    }
  }
  if (best) return best.name;
  const found = new Set<string>();
  for (const r of sample) for (const k of Object.keys(r)) found.add(k);
  const expected = FORMATS.map((f) => `  - ${f.name}: ${f.fields.join(' + ')}, e.g. ${f.example}`).join('\n');
  throw new DataError(
    'ERR_DATA_FORMAT',
    `Cannot tell the format of ${file}: ${sample.length === 0 ? 'it has no readable rows' : `its rows have the fields ${[...found].map((k) => JSON.stringify(k)).join(', ') || '(none)'}`}, ` +
      `which fit none of the known formats. Expected one of:\n${expected}`,
    'Convert the file to one of these formats, or rename its columns; set the source\'s "format" to skip detection.',
  );
}
