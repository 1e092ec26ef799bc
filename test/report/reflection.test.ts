import { describe, expect, it } from 'vitest';

import { countReflections, DEFAULT_REFLECTION_PHRASES, reflectionStats } from '../../src/report/index.js';

const nonZero = (c: Record<string, number>) => Object.fromEntries(Object.entries(c).filter(([, n]) => n > 0));

describe('countReflections', () => {
  it('counts "wait" and "recheck" in "Wait, let me recheck"', () => {
    const r = countReflections('Wait, let me recheck');
    expect(nonZero(r.counts)).toEqual({ wait: 1, recheck: 1 });
    expect(r.total).toBe(2);
  });

  it('respects word boundaries: "awaited", "waiter", "rechecked", "await" do not count', () => {
    expect(countReflections('The result awaited us; the waiter rechecked and awaits. We await, unverify.').total).toBe(0);
    expect(countReflections('wait_for(x) and verify2').total).toBe(0);
    expect(countReflections('(wait) "wait" wait. WAIT!').counts.wait).toBe(4);
  });

  it('counts "However," and is case-insensitive', () => {
    expect(countReflections('However, the angle is 30°.').counts.however).toBe(1);
    expect(countReflections('HOWEVER; however: HoWeVeR').counts.however).toBe(3);
    expect(countReflections('Let me CHECK again. Double-Check it. RE-EVALUATE. Reevaluate.').counts).toMatchObject({
      'let me check': 1, 'double-check': 1, 're-evaluate': 1, reevaluate: 1,
    });
  });

  it('keeps hyphenated and joined spellings apart, accepts unicode hyphens and any whitespace inside phrases', () => {
    const c = countReflections('recheck, re-check, re‑check (U+2011), let me\n  check').counts;
    expect(c.recheck).toBe(1);
    expect(c['re-check']).toBe(2);
    expect(c['let me check']).toBe(1);
  });

  it('reports every phrase (0 when absent) and accepts a custom list', () => {
    const r = countReflections('nothing here');
    expect(Object.keys(r.counts)).toEqual([...DEFAULT_REFLECTION_PHRASES]);
    expect(r.total).toBe(0);
    const custom = countReflections('Hmm. hmm... Aha! aha', ['hmm', 'aha', 'a.b']);
    expect(custom.counts).toEqual({ hmm: 2, aha: 2, 'a.b': 0 }); // "." is literal, not a regex wildcard
    expect(countReflections('Ünïcode wait', ['ünïcode']).total).toBe(1);
    expect(() => countReflections('x', [''])).toThrow(RangeError);
    expect(() => countReflections(3 as unknown as string)).toThrow(TypeError);
  });

  it('matches a plain tokenising reference on generated text', () => {
    // Reference: split on anything that is not a letter, digit or underscore and count single-word phrases.
    const words = ['wait', 'awaited', 'however', 'verify', 'verified', 'recheck', 'rechecks', 'the', 'Wait', 'HOWEVER', 'x_wait'];
    const seps = [' ', ', ', '. ', '\n', '—', '(', ') ', '"'];
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let trial = 0; trial < 30; trial++) {
      let text = '';
      for (let i = 0; i < 40; i++) text += (words[Math.floor(next() * words.length)] as string) + (seps[Math.floor(next() * seps.length)] as string);
      const tokens = text.toLowerCase().split(/[^\p{L}\p{N}_]+/u);
      const phrases = ['wait', 'however', 'verify', 'recheck'];
      const got = countReflections(text, phrases);
      for (const p of phrases) expect(got.counts[p]).toBe(tokens.filter((t) => t === p).length);
    }
  });
});

describe('reflectionStats', () => {
  it('sums counts over completions, with the per-completion mean and the share with any', () => {
    const s = reflectionStats(['Wait, let me recheck', 'plain answer', 'However, wait.', '']);
    expect(s.total).toBe(4);
    expect(s.perCompletion).toBe(1);
    expect(s.fracWithAny).toBe(0.5);
    expect(nonZero(s.counts)).toEqual({ wait: 2, recheck: 1, however: 1 });
    expect(reflectionStats([])).toMatchObject({ total: 0, perCompletion: 0, fracWithAny: 0 });
  });
});
