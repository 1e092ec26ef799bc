/**
 * Attention benchmark: our flash-style CPU kernels (kernels.attention / attentionBackward) against the
 * textbook baseline that materialises the full [heads, L, L] score matrix (kernels.attentionNaive /
 * attentionNaiveBackward, GEMM-backed), on one causal sequence per length.
 *
 * Reports forward and backward time (best of a few runs) and the measured peak extra memory of each call.
 * Memory is measured, not computed: every (implementation, length) runs in a fresh child process, which
 * resets its peak-RSS counter (writing 5 to /proc/self/clear_refs sets VmHWM to the current RSS) right
 * before each call and reads VmHWM from /proc/self/status right after it. The growth includes the call's
 * own outputs (out + lse, or the three gradients), which are linear in L for both implementations.
 *
 *   node --import tsx benchmarks/attention.ts [--lengths 256,512,1024,2048,4096] [--heads 4] [--head-dim 128]
 *                                             [--naive-budget-s 20] [--quick (lengths 256..1024)]
 * The baseline is skipped at lengths where its time, extrapolated quadratically from the previous length,
 * would pass the budget (default 20 s for its runs at that length), or its predicted memory would pass
 * half of MemAvailable.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { attention, attentionBackward, attentionNaive, attentionNaiveBackward } from '../src/kernels/attention.js';
import { getNumThreads } from '../src/native/runtime.js';

type Impl = 'ours' | 'naive';

interface ChildResult {
  impl: Impl;
  length: number;
  fwdMs: number;
  bwdMs: number;
  fwdPeakBytes: number;
  bwdPeakBytes: number;
  threads: number;
  resetWorked: boolean;
}

function argValue(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

function procStatusKb(field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`${field} not found in /proc/self/status (this benchmark needs Linux)`);
  return Number(m[1]) * 1024;
}

/**
 * Resets VmHWM to the current RSS; returns the RSS to measure growth from. A full GC first (children run
 * with --expose-gc) so V8 does not return pages concurrently during the call and hide part of its growth.
 */
function resetPeak(): { base: number; reset: boolean } {
  (globalThis as { gc?: () => void }).gc?.();
  let reset = true;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    reset = false;  // older kernels: growth is then measured against the earlier peak, a lower bound
  }
  return { base: reset ? procStatusKb('VmRSS') : procStatusKb('VmHWM'), reset };
}

function randn(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return a;
}

function problem(length: number, heads: number, headDim: number) {
  const n = length * heads * headDim;
  return {
    q: randn(n), k: randn(n), v: randn(n), gradOut: randn(n),
    cuSeqlensQ: Int32Array.from([0, length]), numHeads: heads, numKvHeads: heads, headDim, causal: true,
  };
}

function runChild(impl: Impl, length: number, heads: number, headDim: number): ChildResult {
  const fwd = impl === 'ours' ? attention : attentionNaive;
  const bwd = impl === 'ours' ? attentionBackward : attentionNaiveBackward;
  // Warm up on a small problem: starts the thread pool and the BLAS threads outside the measurement.
  {
    const w = problem(64, heads, headDim);
    const { gradOut, ...wi } = w;
    const r = fwd(wi);
    bwd({ ...wi, ...r, gradOut });
  }
  const p = problem(length, heads, headDim);
  const { gradOut, ...input } = p;
  // Measured calls: peak RSS growth, then timing repeats.
  let mark = resetPeak();
  let t0 = performance.now();
  const res = fwd(input);
  let fwdMs = performance.now() - t0;
  const fwdPeakBytes = procStatusKb('VmHWM') - mark.base;
  mark = resetPeak();
  t0 = performance.now();
  bwd({ ...input, ...res, gradOut });
  let bwdMs = performance.now() - t0;
  const bwdPeakBytes = procStatusKb('VmHWM') - mark.base;
  const reps = length <= 1024 ? 3 : 1;
  for (let i = 0; i < reps; i++) {
    t0 = performance.now();
    fwd(input);
    fwdMs = Math.min(fwdMs, performance.now() - t0);
    t0 = performance.now();
    bwd({ ...input, ...res, gradOut });
    bwdMs = Math.min(bwdMs, performance.now() - t0);
  }
  return { impl, length, fwdMs, bwdMs, fwdPeakBytes, bwdPeakBytes, threads: getNumThreads(), resetWorked: mark.reset };
}

function spawnChild(impl: Impl, length: number, heads: number, headDim: number): ChildResult {
  const args = [...process.execArgv, '--expose-gc', fileURLToPath(import.meta.url), '--child', impl, String(length),
    '--heads', String(heads), '--head-dim', String(headDim)];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`child ${impl} L=${length} failed (status ${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as ChildResult;
}

function memAvailableBytes(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : Infinity;
}

const mb = (b: number) => (b / 2 ** 20).toFixed(1);
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const pad = (s: string, n: number) => s.padStart(n);

function main(): void {
  const heads = Number(argValue('--heads', '4'));
  const headDim = Number(argValue('--head-dim', '128'));
  if (process.argv.includes('--child')) {
    const i = process.argv.indexOf('--child');
    const impl = process.argv[i + 1] as Impl;
    const length = Number(process.argv[i + 2]);
    process.stdout.write(`${JSON.stringify(runChild(impl, length, heads, headDim))}\n`);
    return;
  }
  const quick = process.argv.includes('--quick');
  const lengths = argValue('--lengths', quick ? '256,512,1024' : '256,512,1024,2048,4096').split(',').map(Number);
  const budgetS = Number(argValue('--naive-budget-s', '20'));

  console.log(`attention, one causal sequence, ${heads} heads x ${headDim} (MHA), float32, ${getNumThreads()} threads`);
  console.log('time: best of the runs; peak: measured VmHWM growth during the call (includes its outputs)\n');
  const header = [pad('L', 5), pad('fwd ours ms', 12), pad('fwd naive ms', 13), pad('naive/ours', 11),
    pad('bwd ours ms', 12), pad('bwd naive ms', 13), pad('naive/ours', 11), pad('fwd peak ours', 22),
    pad('fwd peak naive', 24), pad('bwd peak ours', 22), pad('bwd peak naive', 24)].join(' ');
  console.log(header);
  console.log('-'.repeat(header.length));
  const peak = (b: number, L: number) => `${mb(b)} MB (${Math.round(b / L)} B/tok)`;
  let prevNaive: ChildResult | undefined;
  const skips: string[] = [];
  const ours: ChildResult[] = [];
  const naive: ChildResult[] = [];
  for (const L of lengths) {
    const o = spawnChild('ours', L, heads, headDim);
    ours.push(o);
    let n: ChildResult | undefined;
    let skipReason = '';
    if (prevNaive) {
      const f = (L / prevNaive.length) ** 2;
      // The child runs fwd + bwd (1 + reps) times; reps = 1 above 1024.
      const runs = L <= 1024 ? 4 : 2;
      const predS = (runs * (prevNaive.fwdMs + prevNaive.bwdMs) * f) / 1000;
      const predMem = Math.max(prevNaive.fwdPeakBytes, prevNaive.bwdPeakBytes) * f;
      if (predS > budgetS)
        skipReason = `predicted ${predS.toFixed(0)} s > ${budgetS} s budget (quadratic from ${prevNaive.length})`;
      else if (predMem > memAvailableBytes() / 2)
        skipReason = `predicted peak ${mb(predMem)} MB > half of MemAvailable`;
    }
    if (!skipReason) {
      n = spawnChild('naive', L, heads, headDim);
      naive.push(n);
      prevNaive = n;
    } else {
      skips.push(`L=${L}: naive skipped (quadratic): ${skipReason}`);
    }
    const skipped = 'skipped (quadratic)';
    console.log([pad(String(L), 5), pad(ms(o.fwdMs), 12), pad(n ? ms(n.fwdMs) : skipped, 13),
      pad(n ? (n.fwdMs / o.fwdMs).toFixed(2) : '-', 11), pad(ms(o.bwdMs), 12), pad(n ? ms(n.bwdMs) : skipped, 13),
      pad(n ? (n.bwdMs / o.bwdMs).toFixed(2) : '-', 11), pad(peak(o.fwdPeakBytes, L), 22),
      pad(n ? peak(n.fwdPeakBytes, L) : skipped, 24), pad(peak(o.bwdPeakBytes, L), 22),
      pad(n ? peak(n.bwdPeakBytes, L) : skipped, 24)].join(' '));
  }
  for (const s of skips) console.log(s);
  if (!ours.every((r) => r.resetWorked))
    console.log('note: /proc/self/clear_refs could not reset VmHWM; peaks are growth over the earlier peak (lower bounds)');

  // Growth summary: linear memory keeps bytes/token flat; quadratic memory doubles it when L doubles.
  const perTok = (rs: ChildResult[], f: (r: ChildResult) => number) =>
    rs.map((r) => `${r.length}: ${Math.round(f(r) / r.length)}`).join(', ');
  console.log('\npeak extra bytes per token (flat = linear growth, doubling per doubling of L = quadratic):');
  console.log(`  ours  fwd  ${perTok(ours, (r) => r.fwdPeakBytes)}`);
  console.log(`  ours  bwd  ${perTok(ours, (r) => r.bwdPeakBytes)}`);
  console.log(`  naive fwd  ${perTok(naive, (r) => r.fwdPeakBytes)}`);
  console.log(`  naive bwd  ${perTok(naive, (r) => r.bwdPeakBytes)}`);
  const outBytes = (L: number) => L * heads * headDim * 4;
  console.log(`  (outputs alone: fwd out+lse = ${heads * headDim * 4 + heads * 4} B/token, ` +
    `bwd gradQ+gradK+gradV = ${3 * outBytes(1)} B/token; naive also holds ${heads}*L*4 B/token per score matrix)`);
}

main();
