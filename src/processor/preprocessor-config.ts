/**
 * preprocessor_config.json of a Qwen2-VL / Qwen2.5-VL checkpoint → a fully defaulted, validated
 * {@link PreprocessorConfig}.
 *
 * Pixel budget precedence follows HF's Qwen2VLImageProcessor.__init__: explicit `min_pixels` /
 * `max_pixels` win over `size = {shortest_edge, longest_edge}` (the transformers v5 spelling; despite the
 * names both are pixel counts), which wins over the class defaults (56·56, 28·28·1280). Unknown keys
 * (processor_class, image_processor_type, video settings, …) are ignored, as HF ignores them.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { VlmGrpoError } from '../errors.js';

/** OpenAI CLIP normalisation constants used by every Qwen2/2.5-VL checkpoint. */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Image preprocessing settings, camelCase and fully defaulted. */
export interface PreprocessorConfig {
  /** Minimum image area after resize, in pixels. */
  minPixels: number;
  /** Maximum image area after resize, in pixels. */
  maxPixels: number;
  /** Vision patch side (14). */
  patchSize: number;
  /** Frames per temporal patch (2): a still image is repeated this many times. */
  temporalPatchSize: number;
  /** Patches merged per side by the vision merger (2); one image token covers mergeSize² patches. */
  mergeSize: number;
  /** Per-channel (R, G, B) mean subtracted after rescaling. */
  imageMean: [number, number, number];
  /** Per-channel (R, G, B) std divided by after subtracting the mean. */
  imageStd: [number, number, number];
  /** Multiplier turning uint8 into [0, 1] (1/255). */
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
  doConvertRgb: boolean;
}

/** HF Qwen2VLImageProcessor class defaults (checkpoints usually raise maxPixels to 12845056). */
export const DEFAULT_PREPROCESSOR_CONFIG: Readonly<PreprocessorConfig> = Object.freeze({
  minPixels: 56 * 56,
  maxPixels: 28 * 28 * 1280,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  imageMean: [...CLIP_MEAN] as [number, number, number],
  imageStd: [...CLIP_STD] as [number, number, number],
  rescaleFactor: 1 / 255,
  doResize: true,
  doRescale: true,
  doNormalize: true,
  doConvertRgb: true,
});

/** A fresh, mutable copy of {@link DEFAULT_PREPROCESSOR_CONFIG}. */
export function defaultPreprocessorConfig(): PreprocessorConfig {
  const d = DEFAULT_PREPROCESSOR_CONFIG;
  return { ...d, imageMean: [...d.imageMean], imageStd: [...d.imageStd] };
}

const positiveInt = z.number().int().positive();
const channelTriple = z.union([z.number(), z.array(z.number()).length(3)]);

/** Schema of the keys we read from preprocessor_config.json (snake_case, as HF writes them). */
const fileSchema = z.looseObject({
  min_pixels: z.number().int().nonnegative().nullish(),
  max_pixels: positiveInt.nullish(),
  size: z
    .looseObject({
      shortest_edge: z.number().int().nonnegative(),
      longest_edge: positiveInt,
    })
    .nullish(),
  patch_size: positiveInt.nullish(),
  temporal_patch_size: positiveInt.nullish(),
  merge_size: positiveInt.nullish(),
  image_mean: channelTriple.nullish(),
  image_std: channelTriple.nullish(),
  rescale_factor: z.number().positive().nullish(),
  resample: z.number().int().nullish(),
  do_resize: z.boolean().nullish(),
  do_rescale: z.boolean().nullish(),
  do_normalize: z.boolean().nullish(),
  do_convert_rgb: z.boolean().nullish(),
});

function triple(v: number | number[] | null | undefined, fallback: readonly number[]): [number, number, number] {
  if (v === null || v === undefined) return [fallback[0]!, fallback[1]!, fallback[2]!];
  if (typeof v === 'number') return [v, v, v];
  return [v[0]!, v[1]!, v[2]!];
}

function configError(source: string, message: string): VlmGrpoError {
  return new VlmGrpoError(
    'ERR_PREPROCESSOR_CONFIG',
    `Invalid image preprocessor config ${source}: ${message}`,
    'Fix the field in the file (compare with the base model’s preprocessor_config.json, e.g. ' +
      'Qwen/Qwen2.5-VL-3B-Instruct) or delete the field to use the default.',
  );
}

/**
 * Validate a parsed preprocessor_config.json object. `source` names the file in error messages.
 * Throws VlmGrpoError `ERR_PREPROCESSOR_CONFIG` naming the file and the field.
 */
export function parsePreprocessorConfig(json: unknown, source = 'preprocessor_config.json'): PreprocessorConfig {
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw configError(source, `field "${field}": ${issue.message}`);
  }
  const f = parsed.data;
  const d = DEFAULT_PREPROCESSOR_CONFIG;
  if (f.resample !== null && f.resample !== undefined && f.resample !== 3) {
    throw configError(
      source,
      `field "resample" is ${f.resample}, but only 3 (PIL BICUBIC, what every Qwen2/2.5-VL checkpoint uses) is implemented`,
    );
  }
  const minPixels = f.min_pixels ?? f.size?.shortest_edge ?? d.minPixels;
  const maxPixels = f.max_pixels ?? f.size?.longest_edge ?? d.maxPixels;
  if (minPixels > maxPixels) {
    throw configError(source, `min pixels (${minPixels}) exceed max pixels (${maxPixels})`);
  }
  const imageStd = triple(f.image_std, d.imageStd);
  if (imageStd.some((s) => s === 0)) throw configError(source, `field "image_std" contains 0: [${imageStd.join(', ')}]`);
  return {
    minPixels,
    maxPixels,
    patchSize: f.patch_size ?? d.patchSize,
    temporalPatchSize: f.temporal_patch_size ?? d.temporalPatchSize,
    mergeSize: f.merge_size ?? d.mergeSize,
    imageMean: triple(f.image_mean, d.imageMean),
    imageStd,
    rescaleFactor: f.rescale_factor ?? d.rescaleFactor,
    doResize: f.do_resize ?? d.doResize,
    doRescale: f.do_rescale ?? d.doRescale,
    doNormalize: f.do_normalize ?? d.doNormalize,
    doConvertRgb: f.do_convert_rgb ?? d.doConvertRgb,
  };
}

/**
 * Read `preprocessor_config.json` from a model folder (or the file itself when given a .json path).
 * A missing file throws `ERR_PREPROCESSOR_CONFIG_MISSING`, or returns the HF class defaults with
 * `{ optional: true }`.
 */
export async function loadPreprocessorConfig(
  dirOrFile: string,
  options: { optional?: boolean } = {},
): Promise<PreprocessorConfig> {
  let file = dirOrFile;
  const st = await stat(dirOrFile).catch(() => null);
  if (st?.isDirectory()) file = path.join(dirOrFile, 'preprocessor_config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (options.optional) return defaultPreprocessorConfig();
      throw new VlmGrpoError(
        'ERR_PREPROCESSOR_CONFIG_MISSING',
        `No image preprocessor config: ${file} does not exist.`,
        'Copy preprocessor_config.json from the base model (e.g. Qwen/Qwen2.5-VL-3B-Instruct) into the folder.',
        { cause: err },
      );
    }
    throw new VlmGrpoError('ERR_PREPROCESSOR_CONFIG', `Could not read ${file}: ${(err as Error).message}`,
      'Check the file permissions and that the path is a readable file.', { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw configError(file, `not valid JSON (${(err as Error).message})`);
  }
  return parsePreprocessorConfig(json, file);
}
