// The counting task's byte-level BPE tokenizer: merge learning (hand-checked), determinism, special-token ids,
// exact round trips, loading through loadTokenizer/QwenTokenizer, short task prompts, and the JS spelling of the
// Qwen split regex agreeing with the Rust one the tokenizer runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { PROMPT_TEMPLATES } from '../../src/data/prompt-template.js';
import { allQuestions, countingCompletion, questionText } from '../../src/demo/scenes.js';
import {
  buildTaskTokenizer,
  countingCorpus,
  learnMerges,
  preTokenize,
  SPECIAL_TOKEN_ORDER,
} from '../../src/demo/tokenizer.js';
import { ChatTemplate } from '../../src/processor/chat-template.js';
import { loadTokenizer, QwenTokenizer } from '../../src/processor/tokenizer.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const corpus = countingCorpus();
const built = buildTaskTokenizer(corpus);
const tok = QwenTokenizer.fromJSON(built.tokenizerJson, built.tokenizerConfig, 'task tokenizer');

describe('learnMerges', () => {
  it('merges the most frequent pair first and breaks ties by string order (hand-computed)', () => {
    // words "aaab" and "aab": (a,a) 3×, (a,b) 2× → "a a"; then every pair occurs once, so with minFrequency 2 we stop
    expect(learnMerges(['aaab aab'], 10, 2)).toEqual([['a', 'a']]);
    // with minFrequency 1 every tie goes in string order ('Ġ', the byte-level space, sorts after 'a'):
    // "a b" < "aa a" < "aa b" < "Ġ aa"; then "aa ab" < "aa b" < "Ġ aa"; then "aa b" < "Ġ aa"; then "Ġ aab"
    expect(learnMerges(['aaab aab'], 10, 1)).toEqual([['a', 'a'], ['a', 'b'], ['aa', 'ab'], ['aa', 'b'], ['Ġ', 'aab']]);
    expect(learnMerges(['aaab aab'], 2, 1)).toHaveLength(2);
  });

  it('never merges across special tokens or pre-token boundaries', () => {
    const merges = learnMerges(['ab<|im_end|>ab<|im_end|>ab', 'x1 x1 x1'], 50, 2).map((m) => m.join(' '));
    expect(merges).toContain('a b');
    for (const m of merges) {
      expect(m).not.toMatch(/[<|>]/); // the special token string is cut out before training
      expect(m).not.toMatch(/\d/); // digits are single pre-tokens (\p{N}) in Qwen's regex
    }
  });
});

describe('buildTaskTokenizer', () => {
  it('is deterministic and puts the 7 special tokens right after the BPE vocabulary, in Qwen order', () => {
    const again = buildTaskTokenizer(countingCorpus());
    expect(JSON.stringify(again.tokenizerJson)).toBe(JSON.stringify(built.tokenizerJson));
    expect(JSON.stringify(again.tokenizerConfig)).toBe(JSON.stringify(built.tokenizerConfig));
    const base = built.vocabSize - SPECIAL_TOKEN_ORDER.length;
    expect(base).toBe(256 + built.merges.length);
    SPECIAL_TOKEN_ORDER.forEach((s, i) => {
      expect(built.specialTokenIds[s]).toBe(base + i);
      expect(tok.tokenToId(s)).toBe(base + i);
    });
    const sp = tok.specialTokens;
    expect(sp.imEnd).toBe(built.specialTokenIds['<|im_end|>']);
    expect(sp.eos).toBe(sp.imEnd);
    expect(sp.pad).toBe(built.specialTokenIds['<|endoftext|>']);
    expect(sp.imagePad).toBe(built.specialTokenIds['<|image_pad|>']);
    expect(tok.vocabSize).toBe(built.vocabSize);
    expect(built.vocabSize).toBeLessThanOrEqual(1024);
  });

  it('round-trips every corpus text and arbitrary text exactly', () => {
    for (const text of corpus) expect(tok.decode(tok.encode(text))).toBe(text);
    const other = ['Hello, wörld! ñ 12345 — 東京\n\ttabs  and   spaces', "it's red's", '<think>odd</think ><answer> 7 </answer>', ' '];
    for (const text of other) expect(tok.decode(tok.encode(text))).toBe(text);
    // special tokens are single ids; skipSpecialTokens drops them
    const ids = tok.encode('<|im_start|>user\nhi<|im_end|>');
    expect(ids[0]).toBe(tok.specialTokens.imStart);
    expect(ids[ids.length - 1]).toBe(tok.specialTokens.imEnd);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi');
  });

  it('makes the task text short: words are single tokens, a full R1 prompt is under 60 tokens', () => {
    for (const w of [' red', ' objects', ' circles', ' triangles', ' squares', ' yellow', ' thinking', ' assistant', 'How', ' many', ' there']) {
      expect(tok.encode(w)).toHaveLength(1);
    }
    expect(tok.encode('<think>').length).toBeLessThanOrEqual(2);
    expect(tok.encode('</answer>').length).toBeLessThanOrEqual(3);
    const chat = ChatTemplate.qwen2vl();
    const lengths = allQuestions().map((q) => {
      const text = PROMPT_TEMPLATES.r1.replace('{question}', questionText(q));
      return tok.encode(chat.render([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text }] }], { addGenerationPrompt: true })).length;
    });
    expect(Math.max(...lengths)).toBeLessThan(60); // one <|image_pad|> here; the processor expands it to the image's tokens
    expect(tok.encode(countingCompletion({ kind: 'color_shape', color: 'red', shape: 'circle' }, 3)).length).toBeLessThanOrEqual(18);
  });

  it('loads from a folder with loadTokenizer and carries the chat template', async () => {
    const d = mkdtempSync(path.join(tmpdir(), 'vg-demo-tok-'));
    dirs.push(d);
    writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(built.tokenizerJson));
    writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(built.tokenizerConfig));
    const loaded = await loadTokenizer(d);
    const text = corpus[7]!;
    expect(loaded.encode(text)).toEqual(tok.encode(text));
    const template = await ChatTemplate.load(d);
    expect(template.template).toBe(ChatTemplate.qwen2vl().template);
    expect(template.source).toMatch(/tokenizer_config\.json/);
  });

  it('the JS split regex agrees with the Rust pre-tokenizer: encoding word by word equals encoding the whole', () => {
    const texts = [
      ...corpus.slice(0, 40),
      "Don't stop: I'LL count 12 circles, 3 SQUARES and it's\n\n  done!!  ",
      'a\r\nb \t c   d?! ...x',
    ];
    for (const text of texts) {
      const special = new Set(Object.values(built.specialTokenIds));
      const whole = tok.encode(text).filter((id) => !special.has(id));
      const pieces = preTokenize(text).flatMap((w) => tok.encode(w));
      expect(pieces).toEqual(whole);
    }
  });

  it('rejects a vocabulary too small for bytes and special tokens', () => {
    expect(() => buildTaskTokenizer(corpus, { maxVocab: 262 })).toThrow(/maxVocab/);
    const bytesOnly = buildTaskTokenizer(corpus, { maxVocab: 263 });
    expect(bytesOnly.merges).toHaveLength(0);
    expect(bytesOnly.vocabSize).toBe(263);
  });
});
