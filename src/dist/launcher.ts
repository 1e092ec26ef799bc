/**
 * The local launcher (torchrun's job for one node): spawns this node's ranks as child processes running the same
 * CLI entry with the launcher flags removed and the rank environment set (MASTER_ADDR, MASTER_PORT, RANK,
 * WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; VG_NUM_THREADS = floor(cores / nprocPerNode) unless the user set it),
 * prefixes every output line with `[rank R]`, and supervises them:
 *  - one rank exits non-zero or by a signal: the others get SIGTERM, then SIGKILL after `graceMs`, and the launch
 *    resolves with exit code != 0 and ONE message naming the rank, its exit code or signal, and the fix (--resume);
 *  - Ctrl-C (SIGINT) is forwarded once per press: the first asks every rank to stop after the current step and
 *    save a checkpoint, the second stops them at once; SIGTERM is forwarded as it is.
 * Children run in their own process groups, so a terminal Ctrl-C reaches them exactly once (through us), and each
 * watches our pid (VG_LAUNCHER_PID, see watchLauncher) so that ranks never outlive a launcher killed with SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism, constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';

import { rankEnvironment, stripLaunchFlags, type LaunchPlan } from './rendezvous.js';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** CLI arguments of a rank (e.g. ['train', '--config', 'run.yaml']); launcher flags in it are removed. */
  argv: readonly string[];
  /** Program and leading arguments of a rank; default: this Node with its exec flags and this CLI entry script. */
  entry?: { command: string; args: readonly string[] };
  /** Base environment of the ranks (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** SIGTERM → SIGKILL grace period when stopping ranks (default 10 s). */
  graceMs?: number;
  /** Where the prefixed output goes (default process.stdout / process.stderr). */
  stdout?: Writable;
  stderr?: Writable;
  /** Forward this process's SIGINT / SIGTERM to the ranks (default true). */
  forwardSignals?: boolean;
  /** CPU cores to divide among the local ranks (default os.availableParallelism()). */
  cores?: number;
}

export interface RankExit {
  rank: number;
  localRank: number;
  pid: number;
  /** Exit code, or null when the rank was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** What the launcher process should exit with: 0 when every rank succeeded. */
  exitCode: number;
  /** Every local rank's exit, by local rank. */
  ranks: RankExit[];
  /** The rank whose failure stopped the job (null when none failed). */
  failed: RankExit | null;
  /** The one message for the user when the job failed or was interrupted (null on success). */
  message: string | null;
  /** True when the job was stopped by SIGINT/SIGTERM sent to the launcher. */
  interrupted: boolean;
}

const DEFAULT_GRACE_MS = 10_000;
/** Exit code of a rank that stopped early on request (Ctrl-C) after saving a checkpoint (see cli/train.ts). */
export const EXIT_INTERRUPTED = 130;

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

/** Describes an exit: "exited with code 3" / "was killed by signal SIGKILL". */
export function describeExit(e: Pick<RankExit, 'code' | 'signal'>): string {
  return e.signal ? `was killed by signal ${e.signal}` : `exited with code ${e.code}`;
}

/** Copies a child stream to `out`, line by line, each line prefixed; a last unterminated line is flushed at the end. */
function pipePrefixed(src: NodeJS.ReadableStream, out: Writable, prefix: string): Promise<void> {
  return new Promise((resolve) => {
    let rest = '';
    src.setEncoding('utf8');
    src.on('data', (chunk: string) => {
      const text = rest + chunk;
      const lines = text.split('\n');
      rest = lines.pop()!;
      if (lines.length) out.write(lines.map((l) => `${prefix}${l}\n`).join(''));
    });
    src.on('end', () => {
      if (rest) out.write(`${prefix}${rest}\n`);
      resolve();
    });
    src.on('error', () => resolve());
  });
}

/**
 * Spawns and supervises this node's ranks; resolves when all of them have exited. Never rejects for a rank's
 * failure: the result carries the exit code and the message (the CLI prints it and exits with the code).
 */
export async function launch(opts: LaunchOptions): Promise<LaunchResult> {
  const plan: LaunchPlan = {
    mode: 'launch',
    nprocPerNode: opts.nprocPerNode,
    nnodes: opts.nnodes ?? 1,
    nodeRank: opts.nodeRank ?? 0,
    masterAddr: opts.masterAddr ?? '127.0.0.1',
    masterPort: opts.masterPort ?? 29500,
  };
  if (!Number.isInteger(plan.nprocPerNode) || plan.nprocPerNode < 1) throw new RangeError(`nprocPerNode must be a positive integer, got ${plan.nprocPerNode}`);
  if (!Number.isInteger(plan.nnodes) || plan.nnodes < 1) throw new RangeError(`nnodes must be a positive integer, got ${plan.nnodes}`);
  if (!Number.isInteger(plan.nodeRank) || plan.nodeRank < 0 || plan.nodeRank >= plan.nnodes) throw new RangeError(`nodeRank must be an integer in [0, ${plan.nnodes}), got ${plan.nodeRank}`);
  if (!Number.isInteger(plan.masterPort) || plan.masterPort < 1 || plan.masterPort > 65535) throw new RangeError(`masterPort must be an integer in [1, 65535], got ${plan.masterPort}`);
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const baseEnv = opts.env ?? process.env;
  const entry = opts.entry ?? { command: process.execPath, args: [...process.execArgv, process.argv[1]!] };
  const rankArgs = stripLaunchFlags(opts.argv);
  const threads = Math.max(1, Math.floor((opts.cores ?? availableParallelism()) / plan.nprocPerNode));

  const children: { child: ChildProcess; rank: number; localRank: number; exited: boolean }[] = [];
  const exits: RankExit[] = [];
  let failed: RankExit | null = null;
  let interrupted = false;
  let sigints = 0;
  let killTimer: NodeJS.Timeout | undefined;

  const signalGroup = (c: ChildProcess, sig: NodeJS.Signals): void => {
    if (c.pid === undefined) return;
    try {
      process.kill(-c.pid, sig);  // the rank's whole process group
    } catch {
      try { c.kill(sig); } catch { /* already gone */ }
    }
  };
  const stopAll = (sig: NodeJS.Signals): void => {
    for (const c of children) if (!c.exited) signalGroup(c.child, sig);
    if (!killTimer) {
      killTimer = setTimeout(() => {
        for (const c of children) if (!c.exited) signalGroup(c.child, 'SIGKILL');
      }, graceMs);
      killTimer.unref();
    }
  };

  const onSigint = (): void => {
    interrupted = true;
    sigints++;
    if (sigints === 1) {
      stderr.write('[launcher] interrupt: every rank stops after its current step and saves a checkpoint (Ctrl-C again to stop at once)\n');
      for (const c of children) if (!c.exited) signalGroup(c.child, 'SIGINT');
    } else {
      for (const c of children) if (!c.exited) signalGroup(c.child, 'SIGINT');
      stopAll('SIGTERM');
    }
  };
  const onSigterm = (): void => {
    interrupted = true;
    stopAll('SIGTERM');
  };
  const forward = opts.forwardSignals ?? true;
  if (forward) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
  }

  const done: Promise<void>[] = [];
  try {
    for (let localRank = 0; localRank < plan.nprocPerNode; localRank++) {
      const renv = rankEnvironment(plan, localRank);
      const rank = Number(renv.RANK);
      const env: NodeJS.ProcessEnv = {
        ...baseEnv,
        ...renv,
        VG_LAUNCHER_PID: String(process.pid),
        ...(baseEnv.VG_NUM_THREADS ? {} : { VG_NUM_THREADS: String(threads) }),
      };
      const child = spawn(entry.command, [...entry.args, ...rankArgs], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const rec = { child, rank, localRank, exited: false };
      children.push(rec);
      const prefix = `[rank ${rank}] `;
      const outDone = pipePrefixed(child.stdout!, stdout, prefix);
      const errDone = pipePrefixed(child.stderr!, stderr, prefix);
      done.push(new Promise<void>((resolve) => {
        let spawnError: Error | null = null;
        child.on('error', (err) => { spawnError = err; });
        child.on('close', (code, signal) => {
          rec.exited = true;
          void Promise.all([outDone, errDone]).then(() => {
            const e: RankExit = { rank, localRank, pid: child.pid ?? -1, code: spawnError && code === null && signal === null ? 127 : code, signal };
            exits.push(e);
            const ok = e.code === 0 || (interrupted && e.code === EXIT_INTERRUPTED);
            if (!ok && !failed && !(interrupted && e.signal !== null)) {
              failed = e;
              if (spawnError) stderr.write(`[launcher] cannot start rank ${rank}: ${(spawnError as Error).message}\n`);
              stopAll('SIGTERM');
            }
            resolve();
          });
        });
      }));
    }
    await Promise.all(done);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    if (forward) {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    }
  }
  exits.sort((a, b) => a.localRank - b.localRank);
  const f = failed as RankExit | null;
  if (f) {
    const code = f.code !== null && f.code > 0 ? f.code : f.signal ? 128 + signalNumber(f.signal) : 1;
    const remote = plan.nnodes > 1 ? ' If its output above reports a collective timeout, a rank on another node failed first: look at that node\'s launcher.' : '';
    const message = `vlm-grpo: rank ${f.rank} (pid ${f.pid}, local rank ${f.localRank} on node ${plan.nodeRank}) ${describeExit(f)}; `
      + `${plan.nprocPerNode > 1 ? 'the other ranks of this node were stopped.' : 'the job stopped.'}${remote}\n`
      + `  → Fix the cause shown in rank ${f.rank}'s output, then run the same command with --resume: it continues from the latest complete checkpoint.`;
    return { exitCode: code, ranks: exits, failed: f, message, interrupted };
  }
  if (interrupted) {
    const all = exits.every((e) => e.code === 0 || e.code === EXIT_INTERRUPTED);
    const message = all
      ? 'vlm-grpo: interrupted; every rank saved its part of the checkpoint.\n  → Run the same command with --resume to continue.'
      : 'vlm-grpo: interrupted; the ranks were stopped before they could save a checkpoint.\n  → Run the same command with --resume to continue from the latest complete checkpoint.';
    return { exitCode: EXIT_INTERRUPTED, ranks: exits, failed: null, message, interrupted };
  }
  return { exitCode: 0, ranks: exits, failed: null, message: null, interrupted };
}

/**
 * In a rank started by our launcher: exit when the launcher is gone (killed with SIGKILL, so it could not stop us),
 * instead of training on alone. Checks once a second; the timer does not keep the process alive.
 */
export function watchLauncher(env: NodeJS.ProcessEnv = process.env, onGone: () => void = () => {
  process.stderr.write('vlm-grpo: the launcher process is gone; this rank stops.\n');
  process.exit(1);
}): () => void {
  const pid = Number(env.VG_LAUNCHER_PID);
  if (!Number.isInteger(pid) || pid <= 0) return () => {};
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return process.ppid === pid;
    } catch {
      return false;
    }
  };
  const t = setInterval(() => { if (!alive()) onGone(); }, 1000);
  t.unref();
  return () => clearInterval(t);
}
