// Runs the native core's C++ test executable (built with the addon by npm install / npm run build:native)
// once and reports each C++ test as its own vitest case.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { packageRoot } from '../src/native/binding.js';

const bin = join(packageRoot, 'build', 'native', 'vg_native_tests');

describe('native core C++ tests', () => {
  it('the test executable was built', () => {
    expect(existsSync(bin), `${bin} is missing: run npm run build:native`).toBe(true);
  });
  if (!existsSync(bin)) return;

  const names = spawnSync(bin, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const results = new Map<string, string>();
  let output = '';

  beforeAll(() => {
    const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
    output = `${r.stdout}${r.stderr}`;
    for (const line of r.stdout.split('\n')) {
      const m = /^(ok  |FAIL) (\S+?)(?::| \()(.*)$/.exec(line);
      if (m) results.set(m[2]!, line);
    }
  });

  it('lists its tests', () => {
    expect(names.length).toBeGreaterThan(0);
  });

  for (const name of names) {
    it(name, () => {
      const line = results.get(name);
      expect(line, `no result for ${name}; runner output:\n${output.slice(-4000)}`).toBeDefined();
      expect(line!.startsWith('ok'), line).toBe(true);
    });
  }
});
