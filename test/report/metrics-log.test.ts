import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MetricsLog, ReportError } from '../../src/report/index.js';
import { makeMetrics, rng } from './synthetic.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-metrics-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('MetricsLog', () => {
  it('round-trips 3 steps: one JSON line each, read back equal', () => {
    const r = rng(42);
    const steps = [1, 2, 3].map((s) => makeMetrics(s, r));
    const log = new MetricsLog(join(dir, 'run'));
    for (const m of steps) log.append(m);
    // Flushed per line: the file holds every line before close().
    const text = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8');
    expect(text.split('\n')).toHaveLength(4);
    expect(text.endsWith('\n')).toBe(true);
    log.close();
    log.close(); // idempotent
    expect(MetricsLog.read(join(dir, 'run'))).toEqual(steps);
    expect(MetricsLog.read(join(dir, 'run', 'metrics.jsonl'))).toEqual(steps);
  });

  it('keeps NaN, Infinity and null through the file', () => {
    const m = { ...makeMetrics(1, rng(3)), gradNorm: Infinity, loss: NaN, kl: null, extra: { isRatioMax: -Infinity, x: 2 } };
    const log = new MetricsLog(dir, { fsync: true });
    log.append(m);
    log.close();
    const line = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
    expect(line).toContain('"gradNorm":"Infinity"');
    expect(() => JSON.parse(line)).not.toThrow();
    const [back] = MetricsLog.read(dir);
    expect(back?.gradNorm).toBe(Infinity);
    expect(back?.loss).toBeNaN();
    expect(back?.kl).toBeNull();
    expect(back?.extra).toEqual({ isRatioMax: -Infinity, x: 2 });
  });

  it('ignores a cut last line with a warning instead of crashing', () => {
    const r = rng(7);
    const log = new MetricsLog(dir);
    log.append(makeMetrics(1, r));
    log.append(makeMetrics(2, r));
    log.close();
    const full = JSON.stringify(makeMetrics(3, r));
    appendFileSync(join(dir, 'metrics.jsonl'), full.slice(0, Math.floor(full.length / 2)));
    const warnings: string[] = [];
    const back = MetricsLog.read(dir, { onWarning: (w) => warnings.push(w) });
    expect(back.map((m) => m.step)).toEqual([1, 2]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/skipped the last line/);
  });

  it('accepts a complete last line without its newline', () => {
    const m = makeMetrics(1, rng(8));
    writeFileSync(join(dir, 'metrics.jsonl'), JSON.stringify(m));
    const warnings: string[] = [];
    expect(MetricsLog.read(dir, { onWarning: (w) => warnings.push(w) })).toEqual([m]);
    expect(warnings).toEqual([]);
  });

  it('throws a ReportError naming the line for corruption before the last line', () => {
    const r = rng(9);
    writeFileSync(join(dir, 'metrics.jsonl'), `${JSON.stringify(makeMetrics(1, r))}\n{oops\n${JSON.stringify(makeMetrics(3, r))}\n`);
    expect(() => MetricsLog.read(dir)).toThrow(ReportError);
    expect(() => MetricsLog.read(dir)).toThrow(/line 2/);
    expect(() => MetricsLog.read(join(dir, 'nope'))).toThrow(/no metrics log/);
  });

  it('repairs a cut last line when reopened, and drops steps after resumeFromStep', () => {
    const r = rng(10);
    const ms = [1, 2, 3, 4].map((s) => makeMetrics(s, r));
    const log = new MetricsLog(dir);
    for (const m of ms) log.append(m);
    log.close();
    appendFileSync(join(dir, 'metrics.jsonl'), '{"step":5,"ti');
    const warnings: string[] = [];
    const resumed = new MetricsLog(dir, { resumeFromStep: 2, onWarning: (w) => warnings.push(w) });
    expect(resumed.lastStepOnOpen).toBe(2);
    const m3 = makeMetrics(3, r);
    resumed.append(m3);
    resumed.close();
    expect(MetricsLog.read(dir)).toEqual([ms[0], ms[1], m3]);
    expect(warnings.some((w) => /skipped the last line/.test(w))).toBe(true);
    expect(warnings.some((w) => /dropped 2 line/.test(w))).toBe(true);
    // Reopening a clean file keeps it byte for byte.
    const before = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
    new MetricsLog(dir).close();
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).toBe(before);
  });

  it('validates what it appends and refuses to append after close', () => {
    const log = new MetricsLog(dir);
    const m = makeMetrics(1, rng(12));
    expect(() => log.append({ ...m, lr: 'fast' } as unknown as typeof m)).toThrow(TypeError);
    expect(() => log.append({ ...m, lr: 'fast' } as unknown as typeof m)).toThrow(/lr: expected a number/);
    log.close();
    expect(() => log.append(m)).toThrow(/closed/);
    expect(MetricsLog.read(dir)).toEqual([]);
    expect(() => new MetricsLog(dir, { resumeFromStep: -1 })).toThrow(RangeError);
  });
});
