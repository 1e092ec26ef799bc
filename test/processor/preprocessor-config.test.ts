import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VlmGrpoError } from '../../src/errors.js';
import {
  DEFAULT_PREPROCESSOR_CONFIG,
  loadPreprocessorConfig,
  parsePreprocessorConfig,
} from '../../src/processor/preprocessor-config.js';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;

function errorOf(fn: () => unknown): VlmGrpoError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VlmGrpoError);
    return e as VlmGrpoError;
  }
  throw new Error('expected an error');
}

describe('preprocessor_config.json', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'vg-ppc-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('reads the fixture checkpoint config (hub values)', async () => {
    const cfg = await loadPreprocessorConfig(path.join(FIXTURES, 'tiny-a'));
    expect(cfg).toEqual({
      minPixels: 3136,
      maxPixels: 12845056,
      patchSize: 14,
      temporalPatchSize: 2,
      mergeSize: 2,
      imageMean: [0.48145466, 0.4578275, 0.40821073],
      imageStd: [0.26862954, 0.26130258, 0.27577711],
      rescaleFactor: 1 / 255,
      doResize: true,
      doRescale: true,
      doNormalize: true,
      doConvertRgb: true,
    });
    // A path to the file itself works too.
    const same = await loadPreprocessorConfig(path.join(FIXTURES, 'tiny-a', 'preprocessor_config.json'));
    expect(same).toEqual(cfg);
  });

  it('defaults to the HF class defaults and accepts the v5 size form', () => {
    expect(parsePreprocessorConfig({})).toEqual(DEFAULT_PREPROCESSOR_CONFIG);
    expect(DEFAULT_PREPROCESSOR_CONFIG.maxPixels).toBe(28 * 28 * 1280);
    const v5 = parsePreprocessorConfig({ size: { shortest_edge: 4096, longest_edge: 802816 } });
    expect([v5.minPixels, v5.maxPixels]).toEqual([4096, 802816]);
    // Explicit min_pixels / max_pixels win over size, as in HF's __init__.
    const both = parsePreprocessorConfig({ min_pixels: 1000, size: { shortest_edge: 4096, longest_edge: 802816 } });
    expect([both.minPixels, both.maxPixels]).toEqual([1000, 802816]);
    // A single number for mean/std is broadcast; unknown keys are ignored.
    const scalar = parsePreprocessorConfig({ image_mean: 0.5, image_std: 0.25, processor_class: 'X', video_foo: 1 });
    expect([scalar.imageMean, scalar.imageStd]).toEqual([
      [0.5, 0.5, 0.5],
      [0.25, 0.25, 0.25],
    ]);
    expect(parsePreprocessorConfig({ do_rescale: false, do_normalize: false }).doNormalize).toBe(false);
  });

  it('rejects bad fields with errors naming the file and the field', () => {
    const e1 = errorOf(() => parsePreprocessorConfig({ patch_size: '14' }, '/m/preprocessor_config.json'));
    expect(e1.code).toBe('ERR_PREPROCESSOR_CONFIG');
    expect(e1.message).toContain('/m/preprocessor_config.json');
    expect(e1.message).toContain('"patch_size"');
    const e2 = errorOf(() => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }));
    expect(e2.message).toContain('"image_mean"');
    const e3 = errorOf(() => parsePreprocessorConfig({ size: { shortest_edge: 10 } }));
    expect(e3.message).toContain('"size.longest_edge"');
    const e4 = errorOf(() => parsePreprocessorConfig({ resample: 2 }));
    expect(e4.message).toMatch(/"resample" is 2, but only 3 \(PIL BICUBIC/);
    const e5 = errorOf(() => parsePreprocessorConfig({ min_pixels: 5000, max_pixels: 4000 }));
    expect(e5.message).toMatch(/min pixels \(5000\) exceed max pixels \(4000\)/);
    const e6 = errorOf(() => parsePreprocessorConfig({ image_std: [0.2, 0, 0.2] }));
    expect(e6.message).toContain('"image_std" contains 0');
    expect(() => parsePreprocessorConfig([])).toThrow(VlmGrpoError);
  });

  it('missing or malformed files give clear errors; optional falls back to defaults', async () => {
    const empty = path.join(tmp, 'empty-model');
    await import('node:fs/promises').then((fs) => fs.mkdir(empty));
    await expect(loadPreprocessorConfig(empty)).rejects.toMatchObject({
      code: 'ERR_PREPROCESSOR_CONFIG_MISSING',
      message: expect.stringContaining(path.join(empty, 'preprocessor_config.json')),
    });
    expect(await loadPreprocessorConfig(empty, { optional: true })).toEqual(DEFAULT_PREPROCESSOR_CONFIG);
    const bad = path.join(tmp, 'bad.json');
    writeFileSync(bad, '{ "min_pixels": 3136, ');
    await expect(loadPreprocessorConfig(bad)).rejects.toMatchObject({
      code: 'ERR_PREPROCESSOR_CONFIG',
      message: expect.stringMatching(/bad\.json: not valid JSON/),
    });
    const wrong = path.join(tmp, 'wrong.json');
    writeFileSync(wrong, JSON.stringify({ merge_size: -2 }));
    await expect(loadPreprocessorConfig(wrong)).rejects.toMatchObject({ message: expect.stringContaining('"merge_size"') });
  });
});
