/**
 * How a range of n values is split across ranks for ZeRO sharding: contiguous shards whose sizes differ by at most
 * one, the first ranks larger. Matches native/dist/communicator.h shard_counts and native/dist/zero.h shard_range.
 */

function checkInt(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${typeof v}`);
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Shard sizes of n values over `world` ranks (length `world`, sum n). */
export function shardCounts(n: number, world: number): number[] {
  checkInt('n', n, 0);
  checkInt('world', world, 1);
  const base = Math.floor(n / world);
  const extra = n % world;
  return Array.from({ length: world }, (_, r) => base + (r < extra ? 1 : 0));
}

/** [begin, end) of `rank`'s shard of n values over `world` ranks. */
export function shardRange(n: number, world: number, rank: number): { begin: number; end: number } {
  const counts = shardCounts(n, world);
  checkInt('rank', rank, 0);
  if (rank >= world) throw new RangeError(`rank must be in [0, world=${world}), got ${rank}`);
  let begin = 0;
  for (let r = 0; r < rank; r++) begin += counts[r] ?? 0;
  return { begin, end: begin + (counts[rank] ?? 0) };
}
