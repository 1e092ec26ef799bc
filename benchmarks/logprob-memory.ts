/**
 * Log-prob gather benchmark: peak memory and time of the chunked gather (kernels.logprobs /
 * logprobsBackward, vocabulary processed 4096 columns at a time) against the full-logits approach
 * (`fullLogits: true`: the whole [N, V] logits matrix materialised once, as `log_softmax(h @ W.T)` does), for
 * Qwen2.5-VL's 151,936-entry vocabulary.
 *
 * Memory is measured, not computed: every (method, N) case runs in a fresh child process that fills its
 * inputs, warms the kernels up on a tiny problem (thread pools, BLAS buffers), resets its peak-RSS counter
 * (writing 5 to /proc/self/clear_refs sets VmHWM to the current RSS) right before each call and reads VmHWM
 * from /proc/self/status right after it. The growth includes the call's own outputs (forward: 3 x N floats;
 * backward: gradHidden N x H and gradLmHead V x H floats), so the table also shows the working memory
 * (growth minus outputs), which is what chunking changes.
 *
 *   node --import tsx benchmarks/logprob-memory.ts [--tokens 512,2048] [--backward-tokens 512] [--hidden 1536]
 *                                                  [--vocab 151936] [--chunk 4096]
 *                                                  [--quick (tokens 128,512, backward at 128)]
 * The backward (3 GEMMs over the vocabulary, ~3x the forward's time) runs only for the --backward-tokens sizes
 * ('' for none) to keep the default run near two minutes on 2 cores.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { logprobs, logprobsBackward } from '../src/kernels/logprob.js';
import { getNumThreads } from '../src/native/runtime.js';

type Method = 'chunked' | 'full';

interface Case {
  method: Method;
  tokens: number;
  hidden: number;
  vocab: number;
  chunk: number;
  backward: boolean;
}

interface ChildResult extends Case {
  fwdMs: number;
  fwdPeakBytes: number;
  bwdMs: number;
  bwdPeakBytes: number;
  threads: number;
  resetWorked: boolean;
}

function argValue(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

function procStatusBytes(field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`${field} not found in /proc/self/status (this benchmark needs Linux)`);
  return Number(m[1]) * 1024;
}

/** Sets VmHWM to the current RSS (when the kernel allows it); returns the baseline to measure growth from. */
function resetPeak(): { base: number; reset: boolean } {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return { base: procStatusBytes('VmRSS'), reset: true };
  } catch {
    return { base: procStatusBytes('VmHWM'), reset: false }; // growth over the earlier peak: a lower bound
  }
}

/** n floats ~ N(0, scale^2); large arrays tile a 1 Mi-entry random block (the values do not affect speed). */
function randn(n: number, scale: number): Float32Array {
  const blockLen = Math.min(n, 1 << 20);
  const block = new Float32Array(blockLen);
  for (let i = 0; i < blockLen; i++)
    block[i] = scale * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  const a = new Float32Array(n);
  for (let off = 0; off < n; off += blockLen) a.set(block.subarray(0, Math.min(blockLen, n - off)), off);
  return a;
}

function runChild(c: Case): ChildResult {
  const fullLogits = c.method === 'full';
  // Warm-up on a tiny problem, outside the measurement.
  {
    const h = randn(8 * 16, 1), w = randn(64 * 16, 1), t = new Int32Array(8).fill(3);
    const base = { hidden: h, lmHead: w, targets: t, numTokens: 8, hiddenSize: 16, vocabSize: 64, chunkSize: 16, fullLogits };
    const f = logprobs(base);
    logprobsBackward({ ...base, logsumexp: f.logsumexp, gradLogprobs: new Float32Array(8).fill(1) });
  }
  const hidden = randn(c.tokens * c.hidden, 1);
  const lmHead = randn(c.vocab * c.hidden, 1 / Math.sqrt(c.hidden));
  const targets = Int32Array.from({ length: c.tokens }, () => Math.floor(Math.random() * c.vocab));
  const input = {
    hidden, lmHead, targets, numTokens: c.tokens, hiddenSize: c.hidden, vocabSize: c.vocab, chunkSize: c.chunk,
    fullLogits,
  };
  let mark = resetPeak();
  let t0 = performance.now();
  const fwd = logprobs(input);
  const fwdMs = performance.now() - t0;
  const fwdPeakBytes = procStatusBytes('VmHWM') - mark.base;
  let bwdMs = 0, bwdPeakBytes = 0;
  if (c.backward) {
    const gradLogprobs = new Float32Array(c.tokens).fill(1 / c.tokens);
    mark = resetPeak();
    t0 = performance.now();
    logprobsBackward({ ...input, logsumexp: fwd.logsumexp, gradLogprobs });
    bwdMs = performance.now() - t0;
    bwdPeakBytes = procStatusBytes('VmHWM') - mark.base;
  }
  return { ...c, fwdMs, fwdPeakBytes, bwdMs, bwdPeakBytes, threads: getNumThreads(), resetWorked: mark.reset };
}

function spawnChild(c: Case): ChildResult {
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--child', JSON.stringify(c)];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`child ${c.method} N=${c.tokens} failed (status ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as ChildResult;
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);
const pad = (s: string, n: number) => s.padStart(n);

function main(): void {
  const childArg = process.argv.indexOf('--child');
  if (childArg >= 0) {
    process.stdout.write(`${JSON.stringify(runChild(JSON.parse(process.argv[childArg + 1]!) as Case))}\n`);
    return;
  }
  const quick = process.argv.includes('--quick');
  const tokens = argValue('--tokens', quick ? '128,512' : '512,2048').split(',').map(Number);
  const hidden = Number(argValue('--hidden', '1536'));
  const vocab = Number(argValue('--vocab', '151936'));
  const chunk = Number(argValue('--chunk', '4096'));
  const backwardTokens = new Set(argValue('--backward-tokens', quick ? '128' : '512').split(',').filter(Boolean).map(Number));

  console.log(`log-prob gather, vocabulary ${vocab} (Qwen2.5-VL), hidden ${hidden} (Qwen2-VL-2B / Qwen2.5-VL-1.5B-class), ` +
    `chunk ${chunk}, float32, ${getNumThreads()} threads; lmHead alone = ${mib(vocab * hidden * 4)} MiB`);
  console.log('peak = measured VmHWM growth during the call, in a fresh process per (method, N); ' +
    'work = peak - the call\'s outputs; time = one run\n');
  const header = [pad('pass', 8), pad('N', 6), pad('chunked peak', 13), pad('full peak', 11), pad('full/chunked', 13),
    pad('chunked work', 13), pad('full work', 11), pad('full/chunked', 13), pad('N x chunk', 10), pad('N x V', 9),
    pad('chunked s', 10), pad('full s', 8), pad('full/chunked', 13)].join(' ');
  console.log(`${header}\n${'-'.repeat(header.length)}`);
  let resetOk = true;
  for (const n of tokens) {
    const backward = backwardTokens.has(n);
    const base = { tokens: n, hidden, vocab, chunk, backward };
    const ch = spawnChild({ ...base, method: 'chunked' });
    const fu = spawnChild({ ...base, method: 'full' });
    resetOk &&= ch.resetWorked && fu.resetWorked;
    const rows: Array<[string, number, number, number, number, number]> = [
      // pass, chunked peak, full peak, outputs, chunked ms, full ms
      ['forward', ch.fwdPeakBytes, fu.fwdPeakBytes, 3 * n * 4, ch.fwdMs, fu.fwdMs],
    ];
    if (backward)
      rows.push(['backward', ch.bwdPeakBytes, fu.bwdPeakBytes, (n * hidden + vocab * hidden) * 4, ch.bwdMs, fu.bwdMs]);
    for (const [pass, cp, fp, out, cms, fms] of rows) {
      const cw = Math.max(cp - out, 0), fw = Math.max(fp - out, 0);
      console.log([pad(pass, 8), pad(String(n), 6), pad(`${mib(cp)} MiB`, 13), pad(`${mib(fp)} MiB`, 11),
        pad((fp / cp).toFixed(1), 13), pad(`${mib(cw)} MiB`, 13), pad(`${mib(fw)} MiB`, 11),
        pad(cw > 0 ? (fw / cw).toFixed(1) : '-', 13), pad(mib(n * Math.min(chunk, vocab) * 4), 10),
        pad(mib(n * vocab * 4), 9), pad(sec(cms), 10), pad(sec(fms), 8), pad((fms / cms).toFixed(2), 13)].join(' '));
    }
  }
  console.log('\n(N x chunk and N x V: the float buffer each method needs, in MiB; the backward outputs include ' +
    `gradLmHead, ${mib(vocab * hidden * 4)} MiB, for both methods)`);
  if (!resetOk) console.log('note: /proc/self/clear_refs could not reset VmHWM; peaks are lower bounds');
}

main();
