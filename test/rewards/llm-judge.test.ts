import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  builtinRewards,
  createRewardScorer,
  DEFAULT_LLM_MODEL,
  fillPrompt,
  llmScore,
  parseJudgeReply,
  rewardFunctions,
  type RewardErrorEvent,
} from '../../src/rewards/index.js';

interface Seen {
  url: string;
  auth: string | undefined;
  body: { model: string; messages: Array<{ role: string; content: string }>; temperature: number };
}

/** A fake OpenAI-compatible endpoint: `reply(seen)` decides the answer; every request is recorded. */
let server: Server;
let base = '';
let seen: Seen[] = [];
let inFlight = 0;
let maxInFlight = 0;
let reply: (s: Seen, res: ServerResponse) => void = () => {};

const ok = (content: string) => (_: Seen, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content } }] }));
};

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString('utf8')));
    req.on('end', () => {
      const s: Seen = { url: req.url ?? '', auth: req.headers.authorization, body: JSON.parse(data) as Seen['body'] };
      seen.push(s);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on('close', () => inFlight--);
      reply(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen = [];
  inFlight = 0;
  maxInFlight = 0;
});

const wrap = (a: string) => `<think>let me look</think><answer>${a}</answer>`;

describe('llm judge reward', () => {
  it('sends the VLM-R1 request and reads 1.0 / 0.0', async () => {
    reply = (s, res) => ok(s.body.messages[1]!.content.includes('Student\'s response: a red car') ? '1.0' : '0.0')(s, res);
    const opts = { baseUrl: `${base}/`, apiKey: 'sk-test', model: 'judge-7b' };
    expect(await rewardFunctions.llm({ completion: wrap('a red car'), groundTruth: '<answer> red car </answer>', options: opts })).toBe(1);
    expect(await rewardFunctions.llm({ completion: wrap('a blue car'), groundTruth: 'red car', options: opts })).toBe(0);
    expect(seen).toHaveLength(2);
    const s = seen[0]!;
    expect(s.url).toBe('/v1/chat/completions');
    expect(s.auth).toBe('Bearer sk-test');
    expect(s.body.model).toBe('judge-7b');
    expect(s.body.temperature).toBe(0);
    expect(s.body.messages.map((m) => m.role)).toEqual(['user', 'user']);
    expect(s.body.messages[0]!.content).toMatch(/Output ONLY '1.0'/);
    expect(s.body.messages[1]!.content).toBe("Student's response: a red car\nCorrect solution: red car\nOutput only 1.0 or 0.0:");
    expect(builtinRewards.llm.async).toBe(true);
  });

  it('takes the endpoint and key from OPENAI_API_BASE / OPENAI_API_KEY, the model default and custom prompts', async () => {
    reply = ok(' 1 \n');
    const env = { OPENAI_API_BASE: base, OPENAI_API_KEY: 'sk-env' };
    const v = await llmScore({ completion: wrap('42'), groundTruth: '42' }, { prompt: 'A={answer} G={groundTruth} {answer}', instruction: 'judge' }, env);
    expect(v).toBe(1);
    expect(seen[0]!.auth).toBe('Bearer sk-env');
    expect(seen[0]!.body.model).toBe(DEFAULT_LLM_MODEL);
    expect(seen[0]!.body.messages.map((m) => m.content)).toEqual(['judge', 'A=42 G=42 42']);
    // No key at all: no Authorization header.
    await llmScore({ completion: wrap('42'), groundTruth: '42' }, {}, { OPENAI_API_BASE: base });
    expect(seen[1]!.auth).toBeUndefined();
    expect(fillPrompt('{answer}|{groundTruth}', '{groundTruth}', 'x')).toBe('{groundTruth}|x');
  });

  it('parses only a number in [0, 1] (after removing <think>)', () => {
    expect(parseJudgeReply('1.0')).toBe(1);
    expect(parseJudgeReply(' 0.0\n')).toBe(0);
    expect(parseJudgeReply('0.5')).toBe(0.5);
    expect(parseJudgeReply('<think>they match</think>\n1')).toBe(1);
    for (const bad of ['2.0', '-1', 'yes', '1.0 because', '', 'NaN', '1e0']) expect(parseJudgeReply(bad), bad).toBeUndefined();
  });

  it('never calls the judge for an empty answer or ground truth', async () => {
    reply = ok('1.0');
    expect(await rewardFunctions.llm({ completion: '<answer> </answer>', groundTruth: 'x', options: { baseUrl: base } })).toBe(0);
    expect(await rewardFunctions.llm({ completion: wrap('x'), groundTruth: '', options: { baseUrl: base } })).toBe(0);
    expect(seen).toHaveLength(0);
  });

  it('falls back to exact match on HTTP 500 and counts the failure in the scorer', async () => {
    reply = (_s, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('model crashed');
    };
    const events: RewardErrorEvent[] = [];
    const scorer = createRewardScorer([{ name: 'llm', options: { baseUrl: base } }, 'format'], { onError: (e) => events.push(e) });
    const res = await scorer.score([
      { completion: wrap('Paris'), groundTruth: 'paris' },
      { completion: wrap('Lyon'), groundTruth: 'paris' },
      { completion: wrap(''), groundTruth: 'paris' },
    ]);
    expect(res.perReward.llm).toEqual([1, 0, 0]);
    expect(res.errors.llm).toBe(2); // the empty answer never reached the judge
    expect(res.errors.format).toBe(0);
    expect(events.map((e) => e.sampleIndex).sort()).toEqual([0, 1]);
    expect(events[0]!.message).toMatch(/HTTP 500: model crashed/);
    expect(scorer.errorStats().llm!.count).toBe(2);
  });

  it('falls back on a timeout, a refused connection and an unparseable reply', async () => {
    const events: RewardErrorEvent[] = [];
    reply = () => {}; // never answers
    let scorer = createRewardScorer([{ name: 'llm', options: { baseUrl: base, timeoutMs: 150 } }], { onError: (e) => events.push(e) });
    let res = await scorer.score([{ completion: wrap('7'), groundTruth: '7' }]);
    expect(res.perReward.llm).toEqual([1]);
    expect(res.errors.llm).toBe(1);
    expect(events[0]!.message).toMatch(/did not answer within 150 ms/);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    scorer = createRewardScorer([{ name: 'llm', options: { baseUrl: `http://127.0.0.1:${port}/v1` } }], { onError: (e) => events.push(e) });
    res = await scorer.score([{ completion: wrap('7'), groundTruth: '8' }]);
    expect(res.perReward.llm).toEqual([0]);
    expect(res.errors.llm).toBe(1);
    expect(events[1]!.message).toMatch(/request to .* failed/);

    reply = ok('Yes, they match.');
    scorer = createRewardScorer([{ name: 'llm', options: { baseUrl: base } }], { onError: (e) => events.push(e) });
    res = await scorer.score([{ completion: wrap('7'), groundTruth: '7' }]);
    expect(res.perReward.llm).toEqual([1]);
    expect(events[2]!.message).toMatch(/not a number in \[0, 1\]/);
  });

  it('warns once per message when called without a scorer', async () => {
    reply = (_s, res) => {
      res.writeHead(503);
      res.end('busy');
    };
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      for (let i = 0; i < 3; i++) expect(await rewardFunctions.llm({ completion: wrap('a'), groundTruth: 'a', options: { baseUrl: base } })).toBe(1);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/fell back to exact match: .*HTTP 503/);
    } finally {
      warn.mockRestore();
    }
  });

  it('keeps at most maxConcurrency requests in flight', async () => {
    reply = (s, res) => setTimeout(() => ok('1.0')(s, res), 40);
    const scorer = createRewardScorer([{ name: 'llm', options: { baseUrl: base, maxConcurrency: 2 } }]);
    const samples = Array.from({ length: 8 }, (_, i) => ({ completion: wrap(String(i)), groundTruth: String(i) }));
    const res = await scorer.score(samples);
    expect(res.perReward.llm).toEqual(new Array(8).fill(1));
    expect(seen).toHaveLength(8);
    expect(maxInFlight).toBe(2);
  });

  it("points VLM-R1 rows whose accuracy method is 'llm' to the llm reward", () => {
    expect(() => rewardFunctions.accuracy({ completion: wrap('x'), groundTruth: 'x', row: { accu_reward_method: 'llm' } })).toThrow(/'llm' reward/);
  });

  it('rejects bad options when the scorer is built', () => {
    expect(() => createRewardScorer([{ name: 'llm', options: { baseUrl: 'not a url' } }])).toThrow(/baseUrl/);
    expect(() => createRewardScorer([{ name: 'llm', options: { timeout: 5 } }])).toThrow(/Did you mean 'timeoutMs'/);
  });
});
