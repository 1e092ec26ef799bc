// The native model loaded through loadModel() against the reference fixtures (an independent PyTorch
// implementation of the HF math): logits, completion log-probs, every parameter gradient, padded batches
// packed without padding, and KV-cached greedy generation. Tolerances are those of test/fixtures/README.md.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type VlmModel } from '../../src/index.js';
import { completionTargets, CONFIG_NAMES, expectClose, expectGradientsMatch, FIXTURES, inputsJson, ints, maxAbs, tensor, type FixtureName } from './fixtures.js';

function f32(name: FixtureName, key: string): Float32Array {
  return tensor(name, key).data as Float32Array;
}

function pick(logprobs: Float32Array, start: number, length: number): Float32Array {
  return logprobs.slice(start - 1, start - 1 + length);
}

for (const name of CONFIG_NAMES) {
  describe(`model vs fixtures: ${name}`, () => {
    let model: VlmModel;
    const cases = inputsJson(name).cases;
    const grid = (g: number[][]) => g.map((x) => [x[0]!, x[1]!, x[2]!] as const);

    beforeAll(async () => {
      model = await loadModel(join(FIXTURES, name));
    });
    afterAll(async () => {
      await model.dispose();
    });

    it('single: logits and completion log-probs', async () => {
      const c = cases.single;
      const inputIds = Int32Array.from(ints(tensor(name, 'single.input_ids')));
      const targets = completionTargets(inputIds, c.completion_start, c.completion_length);
      const out = await model.forward({ inputIds, pixelValues: f32(name, 'single.pixel_values'), imageGridThw: grid(c.image_grid_thw), targets, returnLogits: true });
      expectClose(out.logits!, f32(name, 'single.logits'), 'logits');
      expectClose(pick(out.logprobs!, c.completion_start, c.completion_length), f32(name, 'single.completion_logprobs'), 'completion log-probs');
    });

    it('multi (two images in one prompt) and text only', async () => {
      for (const key of ['multi', 'text_only'] as const) {
        const c = cases[key];
        const inputIds = Int32Array.from(ints(tensor(name, `${key}.input_ids`)));
        const targets = completionTargets(inputIds, c.completion_start, c.completion_length);
        const req = key === 'multi'
          ? { inputIds, pixelValues: f32(name, 'multi.pixel_values'), imageGridThw: grid(c.image_grid_thw), targets, returnLogits: true }
          : { inputIds, targets, returnLogits: true };
        const out = await model.forward(req);
        expectClose(out.logits!, f32(name, `${key}.logits`), `${key} logits`);
        expectClose(pick(out.logprobs!, c.completion_start, c.completion_length), f32(name, `${key}.completion_logprobs`), `${key} log-probs`);
      }
    });

    it('padded batch rows, packed without padding, equal the reference at valid positions', async () => {
      const c = cases.batch;
      const L = c.input_ids[0].length;
      const logits = f32(name, 'batch.logits');
      const pv = f32(name, 'batch.pixel_values');
      const V = model.config.vocabSize;
      const patches = (g: number[]) => g[0]! * g[1]! * g[2]! * model.config.patchInputSize;
      const p0 = patches(c.image_grid_thw[0]);
      const rows = [0, 1].map((r) => {
        const ids = Int32Array.from((c.input_ids[r] as number[]).slice(0, c.lengths[r]));
        return {
          inputIds: ids,
          pixelValues: r === 0 ? pv.slice(0, p0) : pv.slice(p0),
          imageGridThw: grid([c.image_grid_thw[r]]),
          targets: completionTargets(ids, c.completion_start[r], c.completion_length[r]),
        };
      });
      const outs = await model.forwardBatch(rows, { returnLogits: true });
      for (const r of [0, 1]) {
        expectClose(outs[r]!.logits!, logits.slice(r * L * V, (r * L + c.lengths[r]) * V), `row ${r} logits`);
        expectClose(pick(outs[r]!.logprobs!, c.completion_start[r], c.completion_length[r]), f32(name, `batch.completion_logprobs_${r}`), `row ${r} log-probs`);
      }
    });

    it('gradients of every parameter match (relative L2 ≤ 1e-4, max ≤ 2e-4·max|ref|)', async () => {
      const c = cases.single;
      const inputIds = Int32Array.from(ints(tensor(name, 'single.input_ids')));
      const targets = completionTargets(inputIds, c.completion_start, c.completion_length);
      await model.forwardBatch([{ inputIds, pixelValues: f32(name, 'single.pixel_values'), imageGridThw: grid(c.image_grid_thw), targets }], { keepForBackward: true });
      model.zeroGrads();
      // loss = −Σ completion log-probs
      const grad = new Float32Array(inputIds.length);
      for (let n = 0; n < targets.length; n++) if (targets[n]! >= 0) grad[n] = -1;
      await model.backward({ gradLogprobs: grad });
      const g = model.gradients();
      expect(expectGradientsMatch(g, model.layout(), (t) => f32(name, `single.grad.${t}`))).toBeGreaterThan(40);
    });

    it('greedy KV-cached generation equals the reference tokens (single and batched prompts)', async () => {
      const c = cases.generate;
      const inputIds = Int32Array.from(ints(tensor(name, 'generate.input_ids')));
      const [g] = await model.generate({ inputIds, pixelValues: f32(name, 'single.pixel_values'), imageGridThw: grid(c.image_grid_thw) }, { maxNewTokens: c.max_new_tokens, temperature: 0, stopIds: [] });
      expect(Array.from(g!.tokens)).toEqual(c.tokens);
      expect(g!.finishReason).toBe('length');
      // With EOS honoured the completion ends at the first EOS, inclusive.
      const [e] = await model.generate({ inputIds, pixelValues: f32(name, 'single.pixel_values'), imageGridThw: grid(c.image_grid_thw) }, { maxNewTokens: c.max_new_tokens, temperature: 0, stopIds: [497] });
      const firstEos = (c.tokens as number[]).indexOf(497);
      if (firstEos >= 0) {
        expect(Array.from(e!.tokens)).toEqual(c.tokens.slice(0, firstEos + 1));
        expect(e!.finishReason).toBe('stop');
      }
      const b = cases.generate_batch;
      const pv = f32(name, 'batch.pixel_values');
      const p0 = b.image_grid_thw[0].reduce((x: number, y: number) => x * y, 1) * model.config.patchInputSize;
      const prompts = [0, 1].map((r) => ({
        inputIds: Int32Array.from((b.input_ids[r] as number[]).filter((_, i) => b.attention_mask[r][i] === 1)),
        pixelValues: r === 0 ? pv.slice(0, p0) : pv.slice(p0),
        imageGridThw: grid([b.image_grid_thw[r]]),
      }));
      const gens = await model.generate(prompts, { maxNewTokens: b.max_new_tokens, temperature: 0, stopIds: [] });
      expect(gens.map((x) => Array.from(x.tokens))).toEqual(b.tokens);
    });
  });
}
