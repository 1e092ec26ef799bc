/**
 * The demo's claim, measured: run the whole demo (data, warm start, GRPO, evaluation) for 3 seeds and print the
 * accuracy table, plus the honest baseline R1-V compared against: continued SFT from the same warm start for the
 * same wall time GRPO took. Writes benchmarks/out/demo-seeds/<seed>/ (one demo run folder per seed) and
 * benchmarks/out/demo-seeds/summary.json.
 *
 *   node --import tsx benchmarks/demo-seeds.ts [--seeds 1,2,3] [--out DIR] [--no-sft-baseline] [--reuse]
 *
 * Takes about 3 × (demo time + GRPO time) on a 2-core machine (≈ 30 minutes on an otherwise idle one).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { runDemo, type DemoAccuracy } from '../src/demo/run-demo.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' },
    out: { type: 'string', default: 'benchmarks/out/demo-seeds' },
    'no-sft-baseline': { type: 'boolean', default: false },
    // Reuse a seed's finished GRPO run (its results.json) instead of running it again.
    reuse: { type: 'boolean', default: false },
  },
});
const seeds = values.seeds!.split(',').map((s) => Number(s.trim()));
if (seeds.some((s) => !Number.isSafeInteger(s) || s < 0)) throw new RangeError(`--seeds must be comma-separated non-negative integers, got ${values.seeds}`);
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });

interface Row { seed: number; seconds: number; start: DemoAccuracy; grpo: DemoAccuracy; sft?: DemoAccuracy; grpoSeconds: number }
const rows: Row[] = [];
for (const seed of seeds) {
  const dir = join(out, String(seed));
  const log = (l: string): void => console.error(`[seed ${seed}] ${l}`);
  const done = join(dir, 'grpo-run', 'results.json');
  const r = values.reuse && existsSync(done)
    ? (JSON.parse(readFileSync(done, 'utf8')) as Awaited<ReturnType<typeof runDemo>>)
    : await runDemo({ outDir: join(dir, 'grpo-run'), seed, log });
  const grpoSeconds = r.phases.grpo ?? 0;
  const row: Row = { seed, seconds: r.seconds, start: r.start, grpo: r.grpo, grpoSeconds };
  if (!values['no-sft-baseline']) {
    // Same start (the warm start the GRPO run used), same wall time, more supervised steps instead of GRPO.
    const b = await runDemo({ outDir: join(dir, 'sft-run'), seed, log, warmStart: r.startDir, continuedSftSeconds: grpoSeconds });
    row.sft = b.grpo;
  }
  rows.push(row);
  console.error(`[seed ${seed}] done: ${JSON.stringify(row)}`);
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const mean = (f: (r: Row) => number | undefined): number => {
  const xs = rows.map(f).filter((x): x is number => x !== undefined);
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
};
const line = (name: string, id: (r: Row) => number | undefined, ood: (r: Row) => number | undefined): string =>
  `| ${name.padEnd(34)} | ${rows.map((r) => `${(id(r) === undefined ? '–' : pct(id(r)!)).padStart(6)} / ${(ood(r) === undefined ? '–' : pct(ood(r)!)).padStart(6)}`).join(' | ')} | ${pct(mean(id)).padStart(6)} / ${pct(mean(ood)).padStart(6)} |`;
const header = `| ${'model (accuracy: in-dist / OOD)'.padEnd(34)} | ${rows.map((r) => `seed ${r.seed}`.padEnd(15)).join(' | ')} | ${'mean'.padEnd(15)} |`;
const table = [
  header,
  header.replace(/[^|]/g, '-'),
  line('start (SFT warm start)', (r) => r.start.inDistribution, (r) => r.start.outOfDistribution),
  line('after GRPO', (r) => r.grpo.inDistribution, (r) => r.grpo.outOfDistribution),
  ...(values['no-sft-baseline'] ? [] : [line('continued SFT, same wall time', (r) => r.sft?.inDistribution, (r) => r.sft?.outOfDistribution)]),
].join('\n');
const gain = { inDistribution: mean((r) => r.grpo.inDistribution - r.start.inDistribution), outOfDistribution: mean((r) => r.grpo.outOfDistribution - r.start.outOfDistribution) };
console.log(table);
console.log(`\nGRPO minus start (mean over seeds): in-distribution ${(gain.inDistribution * 100).toFixed(1)} points, out-of-distribution ${(gain.outOfDistribution * 100).toFixed(1)} points`);
console.log(`demo wall time per seed: ${rows.map((r) => `${r.seconds.toFixed(0)} s`).join(', ')}`);
writeFileSync(join(out, 'summary.json'), JSON.stringify({ rows, gain, table }, null, 2));
