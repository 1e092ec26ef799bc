/**
 * writeHtmlReport: RUN_DIR/report.html, one self-contained page about a training run.
 *
 * Self-contained means: no network and nothing outside the file. Charts are inline SVG drawn here (no chart
 * library), styles are inline, images are data-URI JPEG thumbnails, and the only script is a few inline lines that
 * filter the rollouts by step and text. The page works offline, by e-mail and from a CI artifact.
 *
 * Contents:
 * - a summary table: run folder, steps, wall time, the final numbers (last step and the mean of the last 10) and a
 *   config excerpt when RUN_DIR/config.json exists;
 * - line charts over steps (axes, ticks, labels, legend, a tooltip per point): reward (total and each function),
 *   accuracy, completion length (mean/min/max), truncated and zero-std-group shares, KL, entropy, clip fractions,
 *   reflection counts, learning rate, grad norm, loss, throughput, seconds per phase, and any `extra` metrics;
 *   a chart whose metric was never recorded (all null) is left out with a note;
 * - a browsable sample of rollouts (at most `maxRollouts` completions spread over the logged steps): one
 *   <details> per step, one block per prompt group with its prompt and images, and a row per completion with its
 *   rewards, advantage, length, finish reason and text.
 *
 * All text that comes from the run (prompts, completions, config values, reward names, paths) is HTML-escaped; in
 * addition "://" is written as "&#58;//", which displays the same but leaves no literal URL in the file.
 */
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';

import { ReportError } from './errors.js';
import { METRICS_FILE, MetricsLog } from './metrics-log.js';
import { makeThumbnail, RolloutLog, type RolloutRecord } from './rollout-log.js';
import type { StepMetrics } from './step-metrics.js';

/** Options of {@link writeHtmlReport}. */
export interface HtmlReportOptions {
  /** At most this many completions in the rollouts section (default 200; 0 leaves the section out). */
  maxRollouts?: number;
  /** Where to write the page (default RUN_DIR/report.html). */
  outFile?: string;
  /** Page title (default "vlm-grpo report: <run folder name>"). */
  title?: string;
  /** Folder for relative image paths (default: tried against RUN_DIR, then the working directory). */
  imageRoot?: string;
  /** Longest side of the image thumbnails made from image files, pixels (default 160). */
  thumbnailSize?: number;
  /** Points per chart series above which the series is thinned (min and max per bucket kept; default 2000). */
  maxPointsPerSeries?: number;
  /** Receives warnings (a cut metrics line, an unreadable image). Default: console.warn. */
  onWarning?: (message: string) => void;
}

// ---- escaping

/** Escape text for HTML content and attribute values; "://" becomes "&#58;//" so no literal URL appears. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
    .replace(/:\/\//g, '&#58;//');
}

// ---- charts

/** One line of a chart: points (x, y); a null or non-finite y breaks the line. */
export interface ChartSeries {
  name: string;
  points: Array<[number, number | null]>;
}

/** A chart to draw with {@link lineChartSvg}. */
export interface ChartSpec {
  id: string;
  title: string;
  yLabel: string;
  xLabel?: string;
  series: ChartSeries[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
const W = 640;
const H = 270;
const M = { left: 70, right: 18, top: 44, bottom: 46 };

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * mag;
}

/** Tick values covering [lo, hi] (about `count` of them) at 1/2/2.5/5 × 10^k spacing. */
export function niceTicks(lo: number, hi: number, count = 5, integer = false): number[] {
  if (!(hi > lo)) return [lo];
  let step = niceStep(hi - lo, count);
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.ceil(lo / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

/** A short label for a tick or value: 4 significant digits, exponent form for very small or large magnitudes. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(4)));
}

/** Thin a series to about `max` points keeping each bucket's first, min and max points (spikes survive). */
function thin(points: Array<[number, number]>, max: number): Array<[number, number]> {
  if (points.length <= max) return points;
  const buckets = Math.max(1, Math.floor(max / 2));
  const size = points.length / buckets;
  const out: Array<[number, number]> = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(points.length, Math.floor((b + 1) * size));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i++) {
      if ((points[i] as [number, number])[1] < (points[lo] as [number, number])[1]) lo = i;
      if ((points[i] as [number, number])[1] > (points[hi] as [number, number])[1]) hi = i;
    }
    for (const i of lo <= hi ? [lo, hi] : [hi, lo]) if (out[out.length - 1] !== points[i]) out.push(points[i] as [number, number]);
  }
  const last = points[points.length - 1] as [number, number];
  if (out[out.length - 1] !== last) out.push(last);
  return out;
}

/**
 * An inline SVG line chart (no xmlns needed inside HTML) with axes, ticks, axis labels, a legend and a <title>
 * tooltip per point. Each series' connected runs are <polyline class="series"> elements with the points in
 * `points` and `data-series` naming the series; an isolated point is a <circle class="series">.
 */
export function lineChartSvg(spec: ChartSpec, maxPointsPerSeries = 2000): string {
  const finite = spec.series.map((s) => ({
    name: s.name,
    runs: splitRuns(s.points).map((run) => thin(run, maxPointsPerSeries)),
  }));
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of finite) for (const run of s.runs) for (const [x, y] of run) {
    xs.push(x);
    ys.push(y);
  }
  // Loops, not Math.min(...xs): long runs have more points than a call may take arguments.
  let x0 = Infinity;
  let x1 = -Infinity;
  for (const x of xs) {
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
  }
  if (!(x1 > x0)) {
    x0 -= 1;
    x1 += 1;
  }
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const y of ys) {
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (!(y1 > y0)) {
    const pad = Math.abs(y0) > 0 ? Math.abs(y0) * 0.1 : 1;
    y0 -= pad;
    y1 += pad;
  } else {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  // Legend: one coloured swatch + name per series, left to right under the title, wrapping into rows.
  const legend: Array<{ x: number; row: number }> = [];
  let lx = M.left;
  let row = 0;
  for (const s of finite) {
    const w = 28 + s.name.length * 6.2;
    if (lx + w > W - M.right && lx > M.left) {
      row++;
      lx = M.left;
    }
    legend.push({ x: lx, row });
    lx += w;
  }
  const top = M.top + row * 14;
  const pw = W - M.left - M.right;
  const ph = H - top - M.bottom;
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;
  const r2 = (v: number) => Math.round(v * 100) / 100;

  const parts: string[] = [];
  parts.push(`<svg class="chart" id="${escapeHtml(spec.id)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(spec.title)}">`);
  parts.push(`<text class="ctitle" x="${M.left}" y="16">${escapeHtml(spec.title)}</text>`);
  finite.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const { x, row: r } = legend[i] as { x: number; row: number };
    const y = 24 + r * 14;
    parts.push(`<rect x="${r2(x)}" y="${y}" width="12" height="4" fill="${color}"/><text class="legend" x="${r2(x + 16)}" y="${y + 6}">${escapeHtml(s.name)}</text>`);
  });
  // Grid and ticks.
  parts.push('<g class="axis">');
  for (const t of niceTicks(y0, y1, 5)) {
    const y = r2(sy(t));
    parts.push(`<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}"/><text x="${M.left - 6}" y="${y + 4}" text-anchor="end">${formatNumber(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 6, true)) {
    const x = r2(sx(t));
    parts.push(`<line class="tick" x1="${x}" x2="${x}" y1="${top + ph}" y2="${top + ph + 5}"/><text x="${x}" y="${top + ph + 18}" text-anchor="middle">${formatNumber(t)}</text>`);
  }
  parts.push(`<line class="frame" x1="${M.left}" x2="${M.left}" y1="${top}" y2="${top + ph}"/>`);
  parts.push(`<line class="frame" x1="${M.left}" x2="${W - M.right}" y1="${top + ph}" y2="${top + ph}"/>`);
  parts.push(`<text class="alabel" x="${M.left + pw / 2}" y="${H - 6}" text-anchor="middle">${escapeHtml(spec.xLabel ?? 'step')}</text>`);
  parts.push(`<text class="alabel" transform="translate(14 ${top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(spec.yLabel)}</text>`);
  parts.push('</g>');
  // Series.
  finite.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const name = escapeHtml(s.name);
    for (const run of s.runs) {
      if (run.length === 1) {
        const [x, y] = run[0] as [number, number];
        parts.push(`<circle class="series" data-series="${name}" cx="${r2(sx(x))}" cy="${r2(sy(y))}" r="2.5" fill="${color}"/>`);
      } else {
        const pts = run.map(([x, y]) => `${r2(sx(x))},${r2(sy(y))}`).join(' ');
        parts.push(`<polyline class="series" data-series="${name}" fill="none" stroke="${color}" stroke-width="1.6" points="${pts}"/>`);
      }
    }
    // Hover targets with exact values, when there are few enough points to be worth it.
    const count = s.runs.reduce((n, r) => n + r.length, 0);
    if (count <= 400) {
      parts.push(`<g class="pts" fill="${color}">`);
      for (const run of s.runs) {
        for (const [x, y] of run) {
          parts.push(`<circle cx="${r2(sx(x))}" cy="${r2(sy(y))}" r="3"><title>${name} @ step ${formatNumber(x)}: ${formatNumber(y)}</title></circle>`);
        }
      }
      parts.push('</g>');
    }
  });
  parts.push('</svg>');
  return parts.join('');
}

function splitRuns(points: Array<[number, number | null]>): Array<Array<[number, number]>> {
  const runs: Array<Array<[number, number]>> = [];
  let cur: Array<[number, number]> = [];
  for (const [x, y] of points) {
    if (y === null || !Number.isFinite(y) || !Number.isFinite(x)) {
      if (cur.length) runs.push(cur);
      cur = [];
    } else {
      cur.push([x, y]);
    }
  }
  if (cur.length) runs.push(cur);
  return runs;
}

function hasData(spec: ChartSpec): boolean {
  return spec.series.some((s) => s.points.some(([, y]) => y !== null && Number.isFinite(y)));
}

/** The charts of the report, from the step metrics (sorted by step, one entry per step). */
export function buildCharts(metrics: readonly StepMetrics[]): ChartSpec[] {
  const pts = (f: (m: StepMetrics) => number | null | undefined): Array<[number, number | null]> =>
    metrics.map((m) => [m.step, f(m) ?? null]);
  const rewardNames = unique(metrics.flatMap((m) => Object.keys(m.rewards)));
  const phrases = unique(metrics.flatMap((m) => Object.keys(m.reflection.counts))).filter((p) =>
    metrics.some((m) => (m.reflection.counts[p] ?? 0) > 0));
  const extras = unique(metrics.flatMap((m) => Object.keys(m.extra ?? {}))).slice(0, 24);
  const charts: ChartSpec[] = [
    {
      id: 'chart-reward', title: 'Reward (mean over completions)', yLabel: 'reward',
      series: [{ name: 'total', points: pts((m) => m.reward.mean) },
        ...rewardNames.map((n) => ({ name: n, points: pts((m) => m.rewards[n]?.mean) }))],
    },
    { id: 'chart-reward-std', title: 'Total reward std over completions', yLabel: 'std', series: [{ name: 'reward std', points: pts((m) => m.reward.std) }] },
    { id: 'chart-accuracy', title: 'Accuracy', yLabel: 'share correct', series: [{ name: 'accuracy', points: pts((m) => m.accuracy) }] },
    {
      id: 'chart-length', title: 'Completion length', yLabel: 'tokens',
      series: [{ name: 'mean', points: pts((m) => m.completionLength.mean) }, { name: 'min', points: pts((m) => m.completionLength.min) },
        { name: 'max', points: pts((m) => m.completionLength.max) }],
    },
    {
      id: 'chart-shares', title: 'Truncated completions and zero-std groups', yLabel: 'share',
      series: [{ name: 'truncated', points: pts((m) => m.truncatedFrac) }, { name: 'zero-std groups', points: pts((m) => m.fracZeroStdGroups) }],
    },
    { id: 'chart-kl', title: 'KL to the reference policy (per token)', yLabel: 'nats', series: [{ name: 'kl', points: pts((m) => m.kl) }] },
    { id: 'chart-entropy', title: 'Policy entropy (per token)', yLabel: 'nats', series: [{ name: 'entropy', points: pts((m) => m.entropy) }] },
    {
      id: 'chart-clip', title: 'Clip fractions (share of response tokens)', yLabel: 'share',
      series: [{ name: 'low', points: pts((m) => m.clipFrac.low) }, { name: 'high', points: pts((m) => m.clipFrac.high) },
        { name: 'dual', points: pts((m) => m.clipFrac.dual) }],
    },
    {
      id: 'chart-reflection', title: 'Reflection phrases (occurrences per step)', yLabel: 'count',
      series: [{ name: 'total', points: pts((m) => m.reflection.total) },
        ...phrases.map((p) => ({ name: p, points: pts((m) => m.reflection.counts[p] ?? 0) }))],
    },
    {
      id: 'chart-reflection-share', title: 'Completions with a reflection phrase', yLabel: 'share',
      series: [{ name: 'with any', points: pts((m) => m.reflection.fracWithAny) }],
    },
    { id: 'chart-lr', title: 'Learning rate', yLabel: 'lr', series: [{ name: 'lr', points: pts((m) => m.lr) }] },
    { id: 'chart-gradnorm', title: 'Gradient norm (before clipping)', yLabel: 'L2 norm', series: [{ name: 'grad norm', points: pts((m) => m.gradNorm) }] },
    { id: 'chart-loss', title: 'Policy loss', yLabel: 'loss', series: [{ name: 'loss', points: pts((m) => m.loss) }] },
    { id: 'chart-throughput', title: 'Throughput', yLabel: 'tokens / s', series: [{ name: 'tokens/s', points: pts((m) => m.tokensPerSecond) }] },
    {
      id: 'chart-time', title: 'Seconds per step', yLabel: 'seconds',
      series: [{ name: 'total', points: pts((m) => m.seconds.total) }, { name: 'generation', points: pts((m) => m.seconds.generation) },
        { name: 'scoring', points: pts((m) => m.seconds.scoring) }, { name: 'update', points: pts((m) => m.seconds.update) }],
    },
    ...extras.map((k, i) => ({ id: `chart-extra-${i}`, title: k, yLabel: k, series: [{ name: k, points: pts((m) => m.extra?.[k]) }] })),
  ];
  return charts;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

// ---- summary tables

function td(v: string): string {
  return `<td>${v}</td>`;
}

function num(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : escapeHtml(formatNumber(v));
}

function finalTable(metrics: readonly StepMetrics[]): string {
  const last = metrics[metrics.length - 1];
  if (!last) return '<p class="note">No metrics were logged.</p>';
  const tail = metrics.slice(-10);
  const meanOf = (f: (m: StepMetrics) => number | null | undefined): number | null => {
    const vs = tail.map(f).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    return vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  };
  const rows: Array<[string, (m: StepMetrics) => number | null | undefined]> = [
    ['reward (total)', (m) => m.reward.mean],
    ...unique(metrics.flatMap((m) => Object.keys(m.rewards))).map(
      (n): [string, (m: StepMetrics) => number | null | undefined] => [`reward: ${n}`, (m) => m.rewards[n]?.mean]),
    ['accuracy', (m) => m.accuracy],
    ['zero-std groups (share)', (m) => m.fracZeroStdGroups],
    ['completion length (mean tokens)', (m) => m.completionLength.mean],
    ['truncated (share)', (m) => m.truncatedFrac],
    ['KL (nats/token)', (m) => m.kl],
    ['entropy (nats/token)', (m) => m.entropy],
    ['clip fraction (low + high)', (m) => m.clipFrac.low + m.clipFrac.high],
    ['grad norm', (m) => m.gradNorm],
    ['learning rate', (m) => m.lr],
    ['reflection phrases per completion', (m) => m.reflection.perCompletion],
    ['tokens / s', (m) => m.tokensPerSecond],
    ['seconds per step', (m) => m.seconds.total],
  ];
  const body = rows.map(([name, f]) => `<tr>${td(escapeHtml(name))}${td(num(f(last)))}${td(num(meanOf(f)))}</tr>`).join('');
  return `<table class="kv"><thead><tr><th>metric</th><th>step ${last.step}</th><th>mean of last ${tail.length}</th></tr></thead><tbody>${body}</tbody></table>`;
}

function flattenConfig(v: unknown, prefix: string, out: Array<[string, string]>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) flattenConfig(child, prefix ? `${prefix}.${k}` : k, out);
  } else {
    const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
    out.push([prefix, s.length > 200 ? `${s.slice(0, 200)}…` : s]);
  }
}

function configTable(runDir: string, warn: (m: string) => void): string {
  const path = join(runDir, 'config.json');
  if (!existsSync(path)) return '';
  let cfg: unknown;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    warn(`report: ignoring ${path}: ${err instanceof Error ? err.message : String(err)}`);
    return '<p class="note">config.json could not be parsed.</p>';
  }
  const rows: Array<[string, string]> = [];
  flattenConfig(cfg, '', rows);
  const limit = 80;
  const body = rows.slice(0, limit).map(([k, v]) => `<tr>${td(`<code>${escapeHtml(k)}</code>`)}${td(escapeHtml(v))}</tr>`).join('');
  const more = rows.length > limit ? `<p class="note">… and ${rows.length - limit} more settings in config.json.</p>` : '';
  return `<h3>Config (excerpt of config.json)</h3><table class="kv"><tbody>${body}</tbody></table>${more}`;
}

// ---- rollouts

/** Which rows of which steps to show: up to `max` completions, steps spread evenly, whole groups first. */
async function sampleRollouts(runDir: string, max: number): Promise<Map<number, RolloutRecord[]>> {
  const out = new Map<number, RolloutRecord[]>();
  const steps = RolloutLog.listSteps(runDir);
  if (max <= 0 || steps.length === 0) return out;
  const k = Math.min(steps.length, max);
  const chosen = unique(Array.from({ length: k }, (_, i) => String(steps[k === 1 ? steps.length - 1 : Math.round((i * (steps.length - 1)) / (k - 1))])))
    .map(Number);
  const base = Math.floor(max / chosen.length);
  let extra = max - base * chosen.length;
  for (const step of chosen) {
    const quota = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    const n = await RolloutLog.countRows(runDir, step);
    out.set(step, await RolloutLog.readStep(runDir, step, { rowStart: 0, rowEnd: Math.min(n, quota) }));
  }
  return out;
}

class ImageEmbedder {
  private readonly cache = new Map<string, string | null>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly roots: string[],
    private readonly size: number,
    private readonly warn: (m: string) => void,
  ) {}

  private locate(path: string): string | undefined {
    if (isAbsolute(path)) return existsSync(path) ? path : undefined;
    for (const root of this.roots) {
      const p = resolve(root, path);
      if (existsSync(p)) return p;
    }
    return undefined;
  }

  /** A data URI for the image: the stored thumbnail when there is one, else a thumbnail made from the file. */
  async dataUri(path: string, stored: Uint8Array | undefined): Promise<string | null> {
    if (stored && stored.length > 0) return `data:image/jpeg;base64,${Buffer.from(stored).toString('base64')}`;
    const cached = this.cache.get(path);
    if (cached !== undefined) return cached;
    let uri: string | null = null;
    const file = this.locate(path);
    if (file) {
      try {
        uri = `data:image/jpeg;base64,${Buffer.from(await makeThumbnail(file, this.size, 75)).toString('base64')}`;
      } catch (err) {
        if (!this.warned.has(path)) this.warn(`report: cannot read image ${file}: ${err instanceof Error ? err.message : String(err)}`);
        this.warned.add(path);
      }
    }
    this.cache.set(path, uri);
    return uri;
  }
}

const MAX_TEXT = 20_000;

function clip(text: string): string {
  if (text.length <= MAX_TEXT) return escapeHtml(text);
  return `${escapeHtml(text.slice(0, MAX_TEXT))}<span class="note"> … (${text.length - MAX_TEXT} more characters)</span>`;
}

async function rolloutsSection(runDir: string, sample: Map<number, RolloutRecord[]>, images: ImageEmbedder): Promise<string> {
  if (sample.size === 0) return '<p class="note">No rollouts were logged (RUN_DIR/rollouts/step-*.parquet).</p>';
  const parts: string[] = [];
  const total = [...sample.values()].reduce((n, rows) => n + rows.length, 0);
  parts.push(`<p>${total} completions from ${sample.size} of ${RolloutLog.listSteps(runDir).length} logged steps. ` +
    'Filter: <label>steps <input id="fmin" type="number" placeholder="from"> – <input id="fmax" type="number" placeholder="to"></label> ' +
    '<label>text <input id="ftext" type="search" placeholder="in prompt or completion"></label> ' +
    '<button type="button" id="fopen">expand all</button> <button type="button" id="fclose">collapse all</button> ' +
    '<span id="fcount"></span></p>');
  for (const [step, rows] of sample) {
    const mean = rows.length ? rows.reduce((a, r) => a + r.reward, 0) / rows.length : NaN;
    const groups = new Map<number, RolloutRecord[]>();
    for (const r of rows) {
      const g = groups.get(r.groupIndex) ?? [];
      g.push(r);
      groups.set(r.groupIndex, g);
    }
    parts.push(`<details class="step" data-step="${step}"><summary>Step ${step} — ${rows.length} completions in ${groups.size} group(s), mean reward ${num(mean)}</summary>`);
    for (const [gi, grp] of groups) {
      const first = grp[0] as RolloutRecord;
      const imgs: string[] = [];
      for (const [i, p] of first.images.entries()) {
        const uri = await images.dataUri(p, first.thumbnails?.[i]);
        imgs.push(uri
          ? `<figure><img src="${uri}" alt="${escapeHtml(p)}"><figcaption>${escapeHtml(basename(p))}</figcaption></figure>`
          : `<figure class="missing"><figcaption>${escapeHtml(p)} (not found)</figcaption></figure>`);
      }
      const names = unique(grp.flatMap((r) => Object.keys(r.rewards)));
      const head = `<tr><th>#</th><th>reward</th>${names.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}<th>advantage</th><th>length</th><th>finish</th><th>completion</th></tr>`;
      const body = grp.map((r) => `<tr class="ro"><td>${r.sampleIndex}</td><td>${num(r.reward)}</td>` +
        names.map((n) => `<td>${num(r.rewards[n])}</td>`).join('') +
        `<td>${num(r.advantage)}</td><td>${r.length}${r.truncated ? ' <span class="trunc">cut</span>' : ''}</td><td>${escapeHtml(r.finishReason)}</td>` +
        `<td><pre class="completion">${clip(r.completion)}</pre></td></tr>`).join('');
      parts.push(`<div class="group"><div class="ghead">Group ${gi} · prompt <code>${escapeHtml(first.promptId)}</code></div>` +
        `<div class="prompt"><div class="imgs">${imgs.join('')}</div><pre class="ptext">${clip(first.prompt)}</pre></div>` +
        `<table class="rollouts">${head}${body}</table></div>`);
    }
    parts.push('</details>');
  }
  return parts.join('\n');
}

// ---- page

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1340px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ddd}h3{font-size:15px}
.note{color:#777}.meta{color:#555}code{font-size:12px}
table.kv{border-collapse:collapse;margin:6px 0}table.kv td,table.kv th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table.kv td:nth-child(n+2){font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:14px}svg.chart{background:#fff;border:1px solid #e3e3e3;border-radius:4px;max-width:100%;height:auto}
svg.chart text{font-size:11px;fill:#444}svg.chart .ctitle{font-size:13px;font-weight:600;fill:#222}svg.chart .alabel{font-size:12px}
svg.chart .grid{stroke:#eee}svg.chart .frame,svg.chart .tick{stroke:#999}svg.chart .pts circle{opacity:0}svg.chart .pts circle:hover{opacity:1}
details.step{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 10px}details.step>summary{cursor:pointer;font-weight:600}
.group{border-top:1px dashed #ccc;margin:8px 0;padding-top:6px}.ghead{font-weight:600;margin-bottom:4px}
.prompt{display:flex;gap:12px;align-items:flex-start}.imgs{display:flex;gap:6px;flex-wrap:wrap}
figure{margin:0;font-size:11px;color:#666;text-align:center}figure img{max-width:160px;max-height:160px;border:1px solid #ccc;display:block}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre.ptext{background:#f6f8fa;padding:6px;flex:1;max-height:220px;overflow:auto}pre.completion{max-height:260px;overflow:auto}
table.rollouts{border-collapse:collapse;width:100%;margin-top:6px}table.rollouts td,table.rollouts th{border:1px solid #e1e1e1;padding:3px 6px;vertical-align:top;text-align:left}
table.rollouts td:last-child{width:62%}.trunc{color:#b00;font-size:11px}input[type=number]{width:70px}
`;

// Filters the step <details> by step range and text; no network, no external code.
const SCRIPT = `
(function(){
  var steps=[].slice.call(document.querySelectorAll('details.step'));
  var fmin=document.getElementById('fmin'),fmax=document.getElementById('fmax'),ftext=document.getElementById('ftext');
  if(!fmin)return;
  function apply(){
    var lo=fmin.value===''?-Infinity:Number(fmin.value),hi=fmax.value===''?Infinity:Number(fmax.value);
    var q=ftext.value.toLowerCase(),shown=0;
    steps.forEach(function(d){
      var s=Number(d.getAttribute('data-step'));var ok=s>=lo&&s<=hi;
      if(ok&&q){ok=d.textContent.toLowerCase().indexOf(q)>=0;if(ok)d.open=true;}
      d.style.display=ok?'':'none';if(ok)shown++;
    });
    document.getElementById('fcount').textContent=shown+' of '+steps.length+' steps shown';
  }
  [fmin,fmax,ftext].forEach(function(e){e.addEventListener('input',apply);});
  document.getElementById('fopen').addEventListener('click',function(){steps.forEach(function(d){if(d.style.display!=='none')d.open=true;});});
  document.getElementById('fclose').addEventListener('click',function(){steps.forEach(function(d){d.open=false;});});
  apply();
})();
`;

/**
 * Write RUN_DIR/report.html (or `outFile`) for the run in `runDir`.
 * @returns the path of the written page
 * @throws ReportError when runDir does not exist or holds neither metrics.jsonl nor rollouts
 */
export async function writeHtmlReport(runDir: string, options: HtmlReportOptions = {}): Promise<string> {
  if (typeof runDir !== 'string' || runDir === '') throw new TypeError('writeHtmlReport: runDir must be a non-empty string');
  const maxRollouts = options.maxRollouts ?? 200;
  if (!Number.isInteger(maxRollouts) || maxRollouts < 0) throw new RangeError(`writeHtmlReport: maxRollouts must be a non-negative integer, got ${maxRollouts}`);
  const thumbSize = options.thumbnailSize ?? 160;
  if (!Number.isInteger(thumbSize) || thumbSize < 8 || thumbSize > 2048) {
    throw new RangeError(`writeHtmlReport: thumbnailSize must be an integer in [8, 2048], got ${thumbSize}`);
  }
  const maxPoints = options.maxPointsPerSeries ?? 2000;
  if (!Number.isInteger(maxPoints) || maxPoints < 4) throw new RangeError(`writeHtmlReport: maxPointsPerSeries must be an integer >= 4, got ${maxPoints}`);
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new ReportError('ERR_REPORT_NO_RUN_DIR', `run directory ${runDir} does not exist`,
      'Pass the output folder of a training run (the one holding metrics.jsonl and rollouts/).');
  }
  const hasMetrics = existsSync(join(runDir, METRICS_FILE));
  const steps = RolloutLog.listSteps(runDir);
  if (!hasMetrics && steps.length === 0) {
    throw new ReportError('ERR_REPORT_NO_METRICS', `${runDir} holds no ${METRICS_FILE} and no rollouts/step-*.parquet`,
      'Point the report at a run directory written by the trainer, or wait until the first step has finished.');
  }

  // Metrics: one entry per step (a resumed run may have logged a step twice: the later line wins), by step.
  const byStep = new Map<number, StepMetrics>();
  if (hasMetrics) for (const m of MetricsLog.read(runDir, { onWarning: warn })) byStep.set(m.step, m);
  const metrics = [...byStep.values()].sort((a, b) => a.step - b.step);

  const charts = buildCharts(metrics);
  const drawn = charts.filter(hasData);
  const skipped = charts.filter((c) => !hasData(c));

  const roots = options.imageRoot !== undefined ? [options.imageRoot] : [runDir, process.cwd()];
  const embedder = new ImageEmbedder(roots, thumbSize, warn);
  const sample = await sampleRollouts(runDir, maxRollouts);

  const name = basename(resolve(runDir));
  const title = options.title ?? `vlm-grpo report: ${name}`;
  const wall = metrics.reduce((s, m) => s + (Number.isFinite(m.seconds.total) ? m.seconds.total : 0), 0);
  const firstStep = metrics[0]?.step;
  const lastStep = metrics[metrics.length - 1]?.step;
  const runRows = [
    ['run directory', escapeHtml(resolve(runDir))],
    ['steps logged', metrics.length ? `${metrics.length} (step ${firstStep} to ${lastStep})` : '0'],
    ['training time (sum of step times)', wall > 0 ? escapeHtml(formatSeconds(wall)) : '–'],
    ['rollout files', String(steps.length)],
    ['report written', escapeHtml(new Date().toISOString())],
  ].map(([k, v]) => `<tr>${td(k as string)}${td(v as string)}</tr>`).join('');

  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">A self-contained page: charts, rollouts and images are inside this file.</p>
<h2 id="summary">Summary</h2>
<table class="kv"><tbody>${runRows}</tbody></table>
<h3>Final numbers</h3>
${finalTable(metrics)}
${configTable(runDir, warn)}
<h2 id="charts">Metrics over steps</h2>
<div class="charts">
${drawn.map((c) => lineChartSvg(c, maxPoints)).join('\n')}
</div>
${skipped.length ? `<p class="note">Not recorded in this run: ${skipped.map((c) => escapeHtml(c.title)).join(', ')}.</p>` : ''}
<h2 id="rollouts">Rollouts</h2>
${await rolloutsSection(runDir, sample, embedder)}
<script>${SCRIPT}</script>
</body></html>
`;
  const out = options.outFile ?? join(runDir, 'report.html');
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, html);
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return out;
}

function formatSeconds(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.round(s % 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
}
