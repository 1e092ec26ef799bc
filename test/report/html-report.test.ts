import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  escapeHtml,
  lineChartSvg,
  MetricsLog,
  niceTicks,
  ReportError,
  RolloutLog,
  writeHtmlReport,
  type RolloutInput,
  type StepMetrics,
} from '../../src/report/index.js';
import { makeMetrics, makeRollouts, rng } from './synthetic.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-report-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const STEPS = 12;

/** The <svg> of the chart with this id, or undefined. */
function chart(html: string, id: string): string | undefined {
  const start = html.indexOf(`<svg class="chart" id="${id}"`);
  if (start < 0) return undefined;
  return html.slice(start, html.indexOf('</svg>', start) + 6);
}

/** Plotted points of each series in a chart: polyline vertices plus isolated circles, by data-series. */
function seriesPoints(svg: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of svg.matchAll(/<polyline class="series" data-series="([^"]*)"[^>]*points="([^"]*)"/g)) {
    out[m[1] as string] = (out[m[1] as string] ?? 0) + (m[2] as string).trim().split(/\s+/).length;
  }
  for (const m of svg.matchAll(/<circle class="series" data-series="([^"]*)"/g)) out[m[1] as string] = (out[m[1] as string] ?? 0) + 1;
  return out;
}

async function syntheticRun(runDir: string, opts: { thumbnails?: boolean } = {}): Promise<StepMetrics[]> {
  mkdirSync(join(runDir, 'images'), { recursive: true });
  const r = rng(99);
  const px = Buffer.alloc(48 * 32 * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.floor(r() * 256);
  await sharp(px, { raw: { width: 48, height: 32, channels: 3 } }).png().toFile(join(runDir, 'images', 'cat.png'));
  const metrics = Array.from({ length: STEPS }, (_, i) => makeMetrics(i + 1, r));
  const log = new MetricsLog(runDir);
  for (const m of metrics) log.append(m);
  log.close();
  // A crash cut the next line.
  appendFileSync(join(runDir, 'metrics.jsonl'), '{"step":13,"time":17');
  writeFileSync(join(runDir, 'config.json'), JSON.stringify({ model: 'Qwen2.5-VL-3B', train: { lr: 1e-6, groupSize: 4 }, rewards: ['accuracy', 'format'] }));
  const rollouts = new RolloutLog(runDir, { imageRoot: runDir, thumbnails: opts.thumbnails ?? false });
  for (const step of [1, 6, 12]) {
    const recs = makeRollouts(step, 2, 4, r, ['images/cat.png']);
    recs[1] = { ...(recs[1] as RolloutInput), completion: 'Answer: <script>alert(1)</script> see https://example.com & "quotes"' };
    await rollouts.write(step, recs);
  }
  return metrics;
}

describe('writeHtmlReport', () => {
  it('writes a self-contained page: a chart per metric with one point per step, escaped text, embedded images', async () => {
    await syntheticRun(dir);
    const warnings: string[] = [];
    const path = await writeHtmlReport(dir, { maxRollouts: 50, onWarning: (w) => warnings.push(w) });
    expect(path).toBe(join(dir, 'report.html'));
    const html = readFileSync(path, 'utf8');
    expect(warnings.some((w) => /skipped the last line/.test(w))).toBe(true);

    const expected: Record<string, string[]> = {
      'chart-reward': ['total', 'accuracy', 'format'],
      'chart-accuracy': ['accuracy'],
      'chart-length': ['mean', 'min', 'max'],
      'chart-kl': ['kl'],
      'chart-entropy': ['entropy'],
      'chart-clip': ['low', 'high', 'dual'],
      'chart-reflection': ['total', 'wait', 'recheck', 'however'],
      'chart-lr': ['lr'],
      'chart-gradnorm': ['grad norm'],
      'chart-throughput': ['tokens/s'],
      'chart-time': ['total', 'generation', 'scoring', 'update'],
    };
    for (const [id, series] of Object.entries(expected)) {
      const svg = chart(html, id);
      expect(svg, id).toBeDefined();
      expect(seriesPoints(svg as string), id).toEqual(Object.fromEntries(series.map((s) => [s, STEPS])));
      // Axes with labels, and a hover value per point.
      expect(svg).toContain('class="alabel"');
      expect(svg).toContain('>step</text>');
      expect((svg as string).match(/<title>/g)?.length, id).toBe(series.length * STEPS);
    }
    expect(html.match(/<svg class="chart"/g)?.length).toBeGreaterThanOrEqual(Object.keys(expected).length);

    // Self-contained: no URL of any kind, no external resources; the only script is ours.
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<(link|iframe|object|embed)\b/);
    expect(html).not.toMatch(/\bsrc="(?!data:)/);
    expect(html).not.toMatch(/url\(/);
    expect(html.match(/<script/g)).toHaveLength(1);
    // The hostile completion is escaped (and its URL displays but is no longer a literal URL).
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; see https&#58;//example.com &amp; &quot;quotes&quot;');

    // The PNG is embedded as a JPEG data URI that decodes to the image.
    const m = /<img src="data:image\/jpeg;base64,([A-Za-z0-9+/=]+)"/.exec(html);
    expect(m).not.toBeNull();
    const meta = await sharp(Buffer.from(m?.[1] as string, 'base64')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 48, 32]);

    // Summary: config excerpt and final numbers; rollouts grouped by step with their rewards.
    expect(html).toContain('<code>train.lr</code>');
    expect(html).toContain('Qwen2.5-VL-3B');
    expect(html).toContain(`<th>step ${STEPS}</th>`);
    expect(html.match(/<details class="step" data-step="\d+">/g)).toHaveLength(3);
    expect(html.match(/<tr class="ro">/g)).toHaveLength(24);
    expect(html).toContain('<th>accuracy</th><th>format</th>');
  });

  it('respects maxRollouts, uses stored thumbnails, leaves out never-recorded metrics and breaks lines at nulls', async () => {
    await syntheticRun(dir, { thumbnails: true });
    // Rewrite the metrics: kl never recorded, entropy missing at step 5.
    const r = rng(5);
    const log = new MetricsLog(join(dir, 'b'));
    for (let s = 1; s <= STEPS; s++) log.append({ ...makeMetrics(s, r), kl: null, entropy: s === 5 ? null : 1 + s / 10 });
    log.close();
    writeFileSync(join(dir, 'metrics.jsonl'), readFileSync(join(dir, 'b', 'metrics.jsonl')));
    // The image file is gone: the thumbnail stored in the Parquet file is used.
    rmSync(join(dir, 'images'), { recursive: true });
    const out = join(dir, 'elsewhere.html');
    expect(await writeHtmlReport(dir, { maxRollouts: 5, outFile: out, onWarning: () => {} })).toBe(out);
    const html = readFileSync(out, 'utf8');
    expect(html.match(/<tr class="ro">/g)?.length).toBe(5);
    expect(html).toContain('data:image/jpeg;base64,');
    expect(chart(html, 'chart-kl')).toBeUndefined();
    expect(html).toMatch(/Not recorded in this run: KL to the reference policy/);
    const ent = chart(html, 'chart-entropy') as string;
    expect(seriesPoints(ent)).toEqual({ entropy: STEPS - 1 });
    expect(ent.match(/<polyline/g)).toHaveLength(2);
  });

  it('fails clearly for a missing or empty run directory', async () => {
    await expect(writeHtmlReport(join(dir, 'nope'))).rejects.toThrow(ReportError);
    await expect(writeHtmlReport(dir)).rejects.toThrow(/no metrics\.jsonl and no rollouts/);
    await expect(writeHtmlReport(dir, { maxRollouts: -1 })).rejects.toThrow(RangeError);
  });

  it.skipIf(!existsSync('/usr/bin/chromium'))('renders in headless chromium with every chart in the DOM', async () => {
    await syntheticRun(dir);
    const path = await writeHtmlReport(dir, { onWarning: () => {} });
    const dom = execFileSync('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `file://${path}`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(dom.match(/<svg class="chart"/g)?.length).toBe(readFileSync(path, 'utf8').match(/<svg class="chart"/g)?.length);
    expect(dom).toContain('of 3 steps shown');
  });
});

describe('chart and escaping helpers', () => {
  it('escapes HTML special characters and defuses URLs', () => {
    expect(escapeHtml(`<a href="x">'&'</a> http://h`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt; http&#58;//h');
  });

  it('draws points at the right coordinates and thins long series keeping the extremes', () => {
    const svg = lineChartSvg({ id: 'c', title: 't', yLabel: 'y', series: [{ name: 's', points: [[0, 0], [10, 1]] }] });
    const pts = /points="([^"]*)"/.exec(svg)?.[1]?.split(' ').map((p) => p.split(',').map(Number)) as number[][];
    // x spans the plot area left to right; y = 0 is lower than y = 1 (SVG y grows downwards).
    expect(pts[0]?.[0]).toBe(70);
    expect(pts[1]?.[0]).toBe(640 - 18);
    expect((pts[0]?.[1] as number) > (pts[1]?.[1] as number)).toBe(true);
    const long: Array<[number, number]> = Array.from({ length: 10_000 }, (_, i) => [i, i === 4321 ? 1000 : Math.sin(i / 50)]);
    const thin = lineChartSvg({ id: 'd', title: 't', yLabel: 'y', series: [{ name: 's', points: long }] }, 500);
    expect(seriesPoints(thin).s).toBeLessThanOrEqual(501);
    expect(thin).not.toContain('<title>'); // too many points for hover targets
    const ys = (/points="([^"]*)"/.exec(thin)?.[1] as string).split(' ').map((p) => Number(p.split(',')[1]));
    // The spike survives thinning: y = 1000 maps to top + ph·(1 − (1000 − y0)/(y1 − y0)) with the 5% padding.
    const y0 = -1 - 0.05 * 1001;
    const y1 = 1000 + 0.05 * 1001;
    expect(Math.min(...ys)).toBeCloseTo(44 + 180 * (1 - (1000 - y0) / (y1 - y0)), 1);
  });

  it('picks nice ticks', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
    expect(niceTicks(1, 12, 6, true)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });
});
