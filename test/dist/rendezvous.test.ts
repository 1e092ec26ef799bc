// Rendezvous parsing: launcher flags and the torchrun-style rank environment become one validated object; every
// bad value is rejected with a message naming the variable or flag, the value and the fix.
import { describe, expect, it } from 'vitest';

import { parseRendezvous, rankEnvironment, RendezvousError, stripLaunchFlags } from '../../src/dist/rendezvous.js';

const rankEnv = (over: Record<string, string | undefined> = {}) => ({
  MASTER_ADDR: '10.1.2.3', MASTER_PORT: '29501', RANK: '2', WORLD_SIZE: '4', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '2', ...over,
});

function error(fn: () => unknown): RendezvousError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RendezvousError);
    return e as RendezvousError;
  }
  throw new Error('expected a RendezvousError');
}

describe('parseRendezvous', () => {
  it('no flags and no environment: a single process without a communicator', () => {
    expect(parseRendezvous({}, {})).toEqual({ mode: 'single' });
    expect(parseRendezvous({ nprocPerNode: '1', nnodes: '1' }, { PATH: '/bin' })).toEqual({ mode: 'single' });
    // WORLD_SIZE=1 is a single process too (no MASTER_* needed)
    expect(parseRendezvous({}, { RANK: '0', WORLD_SIZE: '1' })).toEqual({ mode: 'single' });
  });

  it('launcher flags with defaults', () => {
    expect(parseRendezvous({ nprocPerNode: '3' }, {})).toEqual({ mode: 'launch', nprocPerNode: 3, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500 });
    expect(parseRendezvous({ nprocPerNode: '2', nnodes: '2', nodeRank: '1', masterAddr: '10.0.0.1', masterPort: '1234' }, {}))
      .toEqual({ mode: 'launch', nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 1234 });
    // one process per node on two nodes is still a launch
    expect(parseRendezvous({ nnodes: '2', nodeRank: '0', masterAddr: 'node0.example' }, {}).mode).toBe('launch');
  });

  it('the rank environment', () => {
    expect(parseRendezvous({}, rankEnv())).toEqual({ mode: 'rank', rank: 2, worldSize: 4, localRank: 0, localWorldSize: 2, masterAddr: '10.1.2.3', masterPort: 29501 });
    // LOCAL_* default to a single node
    expect(parseRendezvous({}, rankEnv({ LOCAL_RANK: undefined, LOCAL_WORLD_SIZE: undefined, RANK: '3' }))).toMatchObject({ localRank: 3, localWorldSize: 4 });
  });

  it('rejects bad values naming the variable, the value and the fix', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => parseRendezvous({ nprocPerNode: '0' }, {}), /--nproc-per-node must be an integer in \[1, 1024\], got '0'/],
      [() => parseRendezvous({ nprocPerNode: 'two' }, {}), /--nproc-per-node .* got 'two'/],
      [() => parseRendezvous({ nprocPerNode: '2', masterPort: '70000' }, {}), /--master-port must be an integer in \[1, 65535\], got '70000'/],
      [() => parseRendezvous({ nnodes: '2', nodeRank: '2', masterAddr: '10.0.0.1' }, {}), /--node-rank must be an integer in \[0, 1\], got '2'/],
      [() => parseRendezvous({ nnodes: '2', nodeRank: '1' }, {}), /--nnodes 2 with --master-addr 127\.0\.0\.1: a loopback address/],
      [() => parseRendezvous({ nprocPerNode: '2', masterAddr: 'http://x:80' }, {}), /--master-addr must be a host name or IP address, got 'http:\/\/x:80'/],
      [() => parseRendezvous({ nodeRank: '1' }, {}), /--node-rank/],
      [() => parseRendezvous({}, rankEnv({ RANK: '4' })), /RANK must be an integer in \[0, 3\], got '4'/],
      [() => parseRendezvous({}, rankEnv({ RANK: '-1' })), /RANK must be an integer .* got '-1'/],
      [() => parseRendezvous({}, rankEnv({ WORLD_SIZE: '0' })), /WORLD_SIZE must be an integer/],
      [() => parseRendezvous({}, rankEnv({ WORLD_SIZE: undefined })), /RANK is set in the environment but WORLD_SIZE is not/],
      [() => parseRendezvous({}, rankEnv({ RANK: undefined })), /WORLD_SIZE is set in the environment but RANK is not/],
      [() => parseRendezvous({}, rankEnv({ MASTER_ADDR: undefined })), /WORLD_SIZE=4 but MASTER_ADDR is not set/],
      [() => parseRendezvous({}, rankEnv({ MASTER_ADDR: undefined, MASTER_PORT: '' })), /MASTER_ADDR and MASTER_PORT are not set/],
      [() => parseRendezvous({}, rankEnv({ MASTER_PORT: 'x' })), /MASTER_PORT must be an integer in \[1, 65535\], got 'x'/],
      [() => parseRendezvous({}, rankEnv({ LOCAL_RANK: '2' })), /LOCAL_RANK must be an integer in \[0, 1\], got '2'/],
      [() => parseRendezvous({}, rankEnv({ LOCAL_WORLD_SIZE: '5' })), /LOCAL_WORLD_SIZE must be an integer in \[1, 4\]/],
      [() => parseRendezvous({ nprocPerNode: '2' }, rankEnv()), /RANK=2 \/ WORLD_SIZE=4 are set in the environment .* --nproc-per-node 2/],
    ];
    for (const [fn, re] of cases) {
      const e = error(fn);
      expect(e.message).toMatch(re);
      expect(e.code).toBe('ERR_RENDEZVOUS');
      expect(e.remedy.length).toBeGreaterThan(10);
    }
  });
});

describe('rank environment and argv of the launched ranks', () => {
  it('numbers ranks node by node', () => {
    const plan = { mode: 'launch' as const, nprocPerNode: 3, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 2000 };
    expect([0, 1, 2].map((l) => rankEnvironment(plan, l).RANK)).toEqual(['3', '4', '5']);
    expect(rankEnvironment(plan, 2)).toEqual({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: '2000', RANK: '5', WORLD_SIZE: '6', LOCAL_RANK: '2', LOCAL_WORLD_SIZE: '3' });
    expect(() => rankEnvironment(plan, 3)).toThrow(/localRank must be an integer in \[0, 3\), got 3/);
    // and each rank's environment parses back to the same numbers
    expect(parseRendezvous({}, rankEnvironment(plan, 1))).toEqual({ mode: 'rank', rank: 4, worldSize: 6, localRank: 1, localWorldSize: 3, masterAddr: '10.0.0.1', masterPort: 2000 });
  });

  it('removes the launcher flags in both spellings and keeps the rest in order', () => {
    expect(stripLaunchFlags(['train', '--nproc-per-node', '2', '--config', 'a.yaml', '--master-port=1234', '--resume', '--nnodes=1', '--node-rank', '0', '--master-addr', 'h', '--set', 'x=1']))
      .toEqual(['train', '--config', 'a.yaml', '--resume', '--set', 'x=1']);
    expect(stripLaunchFlags(['train', '--', '--nnodes', '2'])).toEqual(['train', '--', '--nnodes', '2']);
  });
});
