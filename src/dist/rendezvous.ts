/**
 * Rendezvous settings, torchrun style, parsed in one place. Two sources meet here:
 *  - the launcher flags of `vlm-grpo train` (--nproc-per-node, --nnodes, --node-rank, --master-addr, --master-port),
 *    which make the command spawn and supervise the local ranks;
 *  - the environment of a rank process (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE),
 *    set by our launcher, by torchrun, or by hand (one `RANK=r WORLD_SIZE=n ... vlm-grpo train` per rank).
 * The result is one validated object: a plain single process (no communicator at all), a launcher, or a rank.
 * Every error names the variable or flag, the value and the fix.
 */
import { isIP } from 'node:net';

import { VlmGrpoError } from '../errors.js';

export class RendezvousError extends VlmGrpoError {
  constructor(message: string, remedy: string) {
    super('ERR_RENDEZVOUS', message, remedy);
    this.name = 'RendezvousError';
  }
}

export const DEFAULT_MASTER_ADDR = '127.0.0.1';
export const DEFAULT_MASTER_PORT = 29500;

/** This process is the whole job: no communicator. */
export interface SingleProcess { mode: 'single' }

/** This process spawns `nprocPerNode` ranks of a job of `nnodes × nprocPerNode` ranks and supervises them. */
export interface LaunchPlan {
  mode: 'launch';
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
}

/** This process is one rank of a multi-process job. */
export interface RankInfo {
  mode: 'rank';
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

export type Rendezvous = SingleProcess | LaunchPlan | RankInfo;

/** The launcher flags as strings (what node:util parseArgs returns); absent = not given. */
export interface LaunchFlags {
  nprocPerNode?: string | undefined;
  nnodes?: string | undefined;
  nodeRank?: string | undefined;
  masterAddr?: string | undefined;
  masterPort?: string | undefined;
}

/** The flag names, as spelled on the command line (also used to strip them from a rank's argv). */
export const LAUNCH_FLAG_NAMES = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'] as const;

/** The environment variables of a rank process. */
export const RANK_ENV_NAMES = ['MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE'] as const;

function intValue(text: string, what: string, min: number, max: number, fix: string): number {
  const t = text.trim();
  const n = /^[+]?\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new RendezvousError(`${what} must be an integer in [${min}, ${max}], got '${text}'.`, fix);
  }
  return n;
}

function hostValue(text: string, what: string): string {
  const t = text.trim();
  // A host name or an IPv4/IPv6 address; no scheme, no port, no spaces.
  if (!t || /[\s/]/.test(t) || (!isIP(t) && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(t))) {
    throw new RendezvousError(`${what} must be a host name or IP address, got '${text}'.`,
      `Give the address of the node running rank 0, e.g. ${what.startsWith('--') ? '--master-addr 10.0.0.1' : 'MASTER_ADDR=10.0.0.1'} (the port goes in ${what.startsWith('--') ? '--master-port' : 'MASTER_PORT'}).`);
  }
  return t;
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopback(addr: string): boolean {
  return addr === 'localhost' || addr === '::1' || /^127\./.test(addr);
}

/**
 * Parses the launcher flags and the rank environment into one Rendezvous.
 *  - RANK or WORLD_SIZE in the environment: this is a rank process (WORLD_SIZE 1 = single process).
 *  - --nproc-per-node > 1 or --nnodes > 1: launcher.
 *  - otherwise: single process.
 * Setting both (a rank environment and launcher flags asking for more than one process) is an error.
 */
export function parseRendezvous(flags: LaunchFlags = {}, env: NodeJS.ProcessEnv = process.env): Rendezvous {
  const has = (k: string): boolean => env[k] !== undefined && env[k] !== '';
  const launchAsked = (flags.nprocPerNode !== undefined && flags.nprocPerNode.trim() !== '1') || (flags.nnodes !== undefined && flags.nnodes.trim() !== '1');
  if (has('RANK') || has('WORLD_SIZE')) {
    if (launchAsked) {
      throw new RendezvousError(
        `RANK=${env.RANK ?? '(unset)'} / WORLD_SIZE=${env.WORLD_SIZE ?? '(unset)'} are set in the environment (this process is one rank), but the launcher flags --nproc-per-node ${flags.nprocPerNode ?? 1} --nnodes ${flags.nnodes ?? 1} ask to start ranks.`,
        'Either unset RANK and WORLD_SIZE and let `vlm-grpo train --nproc-per-node N` start the ranks, or drop the launcher flags when you start each rank yourself.');
    }
    return parseRankEnv(env);
  }
  if (!launchAsked) {
    // Single process; still validate what was given so a typo does not pass silently.
    if (flags.nodeRank !== undefined) intValue(flags.nodeRank, '--node-rank', 0, 0, '--node-rank only applies with --nnodes > 1.');
    if (flags.masterAddr !== undefined) hostValue(flags.masterAddr, '--master-addr');
    if (flags.masterPort !== undefined) intValue(flags.masterPort, '--master-port', 1, 65535, 'Use a free TCP port, e.g. --master-port 29500.');
    return { mode: 'single' };
  }
  const nprocPerNode = intValue(flags.nprocPerNode ?? '1', '--nproc-per-node', 1, 1024, 'Give the number of ranks (processes) to start on this node, e.g. --nproc-per-node 2.');
  const nnodes = intValue(flags.nnodes ?? '1', '--nnodes', 1, 65536, 'Give the number of nodes (machines) of the job, e.g. --nnodes 2.');
  const nodeRank = intValue(flags.nodeRank ?? '0', '--node-rank', 0, nnodes - 1,
    `Number the nodes 0..${nnodes - 1} (node 0 hosts rank 0 and the rendezvous), one distinct --node-rank per node.`);
  const masterAddr = hostValue(flags.masterAddr ?? DEFAULT_MASTER_ADDR, '--master-addr');
  const masterPort = intValue(flags.masterPort ?? String(DEFAULT_MASTER_PORT), '--master-port', 1, 65535, 'Use a free TCP port, e.g. --master-port 29500.');
  if (nnodes > 1 && isLoopback(masterAddr)) {
    throw new RendezvousError(`--nnodes ${nnodes} with --master-addr ${masterAddr}: a loopback address cannot be reached from the other nodes.`,
      'Pass --master-addr with the address of node 0 that every node can reach (the same value on every node).');
  }
  return { mode: 'launch', nprocPerNode, nnodes, nodeRank, masterAddr, masterPort };
}

/** Parses the environment of a rank process (RANK and WORLD_SIZE set). */
function parseRankEnv(env: NodeJS.ProcessEnv): SingleProcess | RankInfo {
  const get = (k: string): string | undefined => (env[k] === undefined || env[k] === '' ? undefined : env[k]);
  const rankText = get('RANK'), worldText = get('WORLD_SIZE');
  if (rankText === undefined || worldText === undefined) {
    const [set, unset] = rankText === undefined ? ['WORLD_SIZE', 'RANK'] : ['RANK', 'WORLD_SIZE'];
    throw new RendezvousError(`${set} is set in the environment but ${unset} is not.`,
      `Set both RANK (0..WORLD_SIZE-1, one per process) and WORLD_SIZE (the number of processes), or neither for a single process.`);
  }
  const worldSize = intValue(worldText, 'WORLD_SIZE', 1, 1 << 20, 'Set WORLD_SIZE to the total number of ranks (processes) of the job.');
  const rank = intValue(rankText, 'RANK', 0, worldSize - 1, `Give each process a distinct RANK in 0..${worldSize - 1}.`);
  const localWorldText = get('LOCAL_WORLD_SIZE');
  const localWorldSize = localWorldText === undefined ? worldSize
    : intValue(localWorldText, 'LOCAL_WORLD_SIZE', 1, worldSize, `Set LOCAL_WORLD_SIZE to the number of ranks on this node (at most WORLD_SIZE=${worldSize}).`);
  const localRankText = get('LOCAL_RANK');
  const localRank = localRankText === undefined ? rank % localWorldSize
    : intValue(localRankText, 'LOCAL_RANK', 0, localWorldSize - 1, `Give each process of this node a distinct LOCAL_RANK in 0..${localWorldSize - 1}.`);
  if (worldSize === 1) return { mode: 'single' };
  const addrText = get('MASTER_ADDR'), portText = get('MASTER_PORT');
  if (addrText === undefined || portText === undefined) {
    const missing = [addrText === undefined ? 'MASTER_ADDR' : '', portText === undefined ? 'MASTER_PORT' : ''].filter(Boolean).join(' and ');
    throw new RendezvousError(`WORLD_SIZE=${worldSize} but ${missing} ${missing.includes(' and ') ? 'are' : 'is'} not set, so the ranks cannot find each other.`,
      'Set MASTER_ADDR (the address of the node running rank 0) and MASTER_PORT (a free TCP port) identically for every rank, or start the job with `vlm-grpo train --nproc-per-node N`, which sets them.');
  }
  const masterAddr = hostValue(addrText, 'MASTER_ADDR');
  const masterPort = intValue(portText, 'MASTER_PORT', 1, 65535, 'Set MASTER_PORT to a free TCP port on the node running rank 0, e.g. 29500.');
  return { mode: 'rank', rank, worldSize, localRank, localWorldSize, masterAddr, masterPort };
}

/** The environment our launcher gives local rank `localRank` of node `plan.nodeRank`. */
export function rankEnvironment(plan: LaunchPlan, localRank: number): Record<(typeof RANK_ENV_NAMES)[number], string> {
  if (!Number.isInteger(localRank) || localRank < 0 || localRank >= plan.nprocPerNode) {
    throw new RangeError(`localRank must be an integer in [0, ${plan.nprocPerNode}), got ${localRank}`);
  }
  return {
    MASTER_ADDR: plan.masterAddr,
    MASTER_PORT: String(plan.masterPort),
    RANK: String(plan.nodeRank * plan.nprocPerNode + localRank),
    WORLD_SIZE: String(plan.nnodes * plan.nprocPerNode),
    LOCAL_RANK: String(localRank),
    LOCAL_WORLD_SIZE: String(plan.nprocPerNode),
  };
}

/**
 * argv without the launcher flags (`--flag value` and `--flag=value` forms), so a rank runs the same command as
 * an ordinary trainer. Other arguments keep their order.
 */
export function stripLaunchFlags(argv: readonly string[]): string[] {
  const names = new Set(LAUNCH_FLAG_NAMES.map((n) => `--${n}`));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const eq = a.indexOf('=');
    if (names.has(eq > 0 ? a.slice(0, eq) : a)) {
      if (eq < 0) i++;  // skip the value
      continue;
    }
    out.push(a);
  }
  return out;
}
