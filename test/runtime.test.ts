import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { buildInfo, cudaInfo, getNumThreads, setNumThreads } from '../src/index.js';
import { packageRoot } from '../src/native/binding.js';

describe('build and runtime info', () => {
  it('reports what was built', () => {
    const b = buildInfo();
    expect(b.version).toMatch(/\d+\.\d+\.\d+/);
    expect(b.blas.length).toBeGreaterThan(0);
    expect(typeof b.cudaCompiled).toBe('boolean');
    if (b.blasAvailable) expect(b.blas).toMatch(/OpenBLAS/);
  });

  it('probes CUDA without throwing and says why the GPU is unusable', () => {
    const c = cudaInfo();
    expect(typeof c.status).toBe('string');
    if (!c.kernelOk) expect(c.status).toMatch(/CPU/);
  });

  it('sets the kernel thread count and rejects bad values', () => {
    const before = getNumThreads();
    expect(setNumThreads(1)).toBe(1);
    expect(getNumThreads()).toBe(1);
    setNumThreads(before);
    expect(() => setNumThreads(-1)).toThrow(RangeError);
  });
});

describe('CLI', () => {
  const cli = join(packageRoot, 'src', 'cli', 'main.ts');
  const tsx = ['--import', 'tsx', cli];

  it('doctor prints the machine and the native build', () => {
    const r = spawnSync(process.execPath, [...tsx, 'doctor'], { encoding: 'utf8', cwd: packageRoot });
    expect(r.status, r.stderr).toBe(0);
    for (const key of ['Node', 'OS', 'CPU features', 'Threads', 'BLAS', 'CUDA compiler', 'GPU status', 'Addon variant'])
      expect(r.stdout).toContain(key);
  });

  it('a missing addon is reported with the command that fixes it', () => {
    const r = spawnSync(process.execPath, [...tsx, 'doctor'], {
      encoding: 'utf8', cwd: packageRoot, env: { ...process.env, VLM_GRPO_ADDON: '/nonexistent/vlm_grpo.node' },
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/not built|failed to load/);
    expect(r.stdout).toContain('npm run build:native');
  });

  it('unknown commands fail with a hint', () => {
    const r = spawnSync(process.execPath, [...tsx, 'trian'], { encoding: 'utf8', cwd: packageRoot });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--help');
  });
});
