// A stand-in for a rank process in the launcher tests: reports its environment and argv, then behaves as told by
// its arguments: --crash-rank R (rank R exits with --code after --after ms), --ignore-term (survive SIGTERM),
// --signal-self (rank R kills itself with SIGKILL). Other ranks run until stopped and count the signals they get.
// Like a real rank, it stops when its launcher is gone (watchLauncher).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { watchLauncher } from '../../src/dist/launcher.js';

watchLauncher();
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] ?? def : def;
};
const rank = Number(process.env.RANK);
console.log(JSON.stringify({
  rank, pid: process.pid, world: Number(process.env.WORLD_SIZE), localRank: Number(process.env.LOCAL_RANK), localWorld: Number(process.env.LOCAL_WORLD_SIZE),
  addr: process.env.MASTER_ADDR, port: Number(process.env.MASTER_PORT), threads: process.env.VG_NUM_THREADS,
  launcher: Number(process.env.VG_LAUNCHER_PID), argv: args,
}));
// A line written in two pieces and an unterminated last line must still come out whole and prefixed.
process.stdout.write(`part one of rank ${rank}, `);
setTimeout(() => process.stdout.write(`part two of rank ${rank}\n`), 20);
console.error(`stderr line of rank ${rank}`);
let sigints = 0;
process.on('SIGINT', () => {
  sigints++;
  console.log(`rank ${rank} got SIGINT #${sigints}`);
  setTimeout(() => process.exit(130), 100);
});
process.on('SIGTERM', () => {
  if (args.includes('--ignore-term')) {
    console.log(`rank ${rank} ignores SIGTERM`);
    return;
  }
  process.exit(143);
});
// --ready-dir D: every rank marks D/rank-R once its handlers are installed, and the crashing rank waits for all of
// them, so a slow-starting rank cannot miss the SIGTERM it is meant to ignore.
const readyDir = opt('ready-dir', '');
if (readyDir) writeFileSync(join(readyDir, `rank-${rank}`), '');
const allReady = (): boolean => !readyDir || Array.from({ length: Number(process.env.WORLD_SIZE) }, (_, r) => existsSync(join(readyDir, `rank-${r}`))).every(Boolean);
const crashRank = Number(opt('crash-rank', '-1'));
const after = Number(opt('after', '200'));
const whenReady = (fn: () => void): void => {
  if (allReady()) setTimeout(fn, after);
  else setTimeout(() => whenReady(fn), 20);
};
if (rank === crashRank) {
  whenReady(() => {
    if (args.includes('--signal-self')) process.kill(process.pid, 'SIGKILL');
    process.stdout.write(`rank ${rank} crashes now`);  // no newline: flushed on exit
    process.exit(Number(opt('code', '3')));
  });
} else if (args.includes('--succeed')) {
  setTimeout(() => process.exit(0), after);
} else {
  setInterval(() => {}, 1000);
}
