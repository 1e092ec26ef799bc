/** `vlm-grpo doctor`: what this machine and this build offer, and which native variant is loaded. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

import { addonPath, native } from '../native/binding.js';

const INTERESTING_FLAGS = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_bf16', 'avx512_vnni', 'amx_tile', 'amx_bf16', 'asimd', 'sve'];

function cpuFeatures(): string[] {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = info.split('\n').find((l) => /^(flags|Features)\s*:/.test(l)) ?? '';
    const flags = new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
    return INTERESTING_FLAGS.filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

function nvccVersion(): string {
  const r = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'not found on PATH';
  const m = /release ([\d.]+), V([\d.]+)/.exec(r.stdout);
  return m ? `${m[2]}` : r.stdout.trim().split('\n').pop() ?? 'unknown';
}

function cudaVersion(v: number): string {
  return v ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : 'none';
}

export interface DoctorReport {
  lines: [string, string][];
  ok: boolean;
}

/** Collects the report; a missing addon is reported as a line, not thrown. */
export function doctorReport(): DoctorReport {
  const lines: [string, string][] = [];
  const cpus = os.cpus();
  lines.push(['Node', `${process.version} (N-API ${process.versions.napi}, ${process.arch})`]);
  lines.push(['OS', `${os.type()} ${os.release()} (${os.platform()})`]);
  lines.push(['CPU', `${cpus[0]?.model ?? 'unknown'} × ${cpus.length} logical cores`]);
  lines.push(['CPU features', cpuFeatures().join(' ') || 'unknown']);
  lines.push(['Memory', `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB total, ${(os.freemem() / 2 ** 30).toFixed(1)} GiB free`]);
  let ok = true;
  try {
    const addon = native();
    const b = addon.buildInfo();
    const c = addon.cudaInfo();
    const variant = c.compiled ? (c.kernelOk ? 'CPU + CUDA (GPU usable)' : 'CPU + CUDA (GPU not usable: CPU path)') : 'CPU only';
    lines.push(['Addon', `${addonPath()}`]);
    lines.push(['Addon variant', `${variant}; ${b.buildType}, ${b.cpuFlags}${b.sanitize ? `, sanitize=${b.sanitize}` : ''}, ${b.compiler}, built ${b.buildTime}`]);
    lines.push(['Threads', `${addon.getNumThreads()} kernel threads (set VG_NUM_THREADS or setNumThreads())`]);
    lines.push(['BLAS', b.blasAvailable ? b.blas : `${b.blas} — install libopenblas-dev and run npm run build:native for full speed`]);
    lines.push(['Collectives', `${b.glooAvailable ? 'Gloo (CPU ranks)' : 'Gloo not built — install libgloo-dev and run npm run build:native for multi-process training'}; NCCL loaded at run time when a GPU run asks for it`]);
    lines.push(['CUDA compiler', c.compiled ? `nvcc ${b.cudaToolkit} at build time; on PATH now: ${nvccVersion()}` : `not used in this build (on PATH now: ${nvccVersion()})`]);
    lines.push(['CUDA runtime/driver', `runtime ${cudaVersion(c.runtimeVersion)}, driver ${cudaVersion(c.driverVersion)}`]);
    if (c.gpus.length === 0) lines.push(['GPU', 'none']);
    for (const g of c.gpus) {
      lines.push([`GPU ${g.index}`, `${g.name}, compute ${g.computeCapability}, ${(g.totalMemory / 2 ** 30).toFixed(1)} GiB, ${g.multiprocessors} SMs`]);
    }
    lines.push(['GPU status', c.status]);
  } catch (err) {
    ok = false;
    lines.push(['Addon', err instanceof Error ? err.message : String(err)]);
  }
  return { lines, ok };
}

export function runDoctor(): number {
  const { lines, ok } = doctorReport();
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) console.log(`${k.padEnd(width)}  ${v}`);
  return ok ? 0 : 1;
}
