/**
 * npm run bench: every kernel benchmark, each printing ours and its baseline side by side.
 *   --quick   smaller sizes / fewer repeats (what CI-sized machines can afford)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../src/native/binding.js';

const quick = process.argv.includes('--quick');
const steps: { title: string; cmd: string; args: string[] }[] = [
  { title: 'GEMM vs raw OpenBLAS sgemm', cmd: join(packageRoot, 'build', 'vg_gemm_bench'), args: quick ? ['--quick'] : [] },
  { title: 'Attention: flash-style vs naive (time, peak memory)', cmd: process.execPath, args: ['--import', 'tsx', join(packageRoot, 'benchmarks', 'attention.ts'), ...(quick ? ['--quick'] : [])] },
  { title: 'Log-prob gather: chunked vs full logits (peak memory)', cmd: process.execPath, args: ['--import', 'tsx', join(packageRoot, 'benchmarks', 'logprob-memory.ts'), ...(quick ? ['--quick'] : [])] },
];

let failed = 0;
for (const s of steps) {
  console.log(`\n=== ${s.title} ===`);
  const target = s.cmd === process.execPath ? s.args[2]! : s.cmd;
  if (!existsSync(target)) {
    console.log(`missing ${target} (run npm run build:native first)`);
    failed++;
    continue;
  }
  const r = spawnSync(s.cmd, s.args, { stdio: 'inherit', cwd: packageRoot });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
