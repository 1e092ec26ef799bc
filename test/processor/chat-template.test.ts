import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VlmGrpoError } from '../../src/errors.js';
import {
  ChatTemplate,
  DEFAULT_QWEN2_VL_CHAT_TEMPLATE,
  expandImagePlaceholders,
  expandImageTokenIds,
  imageTokenCount,
  type ChatMessage,
} from '../../src/processor/chat-template.js';
import { preprocessImages } from '../../src/processor/image.js';
import { loadTokenizer } from '../../src/processor/tokenizer.js';
import { tinyTokenizer, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;

const IMG = '<|vision_start|><|image_pad|><|vision_end|>';

describe('chat template (built-in Qwen2-VL template)', () => {
  const tpl = ChatTemplate.qwen2vl();

  it('renders system + user(image, text) with a generation prompt exactly', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a careful grader.' },
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many cats?' }] },
    ];
    expect(tpl.render(messages, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a careful grader.<|im_end|>\n' +
        `<|im_start|>user\n${IMG}How many cats?<|im_end|>\n` +
        '<|im_start|>assistant\n',
    );
  });

  it('adds the default system prompt (spec 5.3 example)', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this image.' }] }];
    expect(tpl.render(messages, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    expect(tpl.render(messages)).not.toContain('<|im_start|>assistant');
    expect(tpl.render(messages).endsWith('Describe this image.<|im_end|>\n')).toBe(true);
  });

  it('multi-turn, several images, image_url / video parts, add_vision_id', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image', image: 'a.png' }, { type: 'text', text: 'and' }, { type: 'image_url', image_url: { url: 'b' } }] },
      { role: 'assistant', content: 'Two pictures.' },
      { role: 'user', content: [{ type: 'video', video: 'v.mp4' }, { type: 'text', text: 'now?' }] },
    ];
    const out = tpl.render(messages, { addVisionId: true, addGenerationPrompt: true });
    expect(out).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        `<|im_start|>user\nPicture 1: ${IMG}andPicture 2: ${IMG}<|im_end|>\n` +
        '<|im_start|>assistant\nTwo pictures.<|im_end|>\n' +
        '<|im_start|>user\nVideo 1: <|vision_start|><|video_pad|><|vision_end|>now?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    expect(tpl.render(messages)).not.toContain('Picture');
  });

  it('rejects malformed messages naming the field', () => {
    const bad = [{ role: 'user', content: 'ok' }, { content: 'no role' }] as unknown as ChatMessage[];
    expect(() => tpl.render(bad)).toThrow(/messages\.1\.role/);
    const e = (() => {
      try {
        tpl.render([{ role: 'user', content: 7 }] as unknown as ChatMessage[]);
      } catch (err) {
        return err as VlmGrpoError;
      }
      return undefined;
    })();
    expect(e?.code).toBe('ERR_CHAT_MESSAGES');
  });
});

describe('image placeholder expansion', () => {
  it('replaces the k-th <|image_pad|> by t·h·w/4 copies', () => {
    expect(imageTokenCount([1, 6, 8])).toBe(12);
    expect(imageTokenCount([1, 4, 8])).toBe(8);
    expect(imageTokenCount([2, 4, 6], 2)).toBe(12);
    const text = `a${IMG}b${IMG}c`;
    const out = expandImagePlaceholders(text, [
      [1, 6, 8],
      [1, 4, 8],
    ]);
    expect(out).toBe(`a<|vision_start|>${'<|image_pad|>'.repeat(12)}<|vision_end|>b<|vision_start|>${'<|image_pad|>'.repeat(8)}<|vision_end|>c`);
    expect(() => expandImagePlaceholders(text, [[1, 6, 8]])).toThrow(/2 image placeholder\(s\) but 1 image\(s\)/);
    expect(() => imageTokenCount([1, 3, 3])).toThrow(/not divisible by mergeSize² = 4/);
  });

  it('id-level expansion agrees with text-level expansion', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'vg-chat-'));
    try {
      writeTinyTokenizer(tmp, tinyTokenizer());
      const tok = await loadTokenizer(tmp);
      const grids: Array<[number, number, number]> = [
        [1, 6, 8],
        [1, 10, 6],
        [1, 2, 2],
      ];
      const text = ChatTemplate.qwen2vl().render(
        [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'hello' }, { type: 'image' }, { type: 'image' }] }],
        { addGenerationPrompt: true },
      );
      const viaText = tok.encode(expandImagePlaceholders(text, grids));
      const viaIds = expandImageTokenIds(tok.encode(text), grids, tok.specialTokens.imagePad);
      expect(viaIds).toEqual(viaText);
      expect(viaIds.filter((t) => t === 500).length).toBe(12 + 15 + 1);
      expect(() => expandImageTokenIds(tok.encode(text), grids.slice(0, 2), 500)).toThrow(/3 image placeholder\(s\) but 2/);
      expect(() => expandImageTokenIds(tok.encode(text), [...grids, [1, 2, 2]], 500)).toThrow(/3 image placeholder\(s\) but 4/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it.each(['tiny-a', 'tiny-q2vl'])('reproduces the image-token runs of the %s fixture prompts from their grids', async (cfg) => {
    const inputs = JSON.parse(readFileSync(path.join(FIXTURES, cfg, 'inputs.json'), 'utf8')) as {
      cases: Record<string, { input_ids: number[]; images?: string[]; image_grid_thw?: number[][] }>;
    };
    for (const name of ['single', 'multi']) {
      const c = inputs.cases[name]!;
      // Collapse every run of 500s to one placeholder, then expand again from the grids.
      const collapsed = c.input_ids.filter((t, i) => t !== 500 || c.input_ids[i - 1] !== 500);
      expect(expandImageTokenIds(collapsed, c.image_grid_thw!, 500)).toEqual(c.input_ids);
      // And our preprocessing yields those grids for those images.
      const pre = await preprocessImages(c.images!.map((f) => path.join(FIXTURES, cfg, f)), { minPixels: 3136, maxPixels: 12845056 });
      expect(pre.imageGridThw).toEqual(c.image_grid_thw);
    }
  });
});

describe('ChatTemplate.load', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'vg-tpl-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hi' }];

  function folder(name: string, files: Record<string, string>): string {
    const dir = path.join(tmp, name);
    mkdirSync(dir);
    for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
    return dir;
  }

  it('prefers chat_template.jinja, then chat_template.json, then tokenizer_config.json', async () => {
    const tokCfg = JSON.stringify({ chat_template: 'TOKCFG{{ messages[0].content }}', eos_token: '<|im_end|>' });
    const all = folder('all', {
      'chat_template.jinja': 'JINJA{{ messages[0].content }}{{ eos_token }}',
      'chat_template.json': JSON.stringify({ chat_template: 'JSON{{ messages[0].content }}' }),
      'tokenizer_config.json': tokCfg,
    });
    const t1 = await ChatTemplate.load(all);
    expect(t1.render(msgs)).toBe('JINJAhi<|im_end|>');
    expect(t1.source).toBe(path.join(all, 'chat_template.jinja'));
    const json = folder('json', {
      'chat_template.json': JSON.stringify({ chat_template: 'JSON{{ messages[0].content }}' }),
      'tokenizer_config.json': tokCfg,
    });
    expect((await ChatTemplate.load(json)).render(msgs)).toBe('JSONhi');
    expect((await ChatTemplate.load(folder('tok', { 'tokenizer_config.json': tokCfg }))).render(msgs)).toBe('TOKCFGhi');
    const listForm = folder('list', {
      'tokenizer_config.json': JSON.stringify({
        chat_template: [
          { name: 'tool_use', template: 'TOOLS' },
          { name: 'default', template: 'DEFAULT{{ messages[0].content }}' },
        ],
      }),
    });
    expect((await ChatTemplate.load(listForm)).render(msgs)).toBe('DEFAULThi');
  });

  it('falls back to the built-in Qwen2-VL template', async () => {
    const none = folder('none', { 'config.json': '{}' });
    const t = await ChatTemplate.load(none);
    expect(t.template).toBe(DEFAULT_QWEN2_VL_CHAT_TEMPLATE);
    expect(t.source).toBe('built-in Qwen2-VL template');
    expect(t.render(msgs, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('bad templates give ERR_CHAT_TEMPLATE naming the file', async () => {
    const bad = folder('bad', { 'chat_template.jinja': '{% if %}oops' });
    await expect(ChatTemplate.load(bad)).rejects.toMatchObject({
      code: 'ERR_CHAT_TEMPLATE',
      message: expect.stringContaining(path.join(bad, 'chat_template.jinja')),
    });
    const noString = folder('nostring', { 'chat_template.json': JSON.stringify({ template: 'x' }) });
    await expect(ChatTemplate.load(noString)).rejects.toMatchObject({ message: expect.stringContaining('no "chat_template" string') });
    const brokenJson = folder('brokenjson', { 'chat_template.json': '{' });
    await expect(ChatTemplate.load(brokenJson)).rejects.toMatchObject({ message: expect.stringContaining('not valid JSON') });
    const raising = new ChatTemplate("{{ raise_exception('only user and assistant roles') }}", 'raising.jinja');
    expect(() => raising.render(msgs)).toThrow(/raising\.jinja failed: only user and assistant roles/);
    expect(() => new ChatTemplate('', 'empty.jinja')).toThrow(VlmGrpoError);
  });
});
