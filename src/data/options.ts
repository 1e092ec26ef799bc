/**
 * Dataset options: one zod schema with the defaults, rejecting unknown keys with a "did you mean" hint, plus the
 * cross-field rules (validation from a ratio OR from files, minPixels ≤ maxPixels).
 */
import { z } from 'zod';
import { didYouMean } from '../config/did-you-mean.js';
import { DataError } from './errors.js';
import { resolvePromptTemplate } from './prompt-template.js';
import type { DataSource } from './sources.js';

const sourceObject = z.strictObject({
  path: z.string().min(1),
  imageFolder: z.string().min(1).optional(),
  format: z.enum(['auto', 'vlm-r1', 'verl', 'r1v']).optional(),
  rewardMethod: z.string().min(1).nullable().optional(),
});

const source = z.union([z.string().min(1), sourceObject]);

/** Schema of {@link PromptDatasetOptions}. */
export const promptDatasetOptionsSchema = z.strictObject({
  /** Training data files (a path, or {path, imageFolder, format, rewardMethod}). */
  sources: z.array(source).min(1),
  /** Validation data files; exclusive with validationRatio. */
  validationSources: z.array(source).min(1).optional(),
  /** Share of the training rows held out for validation (0 = none). Default 0. */
  validationRatio: z.number().min(0).lt(1).default(0),
  /** Built-in template name ('none', 'r1', 'vlm-r1', 'vlm-r1-rec', 'ocean-r1') or a string with {question}. Default 'none'. */
  promptTemplate: z.string().default('none'),
  /** System prompt for every row (replaces the row's); null keeps the rows'. Default null. */
  systemPrompt: z.string().nullable().default(null),
  /** Minimum image area in pixels after resizing; default: the model's preprocessor. */
  minPixels: z.number().int().nonnegative().optional(),
  /** Maximum image area in pixels after resizing; default: the model's preprocessor. */
  maxPixels: z.number().int().positive().optional(),
  /** Video frame sampling and pixel budget (qwen-vl-utils semantics; see src/processor/video.ts). Default: its defaults. */
  video: z.strictObject({
    fps: z.number().positive().optional(),
    minFrames: z.number().int().positive().optional(),
    maxFrames: z.number().int().min(2).optional(),
    minPixels: z.number().int().positive().optional(),
    maxPixels: z.number().int().positive().optional(),
    totalPixels: z.number().int().positive().optional(),
  }).optional(),
  /** Longest prompt in tokens after image expansion; longer rows are skipped and counted. null: no limit. Default null. */
  maxPromptLength: z.number().int().positive().nullable().default(null),
  /** Seed of the shuffles and of the validation split. Default 42. */
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(42),
  /** Shuffle the training rows each epoch. Default true. */
  shuffle: z.boolean().default(true),
  /** Stop with an error when more than this share of the rows is unusable. Default 0.5. */
  maxBadFraction: z.number().min(0).max(1).default(0.5),
  /** Check at load time that image files exist (missing ones are skipped then). Default true. */
  checkImages: z.boolean().default(true),
  /** Skipped rows logged one by one before they are only counted. Default 20. */
  maxWarnings: z.number().int().nonnegative().default(20),
});

/** Options of loadPromptDatasets (input form: every field but `sources` optional). */
export type PromptDatasetOptions = z.input<typeof promptDatasetOptionsSchema>;

/** Options with every default filled in and sources as objects. */
export type ResolvedDatasetOptions = Omit<z.output<typeof promptDatasetOptionsSchema>, 'sources' | 'validationSources'> & {
  sources: DataSource[];
  validationSources: DataSource[] | undefined;
};

const KEYS = Object.keys(promptDatasetOptionsSchema.shape);
const SOURCE_KEYS = Object.keys(sourceObject.shape);

function invalid(message: string, remedy: string): DataError {
  return new DataError('ERR_DATA_OPTIONS', message, remedy);
}

/** Validate and default dataset options. Throws DataError `ERR_DATA_OPTIONS` naming the field (and a close key for typos). */
export function resolveDatasetOptions(options: PromptDatasetOptions): ResolvedDatasetOptions {
  const parsed = promptDatasetOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? issue.path.join('.') : 'options';
    if (issue.code === 'unrecognized_keys') {
      const inSource = issue.path[0] === 'sources' || issue.path[0] === 'validationSources';
      if (issue.path[0] === 'video') {
        const videoKeys = Object.keys(promptDatasetOptionsSchema.shape.video.unwrap().shape);
        throw invalid(`Unknown dataset option ${issue.keys.map((k) => `"${k}"`).join(', ')} in video.`, `Known video options: ${videoKeys.join(', ')}.`);
      }
      const known = inSource ? SOURCE_KEYS : KEYS;
      const hints = issue.keys.map((k) => {
        const d = didYouMean(k, known);
        return d ? `"${k}" (did you mean "${d}"?)` : `"${k}"`;
      });
      throw invalid(`Unknown dataset option ${hints.join(', ')} in ${where}.`, `Known options: ${known.join(', ')}.`);
    }
    throw invalid(`Invalid dataset option ${where}: ${issue.message}.`, 'Fix the value; see the PromptDatasetOptions documentation for types and ranges.');
  }
  const o = parsed.data;
  if (o.validationSources && o.validationRatio > 0) {
    throw invalid(`Both validationSources and validationRatio (${o.validationRatio}) are set.`,
      'Hold out validation rows either from separate files (validationSources) or by ratio, not both.');
  }
  if (o.minPixels !== undefined && o.maxPixels !== undefined && o.minPixels > o.maxPixels) {
    throw invalid(`minPixels (${o.minPixels}) is larger than maxPixels (${o.maxPixels}).`, 'Set minPixels ≤ maxPixels.');
  }
  resolvePromptTemplate(o.promptTemplate);
  const asSource = (s: string | DataSource): DataSource => (typeof s === 'string' ? { path: s } : s);
  return { ...o, sources: o.sources.map(asSource), validationSources: o.validationSources?.map(asSource) };
}
