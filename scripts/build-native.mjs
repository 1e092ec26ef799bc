#!/usr/bin/env node
// Builds the native addon (build/Release/vlm_grpo.node) and the native test executable with cmake-js.
// Runs on `npm install`; `npm run build:native` runs it again. Environment knobs, passed to CMake:
//   VG_BLAS=AUTO|ON|OFF  VG_CUDA=AUTO|ON|OFF  VG_SANITIZE=address  VG_BUILD_TYPE=Release|Debug  VG_JOBS=N
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function fail(msg) {
  console.error(`\nvlm-grpo: native build failed: ${msg}`);
  console.error('Fix the cause above, then run: npm run build:native');
  process.exit(1);
}

const cmake = spawnSync('cmake', ['--version'], { encoding: 'utf8' });
if (cmake.error || cmake.status !== 0) {
  fail('cmake was not found. Install CMake >= 3.20 and a C++17 compiler (Debian/Ubuntu: sudo apt-get install cmake g++).');
}

let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js');
} catch {
  fail('the cmake-js package is missing. Run npm install (or npm ci) in the package folder.');
}

const defines = [];
for (const key of ['VG_BLAS', 'VG_CUDA', 'VG_SANITIZE', 'VG_NATIVE_ARCH', 'CMAKE_CUDA_ARCHITECTURES']) {
  if (process.env[key] !== undefined) defines.push(`--CD${key}=${process.env[key]}`);
}
const buildType = process.env.VG_BUILD_TYPE ?? 'Release';
const jobs = process.env.VG_JOBS ?? String(Math.max(1, cpus().length));
const out = process.env.VG_BUILD_DIR ?? 'build';
const args = [cmakeJs, 'compile', '--out', out, '--config', buildType, '--parallel', jobs, ...defines];
if (buildType === 'Debug') args.push('--debug');
console.log(`vlm-grpo: building the native addon (${buildType}, ${jobs} jobs) in ${out}/`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) fail(`cmake-js exited with status ${r.status ?? r.signal}.`);
