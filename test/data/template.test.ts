import { describe, expect, it } from 'vitest';
import { DataError } from '../../src/data/errors.js';
import { preparePrompt } from '../../src/data/prepare.js';
import { applyPromptTemplate, PROMPT_TEMPLATE_NAMES, PROMPT_TEMPLATES, resolvePromptTemplate } from '../../src/data/prompt-template.js';
import type { PromptRow, RowMessage } from '../../src/data/types.js';
import { tinyProcessor } from './helpers.js';

const R1V_SUFFIX = '  Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.';

describe('prompt templates', () => {
  it('offers the peers\' templates by name with their exact strings', () => {
    expect(PROMPT_TEMPLATE_NAMES).toEqual(['none', 'r1', 'vlm-r1', 'vlm-r1-rec', 'ocean-r1']);
    expect(PROMPT_TEMPLATES.r1).toBe(`{question}${R1V_SUFFIX}`);
    expect(PROMPT_TEMPLATES['vlm-r1-rec']).toBe(
      '{question} First output the thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags. ' +
        'Output the final answer in JSON format.',
    );
    expect(PROMPT_TEMPLATES['ocean-r1'].startsWith('{question} You FIRST think about the reasoning process as an internal monologue')).toBe(true);
    const t = resolvePromptTemplate('r1');
    expect(t).toEqual({ name: 'r1', text: PROMPT_TEMPLATES.r1, prefix: '', suffix: R1V_SUFFIX });
  });

  it('accepts custom strings with one {question} (or {Question}); other braces are literal', () => {
    expect(resolvePromptTemplate('Q: {question} -> {"box": [x1, y1]}')).toEqual({
      name: 'custom', text: 'Q: {question} -> {"box": [x1, y1]}', prefix: 'Q: ', suffix: ' -> {"box": [x1, y1]}',
    });
    expect(resolvePromptTemplate('{Question} Answer briefly.').suffix).toBe(' Answer briefly.');
  });

  it('rejects a name typo with a suggestion, and strings with zero or two placeholders', () => {
    const err = (() => { try { resolvePromptTemplate('r1-v'); } catch (e) { return e; } })() as DataError;
    expect(err).toBeInstanceOf(DataError);
    expect(err.code).toBe('ERR_DATA_TEMPLATE');
    expect(err.message).toContain('Did you mean "r1"?');
    expect(err.remedy).toContain('"ocean-r1"');
    expect(() => resolvePromptTemplate('{question} and {question}')).toThrow(/it has 2/);
    expect(() => resolvePromptTemplate('no placeholder at all')).toThrow(/exactly one \{question\}/);
  });

  it('wraps the last user message around its images and text; system prompt replaces or goes first', () => {
    const msgs: RowMessage[] = [
      { role: 'user', content: [{ type: 'text', text: 'first turn' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'ok' }] },
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many?' }] },
    ];
    const out = applyPromptTemplate(msgs, resolvePromptTemplate('Look. {question} Think.'), 'SYS');
    expect(out).toEqual([
      { role: 'system', content: [{ type: 'text', text: 'SYS' }] },
      msgs[0],
      msgs[1],
      { role: 'user', content: [{ type: 'text', text: 'Look. ' }, { type: 'image' }, { type: 'text', text: 'How many? Think.' }] },
    ]);
    expect(msgs[2]!.content).toHaveLength(2); // input untouched
    const withSys: RowMessage[] = [{ role: 'system', content: [{ type: 'text', text: 'old' }] }, msgs[2]!];
    expect(applyPromptTemplate(withSys, resolvePromptTemplate('none'), 'new')[0]).toEqual({ role: 'system', content: [{ type: 'text', text: 'new' }] });
    expect(applyPromptTemplate(withSys, resolvePromptTemplate('none'))).toEqual(withSys);
  });

  it('renders the R1-V prompt exactly as R1-V builds it ([image, template(problem)], no system prompt)', async () => {
    const row: PromptRow = {
      id: 'x', source: { file: 'f.jsonl', line: 1 }, format: 'r1v',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'How many items are there?' }] }],
      images: [], groundTruth: '3', rewardMethod: null, dataSource: null, extra: {},
    };
    const res = await preparePrompt(row, tinyProcessor(), { template: resolvePromptTemplate('r1') });
    expect(res.ok).toBe(true);
    const p = (res as { ok: true; prompt: { text: string } }).prompt;
    expect(p.text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        `<|im_start|>user\nHow many items are there?${R1V_SUFFIX}<|im_end|>\n<|im_start|>assistant\n`,
    );
  });
});
