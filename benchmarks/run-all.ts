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

// Whole model vs PyTorch: needs Debian's python3-torch under /usr/bin/python3; skipped with the reason otherwise.
const torchProbe = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy'], { encoding: 'utf8' });
if (torchProbe.status === 0) {
  steps.push({ title: 'Model: training step and KV-cached generation vs PyTorch', cmd: process.execPath, args: ['--import', 'tsx', join(packageRoot, 'benchmarks', 'model-vs-torch.ts'), ...(quick ? ['--quick'] : [])] });
} else {
  const why = torchProbe.error ? torchProbe.error.message : (torchProbe.stderr.trim().split('\n').pop() ?? `exit ${torchProbe.status}`);
  console.log(`\n=== Model vs PyTorch ===\nskipped: /usr/bin/python3 cannot import torch (${why}); install Debian's python3-torch and libopenblas0-pthread`);
}

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
