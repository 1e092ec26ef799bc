// LoRA through loadModel / VlmModel on the tiny-a fixture (Qwen2.5-VL): fresh adapters change nothing, random B
// equals a TypeScript reference built from merged weights (W + s·B·A written to a folder and loaded), adapters:false
// is the base model, PEFT files (config fields, exact key names, both name layouts on load), save -> load round
// trip, mergeLoraInto (F32 and BF16), merged vs on-the-fly generation, the target matching rule, the frozen base in
// backward with a finite-difference check of the adapter gradient, dropout, and bad adapter folders.
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  LORA_TEXT_TARGETS,
  LoraError,
  loadLoraAdapter,
  loadModel,
  mergeLoraInto,
  resolveLoraTargets,
  saveLoraAdapter,
  type ModelInput,
  type VlmModel,
} from '../../src/index.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';
import { cleanupTempDirs, FIXTURES, inputsJson, ints, rng, tempDir, tensor } from './fixtures.js';

const dir = join(FIXTURES, 'tiny-a');
/** Every adaptable layer of Qwen2.5-VL: the decoder's 7 projections (gate/up/down also select the vision MLPs), attention and merger. */
const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'attn.qkv', 'attn.proj', 'merger.mlp.0', 'merger.mlp.2'];
const R = 4;

let model: VlmModel;
let input: ModelInput;
let prompt: ModelInput;
let baseLogits: Float32Array;

beforeAll(async () => {
  model = await loadModel(dir);
  const cases = inputsJson('tiny-a').cases;
  const g = (x: number[][]) => x.map((t) => [t[0]!, t[1]!, t[2]!] as const);
  input = {
    inputIds: Int32Array.from(ints(tensor('tiny-a', 'single.input_ids'))),
    pixelValues: tensor('tiny-a', 'single.pixel_values').data as Float32Array,
    imageGridThw: g(cases.single.image_grid_thw),
  };
  prompt = {
    inputIds: Int32Array.from(ints(tensor('tiny-a', 'generate.input_ids'))),
    pixelValues: tensor('tiny-a', 'single.pixel_values').data as Float32Array,
    imageGridThw: g(cases.generate.image_grid_thw),
  };
  baseLogits = (await model.forward({ ...input, returnLogits: true })).logits!.slice();
});
afterAll(async () => {
  await model.dispose();
  cleanupTempDirs();
});

async function logitsOf(m: VlmModel, opts: { adapters?: boolean } = {}): Promise<Float32Array> {
  return (await m.forward({ ...input, returnLogits: true, ...opts })).logits!.slice();
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Gives every lora_B tensor seeded random values in [-0.5, 0.5). */
function randomizeB(m: VlmModel, salt: number): void {
  const r = rng(salt);
  const p = m.loraParameters();
  for (const t of m.loraLayout()) if (t.kind === 'B') for (let i = 0; i < t.numel; i++) p[t.offset + i] = r() - 0.5;
}

/** The TS reference: base weights with W + s·B·A (float64 sums) for every adapted layer, written as a model folder. */
function writeReferenceMerge(m: VlmModel): string {
  const out = tempDir();
  for (const f of ['config.json', 'preprocessor_config.json']) copyFileSync(join(dir, f), join(out, f));
  const base = readSafetensors(join(dir, 'model.safetensors'));
  const cfg = m.loraConfig!;
  const p = m.loraParameters();
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of base) tensors.set(name, { dtype: 'F32', shape: t.shape, data: (t.data as Float32Array).slice() });
  const layout = m.loraLayout();
  for (const mod of cfg.modules) {
    const a = layout.find((t) => t.module === mod && t.kind === 'A')!;
    const b = layout.find((t) => t.module === mod && t.kind === 'B')!;
    const [rank, inF] = a.shape as [number, number];
    const outF = b.shape[0]!;
    const W = tensors.get(`${mod}.weight`)!.data as Float32Array;
    expect(W.length).toBe(outF * inF);
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let k = 0; k < rank; k++) s += p[b.offset + o * rank + k]! * p[a.offset + k * inF + i]!;
        W[o * inF + i] = W[o * inF + i]! + cfg.scale * s;
      }
    }
  }
  writeSafetensors(join(out, 'model.safetensors'), tensors, { format: 'pt' });
  return out;
}

describe('adapters in the forward pass', () => {
  it('a fresh adapter (B = 0) leaves the logits unchanged; random B changes them and equals merged reference weights', async () => {
    const cfg = await model.enableLora({ r: R, alpha: 8, targetModules: ALL_TARGETS, seed: 3 });
    try {
      expect(cfg.modules).toHaveLength(2 * 7 + 2 * 5 + 2);
      expect(cfg.scale).toBe(2);
      expect(await logitsOf(model)).toEqual(baseLogits);
      // A is seeded kaiming-uniform: within ±1/sqrt(in), and B is zero.
      const p = model.loraParameters();
      for (const t of model.loraLayout()) {
        const v = p.subarray(t.offset, t.offset + t.numel);
        if (t.kind === 'B') expect(maxAbs(v)).toBe(0);
        else {
          expect(maxAbs(v)).toBeLessThanOrEqual(1 / Math.sqrt(t.shape[1]!));
          expect(maxAbs(v)).toBeGreaterThan(0.5 / Math.sqrt(t.shape[1]!));
        }
      }
      randomizeB(model, 11);
      const adapted = await logitsOf(model);
      expect(maxAbsDiff(adapted, baseLogits)).toBeGreaterThan(1e-2);
      const ref = await loadModel(writeReferenceMerge(model));
      try {
        const want = await logitsOf(ref);
        expect(maxAbsDiff(adapted, want)).toBeLessThanOrEqual(1e-4 * Math.max(1, maxAbs(want)));
      } finally {
        await ref.dispose();
      }
      // adapters:false is the base model, exactly.
      expect(await logitsOf(model, { adapters: false })).toEqual(baseLogits);
    } finally {
      await model.disableLora();
    }
    expect(model.loraConfig).toBeUndefined();
    expect(await logitsOf(model)).toEqual(baseLogits);
  });

  it('backward trains the adapters only, and their gradient matches a finite difference', async () => {
    await model.enableLora({ r: R, alpha: 16, targetModules: LORA_TEXT_TARGETS, seed: 5 });
    try {
      randomizeB(model, 12);
      const c = inputsJson('tiny-a').cases.single;
      const targets = new Int32Array(input.inputIds.length).fill(-1);
      for (let j = 0; j < c.completion_length; j++) targets[c.completion_start + j - 1] = input.inputIds[c.completion_start + j]!;
      const loss = async (): Promise<number> => {
        const [o] = await model.forwardBatch([{ ...input, targets }]);
        let s = 0;
        for (const v of o!.logprobs!) s -= v;
        return s;
      };
      const base = model.gradients();
      base.fill(0);
      await model.forwardBatch([{ ...input, targets }], { keepForBackward: true });
      model.zeroGrads();
      const grad = new Float32Array(input.inputIds.length);
      for (let n = 0; n < targets.length; n++) if (targets[n]! >= 0) grad[n] = -1;
      await model.backward({ gradLogprobs: grad });
      expect(maxAbs(base)).toBe(0);  // frozen: no base-weight gradient at all
      const g = Float64Array.from(model.loraGradients());
      const layout = model.loraLayout();
      expect(layout.every((t) => !t.vision)).toBe(true);
      // Directional derivative along a random direction over all adapter parameters (float32: loose tolerance).
      const r = rng(13);
      const p = model.loraParameters();
      const keep = p.slice();
      const d = Float64Array.from({ length: p.length }, () => r() - 0.5);
      let gd = 0;
      for (let i = 0; i < p.length; i++) gd += g[i]! * d[i]!;
      const eps = 1e-3;  // curvature along d is large: 1e-2 leaves O(10%) truncation error, 1e-3 about 0.1%
      for (let i = 0; i < p.length; i++) p[i] = keep[i]! + eps * d[i]!;
      const lp = await loss();
      for (let i = 0; i < p.length; i++) p[i] = keep[i]! - eps * d[i]!;
      const lm = await loss();
      p.set(keep);
      const fd = (lp - lm) / (2 * eps);
      expect(Math.abs(gd)).toBeGreaterThan(1e-3);
      expect(Math.abs(fd - gd)).toBeLessThanOrEqual(1e-2 * Math.abs(gd) + 1e-3);
    } finally {
      await model.disableLora();
    }
  });

  it('dropout applies to training forwards only', async () => {
    await model.enableLora({ r: R, alpha: 16, dropout: 0.5, targetModules: ['q_proj', 'v_proj'], seed: 7 });
    try {
      randomizeB(model, 14);
      const evalA = await logitsOf(model);
      const [train] = await model.forwardBatch([input], { returnLogits: true, keepForBackward: true });
      const evalB = await logitsOf(model);
      expect(evalB).toEqual(evalA);
      expect(maxAbsDiff(train!.logits!, evalA)).toBeGreaterThan(1e-4);
    } finally {
      await model.disableLora();
    }
  });
});

describe('PEFT adapter files', () => {
  it('save -> load round trip gives identical outputs; config fields and key names are PEFT\'s', async () => {
    const out = tempDir();
    await model.enableLora({ r: R, alpha: 8, dropout: 0.05, targetModules: ALL_TARGETS, seed: 21 });
    let adapted: Float32Array;
    let params: Float32Array;
    try {
      randomizeB(model, 22);
      adapted = await logitsOf(model);
      params = model.loraParameters().slice();
      await saveLoraAdapter(model, out);
    } finally {
      await model.disableLora();
    }
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA', r: R, lora_alpha: 8, lora_dropout: 0.05, target_modules: ALL_TARGETS, bias: 'none',
      task_type: 'CAUSAL_LM', use_rslora: false, fan_in_fan_out: false, use_dora: false, modules_to_save: null,
      rank_pattern: {}, alpha_pattern: {}, base_model_name_or_path: dir,
    });
    expect(cfg).not.toHaveProperty('exclude_modules');
    const h = readSafetensorsHeader(join(out, 'adapter_model.safetensors'));
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors).toHaveLength(2 * 26);
    const shape = (k: string) => h.byName.get(k)?.shape;
    expect(shape('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toEqual([R, 64]);
    expect(shape('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight')).toEqual([32, R]);
    expect(shape('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')).toEqual([R, 128]);
    expect(shape('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')).toEqual([64, R]);
    expect(shape('base_model.model.visual.blocks.0.attn.qkv.lora_B.weight')).toEqual([96, R]);
    expect(shape('base_model.model.visual.blocks.1.mlp.gate_proj.lora_A.weight')).toEqual([R, 32]);
    expect(shape('base_model.model.visual.merger.mlp.0.lora_A.weight')).toEqual([R, 128]);
    expect(shape('base_model.model.visual.merger.mlp.2.lora_B.weight')).toEqual([64, R]);
    expect(h.tensors.every((t) => t.dtype === 'F32')).toBe(true);

    // Load into a fresh model: identical parameters and outputs.
    const m2 = await loadModel(dir);
    try {
      const loaded = await loadLoraAdapter(m2, out);
      expect(loaded).toMatchObject({ r: R, alpha: 8, dropout: 0.05, rsLora: false });
      expect(m2.loraParameters()).toEqual(params);
      expect(await logitsOf(m2)).toEqual(adapted);

      // PEFT's keys for the transformers >= 4.52 layout load too (and in BF16).
      const renamed = tempDir();
      copyFileSync(join(out, 'adapter_config.json'), join(renamed, 'adapter_config.json'));
      const src = readSafetensors(join(out, 'adapter_model.safetensors'));
      const t2 = new Map<string, TensorToWrite>();
      for (const [k, t] of src) {
        const nk = k.replace('base_model.model.model.layers.', 'base_model.model.model.language_model.layers.').replace('base_model.model.visual.', 'base_model.model.model.visual.');
        t2.set(nk, { dtype: 'BF16', shape: t.shape, data: t.data as Float32Array });
      }
      expect(t2.has('base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight')).toBe(true);
      expect(t2.has('base_model.model.model.visual.blocks.0.attn.qkv.lora_A.weight')).toBe(true);
      writeSafetensors(join(renamed, 'adapter_model.safetensors'), t2, { format: 'pt' });
      await loadLoraAdapter(m2, renamed);
      const bf = await logitsOf(m2);
      expect(maxAbsDiff(bf, adapted)).toBeGreaterThan(0);  // really rounded to bf16
      expect(maxAbsDiff(bf, adapted)).toBeLessThan(0.05 * maxAbs(adapted));
    } finally {
      await m2.dispose();
    }
  });

  it('bad adapter folders fail with errors naming the file and the key, and leave the model as it was', async () => {
    const good = tempDir();
    await model.enableLora({ r: R, alpha: 8, targetModules: ['q_proj', 'v_proj', 'attn.qkv'], seed: 31 });
    try {
      await saveLoraAdapter(model, good);
    } finally {
      await model.disableLora();
    }
    const variant = (edit: (d: string) => void): string => {
      const d = tempDir();
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) copyFileSync(join(good, f), join(d, f));
      edit(d);
      return d;
    };
    const editConfig = (d: string, fn: (c: Record<string, unknown>) => void): void => {
      const c = JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8'));
      fn(c);
      writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(c));
    };
    const editWeights = (d: string, fn: (m: Map<string, TensorToWrite>) => void): void => {
      const src = readSafetensors(join(d, 'adapter_model.safetensors'));
      const m = new Map<string, TensorToWrite>([...src].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: t.data as Float32Array }]));
      fn(m);
      writeSafetensors(join(d, 'adapter_model.safetensors'), m);
    };
    const expectLoraError = async (d: string, re: RegExp, file: string, key: string | null): Promise<void> => {
      const err = await loadLoraAdapter(model, d).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(LoraError);
      expect((err as LoraError).message).toMatch(re);
      expect((err as LoraError).file).toBe(join(d, file));
      expect((err as LoraError).key).toBe(key);
      expect(model.loraConfig).toBeUndefined();  // nothing was applied
    };
    await expectLoraError(tempDir(), /no adapter_config\.json/, 'adapter_config.json', null);
    await expectLoraError(variant((d) => rmSync(join(d, 'adapter_model.safetensors'))), /no adapter_model\.safetensors/, 'adapter_model.safetensors', null);
    const q = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
    await expectLoraError(variant((d) => editConfig(d, (c) => { c.r = 8; })), new RegExp(`${q.replace(/\./g, '\\.')} has rank 4 .* says r = 8`), 'adapter_model.safetensors', q);
    const missing = 'base_model.model.visual.blocks.1.attn.qkv.lora_B.weight';
    await expectLoraError(variant((d) => editWeights(d, (m) => { m.delete(missing); })), new RegExp(`missing key ${missing.replace(/\./g, '\\.')}`), 'adapter_model.safetensors', missing);
    const extra = 'base_model.model.model.layers.0.mlp.up_proj.lora_A.weight';
    await expectLoraError(
      variant((d) => editWeights(d, (m) => { m.set(extra, { dtype: 'F32', shape: [R, 64], data: new Float32Array(R * 64) }); })),
      /unexpected key .*up_proj\.lora_A\.weight/, 'adapter_model.safetensors', extra);
    await expectLoraError(variant((d) => editConfig(d, (c) => { c.use_dora = true; })), /use_dora: true: DoRA is not supported/, 'adapter_config.json', 'use_dora');
    await expectLoraError(variant((d) => editConfig(d, (c) => { c.peft_type = 'IA3'; })), /peft_type: "IA3" is not "LORA"/, 'adapter_config.json', 'peft_type');
    await expectLoraError(variant((d) => editConfig(d, (c) => { c.target_modules = ['nothing_here']; })), /target_modules: .*selects no layer/, 'adapter_config.json', 'target_modules');
    // A shape that fits r but not the base model (an adapter for another model).
    await expectLoraError(
      variant((d) => editWeights(d, (m) => { m.set(q, { dtype: 'F32', shape: [R, 32], data: new Float32Array(R * 32) }); })),
      /has shape \[4, 32\] but the base model's model\.layers\.0\.self_attn\.q_proj \(in 64, out 64\) needs \[4, 64\]/, 'adapter_model.safetensors', q);
    // A failed load keeps existing adapters.
    await loadLoraAdapter(model, good);
    const before = model.loraParameters().slice();
    await expect(loadLoraAdapter(model, variant((d) => editConfig(d, (c) => { c.bias = 'all'; })))).rejects.toThrow(/bias: "all"/);
    expect(model.loraParameters()).toEqual(before);
    await model.disableLora();
  });
});

describe('merging', () => {
  it('mergeLoraInto writes a folder that loadModel loads and that gives the adapted model\'s logits (F32 and BF16)', async () => {
    await model.enableLora({ r: R, alpha: 8, targetModules: ALL_TARGETS, seed: 41 });
    try {
      randomizeB(model, 42);
      const adapted = await logitsOf(model);
      const f32 = join(tempDir(), 'merged');
      await mergeLoraInto(model, f32);
      for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) expect(existsSync(join(f32, f))).toBe(true);
      expect(JSON.parse(readFileSync(join(f32, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
      const names = readSafetensorsHeader(join(f32, 'model.safetensors')).tensors.map((t) => t.name).sort();
      expect(names).toEqual(readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.map((t) => t.name).sort());
      const m = await loadModel(f32);
      try {
        expect(maxAbsDiff(await logitsOf(m), adapted)).toBeLessThanOrEqual(1e-4 * Math.max(1, maxAbs(adapted)));
      } finally {
        await m.dispose();
      }
      const bf = tempDir();
      await mergeLoraInto(model, bf, { dtype: 'BF16' });
      expect(readSafetensorsHeader(join(bf, 'model.safetensors')).tensors.every((t) => t.dtype === 'BF16')).toBe(true);
      const mb = await loadModel(bf);
      try {
        const d = maxAbsDiff(await logitsOf(mb), adapted);
        expect(d).toBeGreaterThan(0);
        expect(d).toBeLessThan(0.05 * maxAbs(adapted));
      } finally {
        await mb.dispose();
      }
      await expect(mergeLoraInto(model, dir)).rejects.toThrow(/base model's folder/);
      // The base was never modified.
      expect(await logitsOf(model, { adapters: false })).toEqual(baseLogits);
    } finally {
      await model.disableLora();
    }
    await expect(mergeLoraInto(model, tempDir())).rejects.toThrow(/no LoRA adapters/);
  });

  it('generation with merged and on-the-fly adapters agrees (tokens, log-probs within 1e-5)', async () => {
    await model.enableLora({ r: R, alpha: 8, targetModules: ALL_TARGETS, seed: 51 });
    try {
      randomizeB(model, 52);
      for (const opts of [{ temperature: 0 }, { temperature: 1.2, numSamples: 3, seed: 9 }]) {
        const a = await model.generate(prompt, { maxNewTokens: 10, stopIds: [], ...opts, mergeAdapters: true });
        const b = await model.generate(prompt, { maxNewTokens: 10, stopIds: [], ...opts, mergeAdapters: false });
        expect(a.map((x) => Array.from(x.tokens))).toEqual(b.map((x) => Array.from(x.tokens)));
        for (let i = 0; i < a.length; i++) expect(maxAbsDiff(a[i]!.logprobs, b[i]!.logprobs)).toBeLessThanOrEqual(1e-5);
      }
      // Greedy adapted tokens are the argmax of the adapted forward; adapters:false generates with the base.
      const [g] = await model.generate(prompt, { maxNewTokens: 1, temperature: 0, stopIds: [] });
      const V = model.config.vocabSize;
      const last = (await model.forward({ ...prompt, returnLogits: true })).logits!.subarray((prompt.inputIds.length - 1) * V);
      expect(g!.tokens[0]).toBe(last.indexOf(Math.max(...last)));
      const [off] = await model.generate(prompt, { maxNewTokens: 6, temperature: 0, stopIds: [], adapters: false });
      await model.disableLora();
      const [base] = await model.generate(prompt, { maxNewTokens: 6, temperature: 0, stopIds: [] });
      expect(Array.from(off!.tokens)).toEqual(Array.from(base!.tokens));
      expect(maxAbsDiff(off!.logprobs, base!.logprobs)).toBe(0);
    } finally {
      if (model.loraConfig) await model.disableLora();
    }
  });
});

describe('targets and options', () => {
  it('follows PEFT\'s target_modules rule on both name layouts', () => {
    const c = model.config;
    expect(resolveLoraTargets(c, ['q_proj'])).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
    // Qwen2.5-VL's vision blocks have gate_proj too: a bare suffix selects them, as in PEFT.
    expect(resolveLoraTargets(c, ['gate_proj'])).toEqual([
      'model.layers.0.mlp.gate_proj', 'model.layers.1.mlp.gate_proj', 'visual.blocks.0.mlp.gate_proj', 'visual.blocks.1.mlp.gate_proj',
    ]);
    const text = resolveLoraTargets(c, LORA_TEXT_TARGETS);
    expect(text).toHaveLength(14);
    expect(text.some((n) => n.startsWith('visual.'))).toBe(false);
    expect(resolveLoraTargets(c, ['gate_proj'], 'visual\\..*')).toHaveLength(2);
    expect(resolveLoraTargets(c, 'model\\.language_model\\.layers\\.1\\..*')).toHaveLength(7);  // new-layout names match
    expect(resolveLoraTargets(c, ['model.visual.merger.mlp.0', 'blocks.1.attn.proj'])).toEqual(['visual.blocks.1.attn.proj', 'visual.merger.mlp.0']);
    expect(() => resolveLoraTargets(c, 'q_proj')).toThrow(/selects no layer/);  // a regex must match a whole name
  });

  it('rejects bad options with errors naming the field', async () => {
    await expect(model.enableLora({ r: 0, targetModules: ['q_proj'] })).rejects.toThrow(RangeError);
    await expect(model.enableLora({ r: 2, dropout: 1, targetModules: ['q_proj'] })).rejects.toThrow(/dropout must be in \[0, 1\), got 1/);
    await expect(model.enableLora({ r: 2, targetModules: ['q_porj'] })).rejects.toThrow(/'q_porj' selects no layer.*self_attn\.q_proj/);
    await expect(model.enableLora({ r: 2, targetModules: ['lm_head'] })).rejects.toThrow(/'lm_head' cannot be adapted/);
    await expect(model.enableLora({ r: 2, targetModules: ['all-linear'] })).rejects.toThrow(/all-linear/);
    await expect(model.enableLora({ r: 2, targetModules: '(' })).rejects.toThrow(/not a valid regular expression/);
    await expect(model.enableLora({ r: 2, targetModules: ['q_proj'], rank: 3 } as never)).rejects.toThrow(/unknown option 'rank'/);
    await expect(model.enableLora({ r: 2 } as never)).rejects.toThrow(/targetModules is required/);
    expect(model.loraConfig).toBeUndefined();
    expect(() => model.loraParameters()).toThrow(/no LoRA adapters/);
  });
});
