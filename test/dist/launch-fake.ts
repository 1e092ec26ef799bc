// Runs the launcher over fake-rank.mjs in its own process, so a test can send it SIGINT / SIGKILL like a user would.
// Prints the launch result as one JSON line prefixed RESULT.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch } from '../../src/dist/launcher.js';

const here = dirname(fileURLToPath(import.meta.url));
const nproc = Number(process.argv[2] ?? 2);
const res = await launch({
  nprocPerNode: nproc, masterPort: 29999, argv: process.argv.slice(3), graceMs: 1500,
  entry: { command: process.execPath, args: ['--import', import.meta.resolve('tsx'), join(here, 'fake-rank.ts')] },
});
if (res.message) console.error(res.message);
console.log(`RESULT ${JSON.stringify({ exitCode: res.exitCode, ranks: res.ranks, interrupted: res.interrupted })}`);
process.exit(res.exitCode);
