import { describe, expect, it } from 'vitest';

import * as root from '../../src/index.js';
import { MetricsLog, RolloutLog, countReflections, writeHtmlReport } from '../../src/report/index.js';

describe('package root', () => {
  it('re-exports the report surface', () => {
    expect(root.MetricsLog).toBe(MetricsLog);
    expect(root.RolloutLog).toBe(RolloutLog);
    expect(root.writeHtmlReport).toBe(writeHtmlReport);
    expect(root.countReflections).toBe(countReflections);
    expect(typeof root.report.ProgressReporter).toBe('function');
    expect(new root.ReportError('ERR_REPORT_CLOSED', 'm', 'r')).toBeInstanceOf(root.VlmGrpoError);
  });
});
