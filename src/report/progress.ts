/**
 * ProgressReporter: training progress on the console.
 *
 * On a terminal (stream.isTTY) it keeps ONE line, redrawn in place with "\r" (and "ESC[K" to clear what the
 * previous, longer line left): steps done, a bar, the percentage, the ETA, the reward, accuracy and tokens/s.
 * When the stream is not a terminal (CI logs, pipes, files) it writes plain lines without any escape sequences,
 * every `every` steps plus the first and the last, so logs stay readable and small.
 *
 * It writes to the stream it is given (default process.stderr, keeping stdout clean for data), so tests pass a
 * fake stream; `now` can be injected for a deterministic ETA.
 */
import type { StepMetrics } from './step-metrics.js';

/** What the reporter writes to: a Node writable (process.stderr) or any object with write(). */
export interface ProgressStream {
  write(chunk: string): unknown;
  /** True for a terminal: enables the in-place bar. */
  isTTY?: boolean;
  /** Terminal width in characters (the bar line is fitted to it; 80 when unknown). */
  columns?: number;
}

/** Options of {@link ProgressReporter}. */
export interface ProgressOptions {
  /** The step the run ends at. */
  totalSteps: number;
  /** Where to write (default process.stderr). */
  stream?: ProgressStream;
  /** Force the terminal (true) or plain-lines (false) mode; default stream.isTTY. */
  tty?: boolean;
  /** Plain-lines mode: print every this many steps (default 10; the first and the last step always print). */
  every?: number;
  /** The step the run starts after (a resumed run: its checkpoint step; default 0). The ETA uses the steps done since. */
  startStep?: number;
  /** Prefix of plain lines (default "vlm-grpo"). */
  label?: string;
  /** Clock in milliseconds (default Date.now). */
  now?: () => number;
}

/** The numbers a progress update shows; a whole StepMetrics works. */
export type ProgressUpdate = Pick<StepMetrics, 'step'> &
  Partial<Pick<StepMetrics, 'accuracy' | 'tokensPerSecond' | 'kl'>> & {
    reward?: { mean: number; std?: number };
    completionLength?: { mean: number };
  };

/** "1h02m", "3m05s", "12s" (rounded to seconds); "?" for unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

function fmt(v: number | null | undefined, digits: number): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (!Number.isFinite(v)) return String(v);
  return v.toFixed(digits);
}

/** Console progress for a training run: a redrawn bar on a terminal, plain lines otherwise. */
export class ProgressReporter {
  private readonly total: number;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly startStep: number;
  private readonly label: string;
  private readonly now: () => number;
  private readonly startTime: number;
  private lastLine = '';
  private lastPrinted = -1;
  private last: ProgressUpdate | undefined;
  private finished = false;

  constructor(options: ProgressOptions) {
    const total = options.totalSteps;
    if (!Number.isInteger(total) || total < 1) throw new RangeError(`ProgressReporter: totalSteps must be a positive integer, got ${total}`);
    const every = options.every ?? 10;
    if (!Number.isInteger(every) || every < 1) throw new RangeError(`ProgressReporter: every must be a positive integer, got ${every}`);
    const start = options.startStep ?? 0;
    if (!Number.isInteger(start) || start < 0 || start > total) {
      throw new RangeError(`ProgressReporter: startStep must be an integer in [0, ${total}], got ${start}`);
    }
    this.total = total;
    this.every = every;
    this.startStep = start;
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.label = options.label ?? 'vlm-grpo';
    this.now = options.now ?? Date.now;
    this.startTime = this.now();
  }

  /** Whether the reporter draws the in-place bar (terminal mode). */
  get isTTY(): boolean {
    return this.tty;
  }

  /** Seconds left, from the mean step time since the start (NaN before the first step). */
  eta(step: number): number {
    const done = step - this.startStep;
    if (done <= 0) return NaN;
    const perStep = (this.now() - this.startTime) / 1000 / done;
    return perStep * Math.max(0, this.total - step);
  }

  private fields(u: ProgressUpdate, compact: boolean): string[] {
    const out: string[] = [];
    const r = u.reward;
    if (r) {
      const mean = fmt(r.mean, 3);
      const std = compact ? undefined : fmt(r.std, 3);
      out.push(`reward ${mean}${std !== undefined ? `±${std}` : ''}`);
    }
    const acc = fmt(u.accuracy, 3);
    if (acc !== undefined) out.push(`acc ${acc}`);
    if (!compact) {
      const len = fmt(u.completionLength?.mean, 0);
      if (len !== undefined) out.push(`len ${len}`);
      const kl = u.kl === null || u.kl === undefined ? undefined : u.kl.toPrecision(3);
      if (kl !== undefined) out.push(`kl ${kl}`);
    }
    const tps = fmt(u.tokensPerSecond, 0);
    if (tps !== undefined) out.push(`${tps} tok/s`);
    return out;
  }

  private barLine(u: ProgressUpdate): string {
    const width = Math.max(20, (this.stream.columns ?? 80) - 1);
    const frac = Math.min(1, Math.max(0, u.step / this.total));
    const head = `${u.step}/${this.total}`;
    const tail = `${(frac * 100).toFixed(0).padStart(3)}% eta ${formatDuration(this.eta(u.step))}${[''].concat(this.fields(u, true)).join(' | ')}`;
    const barWidth = Math.min(30, width - head.length - tail.length - 4);
    let line: string;
    if (barWidth >= 5) {
      const filled = Math.round(frac * barWidth);
      line = `${head} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${tail}`;
    } else {
      line = `${head} ${tail}`;
    }
    return line.length > width ? line.slice(0, width) : line;
  }

  private plainLine(u: ProgressUpdate): string {
    const pct = ((u.step / this.total) * 100).toFixed(1);
    const elapsed = (this.now() - this.startTime) / 1000;
    const parts = [`[${this.label}] step ${u.step}/${this.total} (${pct}%)`, ...this.fields(u, false),
      `elapsed ${formatDuration(elapsed)}`, `eta ${formatDuration(this.eta(u.step))}`];
    return parts.join(' ');
  }

  /** Report a finished step (a StepMetrics, or just the fields shown). */
  update(u: ProgressUpdate): void {
    if (u === null || typeof u !== 'object' || !Number.isInteger(u.step)) {
      throw new TypeError(`ProgressReporter.update: expected an object with an integer step, got ${JSON.stringify(u)}`);
    }
    this.last = u;
    if (this.tty) {
      this.lastLine = this.barLine(u);
      this.stream.write(`\r${this.lastLine}\x1b[K`);
    } else if (this.lastPrinted < 0 || u.step % this.every === 0 || u.step >= this.total) {
      this.stream.write(`${this.plainLine(u)}\n`);
      this.lastPrinted = u.step;
    }
  }

  /** Print a message on its own line without breaking the bar (terminal: clear, print, redraw). */
  log(message: string): void {
    if (this.tty) {
      this.stream.write(`\r\x1b[K${message}\n`);
      if (this.lastLine && !this.finished) this.stream.write(`\r${this.lastLine}\x1b[K`);
    } else {
      this.stream.write(`${message}\n`);
    }
  }

  /** End the display: terminal mode moves past the bar; plain mode prints the last step if it was skipped. Idempotent. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.tty) {
      if (this.lastLine) this.stream.write('\n');
    } else if (this.last && this.lastPrinted !== this.last.step) {
      this.stream.write(`${this.plainLine(this.last)}\n`);
      this.lastPrinted = this.last.step;
    }
  }
}
