// The public surface named in the issues, from the source and from the built package (exports map → dist/).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import * as api from '../src/index.js';
import { packageRoot } from '../src/native/binding.js';

describe('public API', () => {
  it('exposes the documented names', () => {
    expect(typeof api.loadModel).toBe('function');
    expect(typeof api.GrpoTrainer).toBe('function');
    expect(typeof api.preprocessImage).toBe('function');
    expect(typeof api.kernels.grpoLoss).toBe('function');
    expect(typeof api.kernels.attention).toBe('function');
    expect(typeof api.buildInfo).toBe('function');
    for (const name of ['accuracy', 'format', 'iou']) expect(typeof api.rewardFunctions[name as keyof typeof api.rewardFunctions]).toBe('function');
  });

  it('the package resolves through its exports map to the built JavaScript', () => {
    if (!existsSync(join(packageRoot, 'dist', 'index.js'))) {
      expect.fail('dist/ is missing: npm install (prepare) or npm run build:ts builds it');
    }
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('vlm-grpo'); console.log(typeof m.loadModel, typeof m.kernels.grpoLoss, m.buildInfo().version)"], { cwd: packageRoot, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^function function \d+\.\d+\.\d+/);
  });
});
