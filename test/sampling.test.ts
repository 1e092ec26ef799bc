import { describe, expect, it } from 'vitest';

import { kernels } from '../src/index.js';

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++)
    a[i] = scale * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return a;
}

// ---- A TypeScript reference of the sampler (Philox4x32-10 + the filters), written from the spec.

function mulhilo(a: number, b: number): [number, number] {
  const p = BigInt(a) * BigInt(b);
  return [Number(p >> 32n), Number(p & 0xffffffffn)];
}

function philox(counter: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = counter as [number, number, number, number];
  let [k0, k1] = key as [number, number];
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9) >>> 0;
      k1 = (k1 + 0xbb67ae85) >>> 0;
    }
    const [hi0, lo0] = mulhilo(0xd2511f53, c0);
    const [hi1, lo1] = mulhilo(0xcd9e8d57, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

function uniform(seed: number, seq: number, pos: number): number {
  const key = [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
  const [w0, w1] = philox([pos >>> 0, seq >>> 0, 0, 0], key) as [number, number];
  return (w0 * 2 ** 21 + (w1 >>> 11)) / 2 ** 53;
}

interface Opts {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  banned: Set<number>;
}

/** log_softmax(x / T)[tok] over the whole row, in double. */
function fullLogprob(x: ArrayLike<number>, temperature: number, tok: number): number {
  let m = -Infinity;
  for (let j = 0; j < x.length; j++) m = Math.max(m, x[j]!);
  let s = 0;
  for (let j = 0; j < x.length; j++) s += Math.exp((x[j]! - m) / temperature);
  return (x[tok]! - m) / temperature - Math.log(s);
}

function refSample(x: Float32Array, o: Opts, seed: number, seq: number, pos: number) {
  const ids = [...Array(x.length).keys()].filter((j) => !o.banned.has(j));
  const order = ids.slice().sort((a, b) => x[b]! - x[a]! || a - b); // descending logit, lower id on ties
  if (o.temperature === 0) {
    const tok = order[0]!;
    return { token: tok, logprob: fullLogprob(x, 1, tok), filtered: 0 };
  }
  const max = x[order[0]!]!;
  const w = new Float64Array(x.length);
  for (const j of ids) w[j] = Math.exp((x[j]! - max) / o.temperature);
  let kept = order.filter((j) => w[j]! > 0);
  if (o.topK > 0) kept = kept.slice(0, o.topK);
  if (o.topP < 1) {
    const massK = kept.reduce((s, j) => s + w[j]!, 0);
    let before = 0;
    kept = kept.filter((j) => {
      const keep = before < o.topP * massK;
      before += w[j]!;
      return keep;
    });
  }
  if (o.minP > 0) kept = kept.filter((j) => w[j]! >= o.minP); // p_j / p_max = w_j
  kept.sort((a, b) => a - b); // inverse CDF in token-id order
  let mass = 0;
  for (const j of kept) mass += w[j]!;
  const target = uniform(seed, seq, pos) * mass;
  let cum = 0;
  let token = -1;
  for (const j of kept) {
    cum += w[j]!;
    token = j;
    if (cum > target) break;
  }
  return { token, logprob: fullLogprob(x, o.temperature, token), filtered: Math.log(w[token]! / mass) };
}

function batch(rows: number, vocab: number) {
  const logits = randn(rows * vocab, 2);
  const sequenceIds = new Uint32Array(rows);
  const positions = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    sequenceIds[r] = Math.floor(Math.random() * 2 ** 32); // ids >= 2^31 exercise the unsigned path
    positions[r] = Math.floor(Math.random() * 100000);
  }
  return { logits, sequenceIds, positions };
}

describe('kernels.sample', () => {
  it('the TypeScript Philox port reproduces the Random123 known answers', () => {
    expect(philox([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1,
    ]);
  });

  it('draws exactly the tokens of a TypeScript reference sampler, for every filter', () => {
    const rows = 48, vocab = 300;
    const { logits, sequenceIds, positions } = batch(rows, vocab);
    const seed = 2 ** 40 + 12345; // both key halves non-zero
    const cases: Array<Partial<Opts> & { bannedTokens?: number[] }> = [
      {},
      { temperature: 0.7 },
      { topK: 12 },
      { topP: 0.85, temperature: 1.3 },
      { minP: 0.05 },
      { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.02, bannedTokens: [0, 7, 299] },
      { temperature: 0, bannedTokens: [3] },
    ];
    for (const c of cases) {
      const o: Opts = {
        temperature: c.temperature ?? 1, topK: c.topK ?? 0, topP: c.topP ?? 1, minP: c.minP ?? 0,
        banned: new Set(c.bannedTokens ?? []),
      };
      const got = kernels.sample({
        logits, numRows: rows, vocabSize: vocab, seed, sequenceIds, positions,
        temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP,
        ...(c.bannedTokens ? { bannedTokens: Int32Array.from(c.bannedTokens) } : {}),
      });
      for (let r = 0; r < rows; r++) {
        const want = refSample(logits.subarray(r * vocab, (r + 1) * vocab), o, seed, sequenceIds[r]!, positions[r]!);
        const where = `case ${JSON.stringify(c)} row ${r}`;
        expect(got.tokens[r], where).toBe(want.token);
        expect(Math.abs(got.logprobs[r]! - want.logprob), where).toBeLessThan(1e-5 * (1 + Math.abs(want.logprob)));
        expect(Math.abs(got.filteredLogprobs[r]! - want.filtered), where).toBeLessThan(1e-5 * (1 + Math.abs(want.filtered)));
      }
    }
  });

  it('gives the same token for a row alone, in another batch and in another order', () => {
    const rows = 20, vocab = 500;
    const { logits, sequenceIds, positions } = batch(rows, vocab);
    const opts = { vocabSize: vocab, seed: 987654321, temperature: 0.9, topP: 0.95 };
    const all = kernels.sample({ ...opts, logits, numRows: rows, sequenceIds, positions });
    const perm = [...Array(rows).keys()].reverse();
    const rev = new Float32Array(rows * vocab);
    perm.forEach((r, i) => rev.set(logits.subarray(r * vocab, (r + 1) * vocab), i * vocab));
    const revOut = kernels.sample({
      ...opts, logits: rev, numRows: rows,
      sequenceIds: Uint32Array.from(perm.map((r) => sequenceIds[r]!)), positions: Int32Array.from(perm.map((r) => positions[r]!)),
    });
    perm.forEach((r, i) => expect(revOut.tokens[i]).toBe(all.tokens[r]));
    for (const r of [0, 7, 19]) {
      const one = kernels.sample({
        ...opts, logits: logits.slice(r * vocab, (r + 1) * vocab), numRows: 1,
        sequenceIds: sequenceIds.slice(r, r + 1), positions: positions.slice(r, r + 1),
      });
      expect(one.tokens[0]).toBe(all.tokens[r]);
      expect(one.logprobs[0]).toBe(all.logprobs[r]);
    }
    // Int32Array sequence ids name the same counters as Uint32Array ones.
    const small = Int32Array.from(sequenceIds, (s) => s & 0x7fffffff);
    const a = kernels.sample({ ...opts, logits, numRows: rows, sequenceIds: small, positions });
    const b = kernels.sample({ ...opts, logits, numRows: rows, sequenceIds: Uint32Array.from(small), positions });
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
  });

  it('never samples a banned token', () => {
    const vocab = 64, rows = 400;
    const row = randn(vocab);
    const banned = Int32Array.from([1, 2, 30]);
    for (const b of banned) row[b] = 10; // would dominate otherwise
    const logits = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) logits.set(row, r * vocab);
    const out = kernels.sample({
      logits, numRows: rows, vocabSize: vocab, seed: 5, sequenceIds: new Int32Array(rows), positions: Int32Array.from({ length: rows }, (_, i) => i),
      temperature: 2, bannedTokens: banned,
    });
    for (const t of out.tokens) expect([1, 2, 30]).not.toContain(t);
  });

  it('throws clear errors for bad lengths, ids and options', () => {
    const { logits, sequenceIds, positions } = batch(3, 50);
    const base = { logits, numRows: 3, vocabSize: 50, seed: 1, sequenceIds, positions };
    expect(() => kernels.sample({ ...base, logits: new Float32Array(149) })).toThrow(/logits has length 149, expected numRows\*vocabSize = 3\*50 = 150/);
    expect(() => kernels.sample({ ...base, seed: -1 })).toThrow(RangeError);
    expect(() => kernels.sample({ ...base, seed: 1.5 })).toThrow(/seed must be an integer in \[0, 9007199254740991\], got 1.5/);
    expect(() => kernels.sample({ ...base, seed: 2 ** 53 })).toThrow(RangeError);
    expect(() => kernels.sample({ ...base, seed: '7' as unknown as number })).toThrow(TypeError);
    expect(() => kernels.sample({ ...base, sequenceIds: new Float32Array(3) as unknown as Int32Array })).toThrow(TypeError);
    expect(() => kernels.sample({ ...base, sequenceIds: new Int32Array(2) })).toThrow(/sequenceIds has length 2, expected numRows = 3/);
    expect(() => kernels.sample({ ...base, sequenceIds: Int32Array.from([0, -4, 1]) })).toThrow(/sequenceIds\[1\] = -4 must be >= 0/);
    expect(() => kernels.sample({ ...base, positions: Int32Array.from([0, 1, -3]) })).toThrow(/positions\[2\] = -3 must be >= 0/);
    expect(() => kernels.sample({ ...base, bannedTokens: Int32Array.from([4, 50]) })).toThrow(/bannedTokens\[1\] = 50 is not a token id \(vocabSize is 50\)/);
    expect(() => kernels.sample({ ...base, topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => kernels.sample({ ...base, minP: 2 })).toThrow(RangeError);
    expect(() => kernels.sample({ ...base, topK: -1 })).toThrow(RangeError);
    expect(() => kernels.sample({ ...base, temperature: NaN })).toThrow(/temperature must be a finite number >= 0/);
    const bad = logits.slice();
    bad[57] = NaN;
    expect(() => kernels.sample({ ...base, logits: bad })).toThrow(/logits\[1, 7\] = nan/);
    expect(() =>
      kernels.sample({ ...base, bannedTokens: Int32Array.from({ length: 50 }, (_, i) => i) }),
    ).toThrow(/row 0 has no token left to sample/);
  });
});
