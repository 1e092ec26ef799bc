#!/usr/bin/env node
// Builds and runs the native core's own C++ tests (no Node involved).
//   node scripts/native-tests.mjs                      uses build/native/vg_native_tests from npm run build:native
//   node scripts/native-tests.mjs --sanitize address   separate AddressSanitizer build in build-asan/, then runs it
// Extra arguments after `--` go to the test binary (test-name prefixes, --threads N).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const passThrough = dash >= 0 ? argv.slice(dash + 1) : [];
const own = dash >= 0 ? argv.slice(0, dash) : argv;
const sIdx = own.indexOf('--sanitize');
const sanitize = sIdx >= 0 ? own[sIdx + 1] : '';

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

let bin = join(root, 'build', 'native', 'vg_native_tests');
if (sanitize) {
  const dir = join(root, `build-${sanitize === 'address' ? 'asan' : sanitize}`);
  run('cmake', ['-S', 'native', '-B', dir, `-DVG_SANITIZE=${sanitize}`, '-DCMAKE_BUILD_TYPE=RelWithDebInfo', '-DVG_CUDA=OFF']);
  run('cmake', ['--build', dir, '-j', String(cpus().length), '--target', 'vg_native_tests']);
  bin = join(dir, 'vg_native_tests');
} else if (!existsSync(bin)) {
  console.error(`vlm-grpo: ${bin} is missing; build it with: npm run build:native`);
  process.exit(1);
}
// detect_leaks: LeakSanitizer is part of ASan on Linux; report every leak.
run(bin, passThrough, sanitize === 'address' ? { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' } : {});
