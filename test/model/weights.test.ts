import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  canonicalWeightName,
  expectedWeights,
  ModelConfigError,
  ModelWeightsError,
  parseModelConfig,
  planWeights,
  readModelConfig,
  readModelFolder,
  readPlannedWeights,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
  type LoadedTensor,
  type SafetensorsDtype,
  type TensorToWrite,
} from '../../src/model/index.js';
import { cleanupTempDirs, CONFIG_NAMES, expected, FIXTURES, fixtureConfigJson, tempDir, thrown, type FixtureName } from './fixtures.js';

afterAll(cleanupTempDirs);

/** Bitwise equality of two float arrays (fast path for large tensors; vitest's deep equality is slow on them). */
function sameBits(a: ArrayBufferView | undefined, b: ArrayBufferView): boolean {
  if (!a) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const original = new Map<FixtureName, Map<string, LoadedTensor>>();
function weightsOf(name: FixtureName): Map<string, LoadedTensor> {
  let m = original.get(name);
  if (!m) {
    m = readSafetensors(join(FIXTURES, name, 'model.safetensors'));
    original.set(name, m);
  }
  return m;
}

/** A model folder with the fixture's config.json and the given tensors (renamed / recast / reshaped as asked). */
function folderWith(
  name: FixtureName,
  edit: (tensors: Map<string, TensorToWrite>) => void,
  opts: { config?: Record<string, unknown> } = {},
): string {
  const d = tempDir();
  writeFileSync(join(d, 'config.json'), JSON.stringify(opts.config ?? fixtureConfigJson(name)));
  const tensors = new Map<string, TensorToWrite>();
  for (const [k, t] of weightsOf(name)) tensors.set(k, { dtype: t.dtype, shape: t.shape, data: t.data });
  edit(tensors);
  writeSafetensors(join(d, 'model.safetensors'), tensors, { format: 'pt' });
  return d;
}

function weightsError(fn: () => unknown): ModelWeightsError {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(ModelWeightsError);
  expect((e as ModelWeightsError).code).toBe('ERR_MODEL_WEIGHTS');
  return e as ModelWeightsError;
}

describe('weights: fixture checkpoints validate against their configs', () => {
  for (const name of CONFIG_NAMES) {
    it(`${name}: plan covers every parameter with the shapes of the fixture gradients`, () => {
      const dir = join(FIXTURES, name);
      const config = readModelConfig(dir);
      const plan = planWeights(dir, config);
      const file = join(dir, 'model.safetensors');
      expect(plan.indexFile).toBeNull();
      expect(plan.files.map((f) => f.path)).toEqual([file]);
      expect(plan.layout).toBe('hub');
      expect(plan.ignored).toEqual([]);
      // expected.safetensors holds single.grad.<param> for every parameter: an independent list of names and shapes
      const grads = [...expected(name).keys()].filter((k) => k.startsWith('single.grad.')).map((k) => k.slice('single.grad.'.length));
      expect(plan.params.map((p) => p.name).sort()).toEqual(grads.sort());
      for (const p of plan.params) expect(p.shape).toEqual(expected(name).get(`single.grad.${p.name}`)!.shape);
      expect(plan.params.length).toBe(name === 'tiny-a' ? 56 : 58);
      expect(plan.tiedLmHead).toBe(name === 'tiny-a');
      expect(plan.params.some((p) => p.name === 'lm_head.weight')).toBe(name !== 'tiny-a');
      expect(plan.totalParams).toBe(plan.params.reduce((a, p) => a + p.numel, 0));
      // byte ranges in the plan address exactly the tensor data
      const values = readPlannedWeights(plan);
      for (const p of plan.params) {
        expect(p.dtype).toBe('F32');
        expect(p.file).toBe(file);
        expect(p.byteLength).toBe(p.numel * 4);
        expect(sameBits(values.get(p.name), weightsOf(name).get(p.name)!.data)).toBe(true);
      }
    });
  }

  it('readModelFolder validates a whole folder and rejects folders that are not supported models', () => {
    const f = readModelFolder(join(FIXTURES, 'tiny-q2vl'));
    expect(f.config.modelType).toBe('qwen2_vl');
    expect(f.weights.params.length).toBe(58);
    expect(f.generation.file).toBeNull();
    expect(f.files.preprocessorConfig).toBe(join(FIXTURES, 'tiny-q2vl', 'preprocessor_config.json'));
    expect(f.files.tokenizer).toBeNull();

    const empty = tempDir();
    expect(thrown(() => readModelFolder(empty))).toBeInstanceOf(ModelConfigError);
    const llama = tempDir();
    writeFileSync(join(llama, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64 }));
    expect(thrown(() => readModelFolder(llama)).message).toContain('unsupported model type "llama"');
    const noWeights = tempDir();
    copyFileSync(join(FIXTURES, 'tiny-a', 'config.json'), join(noWeights, 'config.json'));
    const e = weightsError(() => readModelFolder(noWeights));
    expect(e.message).toContain(`${noWeights}: no weights found: neither model.safetensors nor model.safetensors.index.json exists`);
  });
});

describe('weights: names', () => {
  it('normalises both layouts to the Hub names', () => {
    expect(canonicalWeightName('model.language_model.layers.3.mlp.up_proj.weight')).toBe('model.layers.3.mlp.up_proj.weight');
    expect(canonicalWeightName('model.visual.blocks.0.attn.qkv.bias')).toBe('visual.blocks.0.attn.qkv.bias');
    expect(canonicalWeightName('model.embed_tokens.weight')).toBe('model.embed_tokens.weight');
    expect(canonicalWeightName('visual.merger.mlp.0.weight')).toBe('visual.merger.mlp.0.weight');
    expect(canonicalWeightName('lm_head.weight')).toBe('lm_head.weight');
  });

  it('a copy with transformers ≥ 4.52 names (model.language_model.*, model.visual.*) validates', () => {
    for (const name of CONFIG_NAMES) {
      const d = folderWith(name, (t) => {
        for (const [k, v] of [...t]) {
          t.delete(k);
          t.set(k.startsWith('visual.') ? `model.${k}` : k.startsWith('model.') ? k.replace(/^model\./, 'model.language_model.') : k, v);
        }
      });
      const plan = planWeights(d, readModelConfig(d));
      expect(plan.layout).toBe('language_model');
      const ref = planWeights(join(FIXTURES, name), readModelConfig(join(FIXTURES, name)));
      expect(plan.params.map((p) => p.name)).toEqual(ref.params.map((p) => p.name));
      const qkv = plan.params.find((p) => p.name === 'visual.blocks.1.attn.qkv.weight')!;
      expect(qkv.sourceName).toBe('model.visual.blocks.1.attn.qkv.weight');
      const values = readPlannedWeights(plan, ['visual.blocks.1.attn.qkv.weight', 'model.norm.weight']);
      expect(sameBits(values.get('model.norm.weight'), weightsOf(name).get('model.norm.weight')!.data)).toBe(true);
      expect(sameBits(values.get('visual.blocks.1.attn.qkv.weight'), weightsOf(name).get('visual.blocks.1.attn.qkv.weight')!.data)).toBe(true);
    }
  });

  it('the same tensor under both layouts is an error naming both', () => {
    const d = folderWith('tiny-a', (t) => t.set('model.language_model.norm.weight', t.get('model.norm.weight')!));
    const e = weightsError(() => planWeights(d, readModelConfig(d)));
    expect(e.message).toMatch(/duplicates/);
    expect(e.message).toContain('model.language_model.norm.weight');
    expect(e.message).toContain('model.norm.weight');
  });
});

describe('weights: mismatches name the file and the tensor', () => {
  it('a truncated copy fails naming the file and the tensor', () => {
    const d = tempDir();
    copyFileSync(join(FIXTURES, 'tiny-a', 'config.json'), join(d, 'config.json'));
    const bytes = readFileSync(join(FIXTURES, 'tiny-a', 'model.safetensors'));
    const file = join(d, 'model.safetensors');
    writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
    const e = thrown(() => planWeights(d, readModelConfig(d))) as SafetensorsError;
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.file).toBe(file);
    expect(e.tensor).toBe('visual.patch_embed.proj.weight'); // the last tensor in the file
    expect(e.message).toContain(`${file}: tensor visual.patch_embed.proj.weight: file is truncated`);
  });

  it('a shape mismatch names the tensor, both shapes and the file', () => {
    const d = folderWith('tiny-a', (t) => t.set('model.layers.1.self_attn.k_proj.weight', { dtype: 'F32', shape: [64, 64], data: new Float32Array(64 * 64).fill(0.5) }));
    const e = weightsError(() => planWeights(d, readModelConfig(d)));
    expect(e.file).toBe(join(d, 'model.safetensors'));
    expect(e.tensor).toBe('model.layers.1.self_attn.k_proj.weight');
    expect(e.message).toBe(`${join(d, 'model.safetensors')}: tensor model.layers.1.self_attn.k_proj.weight has shape [64, 64] but config.json implies [32, 64]\n  → ${e.remedy}`);
  });

  it('missing, unexpected and non-float tensors are all reported', () => {
    const d = folderWith('tiny-q2vl', (t) => {
      t.delete('lm_head.weight');
      t.delete('visual.blocks.0.norm1.bias');
      t.set('model.layers.2.mlp.up_proj.weight', { dtype: 'F32', shape: [96, 64], data: new Float32Array(96 * 64) });
      t.set('model.norm.weight', { dtype: 'I32', shape: [64], data: new Int32Array(64) });
    });
    const e = weightsError(() => planWeights(d, readModelConfig(d)));
    const f = join(d, 'model.safetensors');
    expect(e.problems).toEqual([
      `${f}: missing tensor visual.blocks.0.norm1.bias (expected shape [32])`,
      `${f}: tensor model.norm.weight has dtype I32; parameters must be F32, BF16, F16`,
      `${f}: missing tensor lm_head.weight (expected shape [512, 64]) (config.json has tie_word_embeddings: false; if the checkpoint shares embed_tokens as the head, set it to true)`,
      `${f}: unexpected tensor model.layers.2.mlp.up_proj.weight (config.json has num_hidden_layers 2): not a parameter of this qwen2_vl config`,
    ]);
    expect(e.tensor).toBe('visual.blocks.0.norm1.bias');
  });

  it('the wrong model type for the weights fails (Qwen2.5-VL config on Qwen2-VL weights)', () => {
    const cfg = readModelConfig(join(FIXTURES, 'tiny-a'));
    const e = weightsError(() => planWeights(join(FIXTURES, 'tiny-q2vl'), cfg));
    expect(e.problems).toContain(`${join(FIXTURES, 'tiny-q2vl', 'model.safetensors')}: missing tensor visual.blocks.0.mlp.gate_proj.weight (expected shape [64, 32])`);
    expect(e.problems.some((p) => p.includes('unexpected tensor visual.blocks.0.mlp.fc1.weight'))).toBe(true);
    expect(e.problems.length).toBe(39);
    expect(e.message).toContain('… and 27 more');
    expect(e.remedy).toContain('look like a Qwen2-VL checkpoint (visual.blocks.*.mlp.fc1.weight) but config.json says model_type "qwen2_5_vl"');
  });

  it('a tied model that still carries lm_head.weight loads it as ignored', () => {
    const d = folderWith('tiny-a', (t) => t.set('lm_head.weight', t.get('model.embed_tokens.weight')!));
    const plan = planWeights(d, readModelConfig(d));
    expect(plan.params.length).toBe(56);
    expect(plan.ignored).toEqual([{ name: 'lm_head.weight', file: join(d, 'model.safetensors'), reason: expect.stringContaining('tie_word_embeddings') }]);
  });

  it('expected shapes follow the config (tiny-b-like: MHA, head_dim 24, 3 vision blocks, untied)', () => {
    const raw = fixtureConfigJson('tiny-a');
    const c = parseModelConfig({
      ...raw,
      hidden_size: 96,
      intermediate_size: 160,
      num_hidden_layers: 3,
      num_key_value_heads: 4,
      tie_word_embeddings: false,
      rope_scaling: { type: 'mrope', mrope_section: [3, 4, 5] },
      vision_config: { ...(raw.vision_config as object), depth: 3, hidden_size: 48, intermediate_size: 80, out_hidden_size: 96, window_size: 112 },
    });
    const w = new Map(expectedWeights(c).map((e) => [e.name, e.shape]));
    expect(w.size).toBe(81); // test/fixtures/README.md: 81 parameter tensors for tiny-b
    expect(w.get('model.layers.2.self_attn.k_proj.weight')).toEqual([96, 96]);
    expect(w.get('model.layers.0.mlp.down_proj.weight')).toEqual([96, 160]);
    expect(w.get('visual.blocks.2.mlp.gate_proj.weight')).toEqual([80, 48]);
    expect(w.get('visual.patch_embed.proj.weight')).toEqual([48, 3, 2, 14, 14]);
    expect(w.get('visual.merger.mlp.0.weight')).toEqual([192, 192]);
    expect(w.get('visual.merger.mlp.2.weight')).toEqual([96, 192]);
    expect(w.get('lm_head.weight')).toEqual([512, 96]);
  });
});

describe('weights: sharded checkpoints and storage dtypes', () => {
  function shard(name: FixtureName): { dir: string; firstShard: string[] } {
    const d = tempDir();
    copyFileSync(join(FIXTURES, name, 'config.json'), join(d, 'config.json'));
    const all = [...weightsOf(name)];
    const half = Math.ceil(all.length / 2);
    const parts = [all.slice(0, half), all.slice(half)];
    const weightMap: Record<string, string> = {};
    parts.forEach((part, i) => {
      const fname = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(d, fname), new Map(part.map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: t.data }])), { format: 'pt' });
      for (const [k] of part) weightMap[k] = fname;
    });
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 123 }, weight_map: weightMap }));
    return { dir: d, firstShard: parts[0]!.map(([k]) => k) };
  }

  it('a copy split into 2 shards + index resolves to the same parameters', () => {
    const { dir, firstShard } = shard('tiny-q2vl');
    const plan = planWeights(dir, readModelConfig(dir));
    expect(plan.indexFile).toBe(join(dir, 'model.safetensors.index.json'));
    expect(plan.files.map((f) => f.name)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    for (const p of plan.params) expect(p.file).toBe(join(dir, firstShard.includes(p.name) ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors'));
    const values = readPlannedWeights(plan);
    for (const p of plan.params) expect(sameBits(values.get(p.name), weightsOf('tiny-q2vl').get(p.name)!.data)).toBe(true);
  });

  it('a broken index names the index, shard and tensor', () => {
    const { dir } = shard('tiny-a');
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    index.weight_map['model.extra.weight'] = 'model-00002-of-00002.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    let e = weightsError(() => planWeights(dir, readModelConfig(dir)));
    expect(e.message).toContain(`${join(dir, 'model-00002-of-00002.safetensors')}: tensor model.extra.weight is missing (model.safetensors.index.json maps it to this shard)`);
    index.weight_map['model.extra.weight'] = 'model-00003-of-00003.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    e = weightsError(() => planWeights(dir, readModelConfig(dir)));
    expect(e.message).toContain(`maps 1 tensors (first: model.extra.weight) to model-00003-of-00003.safetensors, which does not exist`);
    index.weight_map['model.extra.weight'] = '../elsewhere.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    e = weightsError(() => planWeights(dir, readModelConfig(dir)));
    expect(e.message).toContain('is not a file name in the model folder');
    writeFileSync(indexPath, JSON.stringify({ weight_map: { a: 3 } }));
    e = weightsError(() => planWeights(dir, readModelConfig(dir)));
    expect(e.message).toContain(`${indexPath}: weight_map.a`);
  });

  for (const dtype of ['BF16', 'F16'] as SafetensorsDtype[]) {
    it(`a ${dtype} copy validates and reads back within rounding`, () => {
      const d = folderWith('tiny-a', (t) => {
        for (const [k, v] of [...t]) t.set(k, { ...v, dtype });
      });
      const plan = planWeights(d, readModelConfig(d));
      expect(new Set(plan.params.map((p) => p.dtype))).toEqual(new Set([dtype]));
      for (const p of plan.params) expect(p.byteLength).toBe(p.numel * 2);
      const values = readPlannedWeights(plan);
      // round-to-nearest error ≤ 2^-p·|x| with p significant bits: bf16 p = 8, f16 p = 11 (plus f16's subnormal
      // spacing 2^-24, half of which is 2^-25)
      const [rel, abs] = dtype === 'BF16' ? [2 ** -8, 0] : [2 ** -11, 2 ** -25];
      let changed = 0;
      for (const p of plan.params) {
        const ref = weightsOf('tiny-a').get(p.name)!.data as Float32Array;
        const got = values.get(p.name)!;
        for (let i = 0; i < ref.length; i++) {
          const err = Math.abs(got[i]! - ref[i]!);
          if (err > rel * Math.abs(ref[i]!) + abs) throw new Error(`${p.name}[${i}]: ${got[i]} vs ${ref[i]} (error ${err})`);
          if (err > 0) changed++;
        }
      }
      expect(changed).toBeGreaterThan(1000); // rounding really happened
    });
  }
});
