import { describe, expect, it } from 'vitest';

import { formatDuration, ProgressReporter, type ProgressStream } from '../../src/report/index.js';
import { makeMetrics, rng } from './synthetic.js';

class FakeStream implements ProgressStream {
  chunks: string[] = [];
  constructor(readonly isTTY: boolean, readonly columns = 100) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

// Any ANSI escape: CSI sequences and lone ESC.
const ANSI = /\x1b/;

function clock(stepMs: number) {
  let t = 0;
  return { now: () => t, tick: () => (t += stepMs) };
}

describe('ProgressReporter', () => {
  it('writes plain lines every N steps (plus the first and the last) without ANSI escapes when not a TTY', () => {
    const stream = new FakeStream(false);
    const c = clock(2000);
    const p = new ProgressReporter({ totalSteps: 25, stream, every: 10, now: c.now });
    expect(p.isTTY).toBe(false);
    const r = rng(1);
    for (let step = 1; step <= 25; step++) {
      c.tick();
      p.update(makeMetrics(step, r));
    }
    p.finish();
    const lines = stream.text.split('\n').filter(Boolean);
    expect(lines.map((l) => /step (\d+)\/25/.exec(l)?.[1])).toEqual(['1', '10', '20', '25']);
    expect(stream.text).not.toMatch(ANSI);
    expect(stream.text).not.toContain('\r');
    // 10 steps done in 20 s: 2 s per step, 15 left → eta 30s.
    expect(lines[1]).toMatch(/^\[vlm-grpo\] step 10\/25 \(40\.0%\) reward \d\.\d{3}±\d\.\d{3} acc \d\.\d{3} len \d+ kl \S+ \d+ tok\/s elapsed 20s eta 30s$/);
    expect(lines[3]).toMatch(/eta 0s$/);
  });

  it('finish() prints the last update when it fell between two lines, and log() prints plain lines', () => {
    const stream = new FakeStream(false);
    const p = new ProgressReporter({ totalSteps: 100, stream, every: 10 });
    p.update({ step: 1 });
    p.update({ step: 7, reward: { mean: 0.5 } });
    p.log('checkpoint saved');
    p.finish();
    p.finish();
    const lines = stream.text.split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toBe('checkpoint saved');
    expect(lines[2]).toMatch(/step 7\/100 .* reward 0\.500 /);
  });

  it('redraws one line in place with \\r on a TTY, fitted to the width', () => {
    const stream = new FakeStream(true, 90);
    const c = clock(1000);
    const p = new ProgressReporter({ totalSteps: 4, stream, now: c.now });
    expect(p.isTTY).toBe(true);
    const r = rng(2);
    for (let step = 1; step <= 4; step++) {
      c.tick();
      p.update(makeMetrics(step, r));
    }
    p.log('saved');
    p.finish();
    // One chunk per update (a "\r" redraw), no newline until log()/finish().
    const draws = stream.chunks.slice(0, 4);
    for (const [i, d] of draws.entries()) {
      expect(d.startsWith('\r')).toBe(true);
      expect(d).not.toContain('\n');
      expect(d).toContain(`${i + 1}/4 [`);
      const visible = d.replace(/\r|\x1b\[K/g, '');
      expect(visible.length).toBeLessThanOrEqual(89);
    }
    expect(draws[1]).toMatch(/\r2\/4 \[#+\.+\]  50% eta 2s \| reward \d\.\d{3} \| acc \d\.\d{3} \| \d+ tok\/s\x1b\[K/);
    expect(draws[3]).toMatch(/\[#+\] 100% eta 0s/);
    // log(): clear, message, newline, then the bar again; finish(): a final newline.
    expect(stream.chunks[4]).toBe('\r\x1b[Ksaved\n');
    expect(stream.chunks[5]).toBe(draws[3]);
    expect(stream.chunks[6]).toBe('\n');
  });

  it('honours startStep for the ETA of a resumed run, and validates its options', () => {
    const stream = new FakeStream(false);
    const c = clock(3000);
    const p = new ProgressReporter({ totalSteps: 20, stream, startStep: 10, every: 1, now: c.now });
    c.tick();
    p.update({ step: 11 });
    expect(stream.text).toMatch(/eta 27s/);
    expect(() => new ProgressReporter({ totalSteps: 0, stream })).toThrow(RangeError);
    expect(() => new ProgressReporter({ totalSteps: 5, every: 0, stream })).toThrow(RangeError);
    expect(() => p.update({} as { step: number })).toThrow(TypeError);
  });

  it('formats durations', () => {
    expect(formatDuration(5)).toBe('5s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(NaN)).toBe('?');
  });
});
