import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { applyOverrides, ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { didYouMean } from '../../src/config/did-you-mean.js';

const minimal = { model: { path: 'm' }, data: { train: [{ path: 'd.jsonl' }] } };

describe('training configuration', () => {
  it('fills every default from a minimal config and resolves paths against the config folder', () => {
    const c = parseConfig(minimal, { baseDir: '/runs/x' });
    expect(c.model.path).toBe('/runs/x/m');
    expect(c.data.train[0]!.path).toBe('/runs/x/d.jsonl');
    expect(c.rollout.groupSize).toBe(8);
    expect(c.algorithm.clipLow).toBe(0.2);
    expect(c.algorithm.klCoef).toBe(0);
    expect(c.optim.schedule).toBe('constant');
    expect(c.rewards.map((r) => r.name)).toEqual(['accuracy', 'format']);
  });

  it('rejects unknown keys with a did-you-mean hint, at any depth', () => {
    expect(() => parseConfig({ ...minimal, rollout: { groupSise: 4 } })).toThrow(/unknown key 'rollout\.groupSise'\. Did you mean 'rollout\.groupSize'\?/);
    expect(() => parseConfig({ ...minimal, algoritm: {} })).toThrow(/Did you mean 'algorithm'/);
    expect(() => parseConfig({ ...minimal, rewards: [{ name: 'accuracy', wieght: 2 }] })).toThrow(/rewards\.0\.wieght.*Did you mean 'rewards\.0\.weight'/);
    expect(() => parseConfig({ ...minimal, zzzzzz: 1 })).toThrow(ConfigError);
  });

  it('names the field of an invalid value', () => {
    expect(() => parseConfig({ ...minimal, rollout: { groupSize: -1 } })).toThrow(/rollout\.groupSize/);
    expect(() => parseConfig({ ...minimal, algorithm: { lossAgg: 'mean' } })).toThrow(/algorithm\.lossAgg/);
    expect(() => parseConfig({ ...minimal, algorithm: { dualClip: 0.5 } })).toThrow(/algorithm\.dualClip/);
  });

  it('checks cross-field rules before any heavy work', () => {
    expect(() => parseConfig({ ...minimal, rollout: { groupSize: 1 } })).toThrow(/at least 2 completions/);
    expect(() => parseConfig({ ...minimal, algorithm: { advantage: 'rloo' } })).toThrow(/scaleRewards: none/);
    expect(() => parseConfig({ ...minimal, rollout: { maxNewTokens: 64, overlongBuffer: 64 } })).toThrow(/overlongBuffer/);
    expect(() => parseConfig({ ...minimal, train: { evalEvery: 5 } })).toThrow(/no validation data/);
    expect(() => parseConfig({ ...minimal, rewards: [{ name: 'custom' }] })).toThrow(/needs 'module'/);
    expect(() => parseConfig({ ...minimal, rewards: [{ name: 'accuracy', weight: 0 }] })).toThrow(/weight 0/);
  });

  it('applies --set overrides with YAML values, including array items', () => {
    const raw = applyOverrides(minimal as Record<string, unknown>, ['rollout.groupSize=16', 'algorithm.dualClip=3', 'data.train.0.imageFolder=imgs', 'rewards=[{name: iou, options: {threshold: 0.5}}]']);
    const c = parseConfig(raw, { baseDir: '/b' });
    expect(c.rollout.groupSize).toBe(16);
    expect(c.algorithm.dualClip).toBe(3);
    expect(c.data.train[0]!.imageFolder).toBe('/b/imgs');
    expect(c.rewards[0]).toMatchObject({ name: 'iou', options: { threshold: 0.5 } });
    expect(() => applyOverrides({}, ['nokey'])).toThrow(/key\.path=value/);
  });

  it('loads YAML files and reports syntax errors with the file name', () => {
    const d = mkdtempSync(join(tmpdir(), 'vg-cfg-'));
    writeFileSync(join(d, 'run.yaml'), 'model:\n  path: ./model\ndata:\n  train:\n    - path: train.jsonl\nrollout:\n  groupSize: 4\n');
    const c = loadConfig(join(d, 'run.yaml'), ['rollout.promptsPerStep=2']);
    expect(c.model.path).toBe(join(d, 'model'));
    expect(c.rollout).toMatchObject({ groupSize: 4, promptsPerStep: 2 });
    writeFileSync(join(d, 'bad.yaml'), 'model: [unclosed\n');
    expect(() => loadConfig(join(d, 'bad.yaml'))).toThrow(/bad\.yaml is not valid YAML/);
    expect(() => loadConfig(join(d, 'missing.yaml'))).toThrow(/cannot read config file/);
  });

  it('suggests the nearest name only when it is close', () => {
    expect(didYouMean('tempreature', ['temperature', 'topP'])).toBe('temperature');
    expect(didYouMean('qqqqq', ['temperature', 'topP'])).toBeUndefined();
  });
});
