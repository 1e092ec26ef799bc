/**
 * Errors for run logs and reports (metrics.jsonl, rollouts/*.parquet, report.html).
 *
 * A ReportError is a VlmGrpoError with a stable `code` and a remedy sentence (DESIGN.md convention 7). Bad
 * arguments from the trainer (a metrics object with a wrong field) are TypeError/RangeError naming the field.
 */
import { VlmGrpoError } from '../errors.js';

export type ReportErrorCode =
  | 'ERR_REPORT_NO_RUN_DIR'
  | 'ERR_REPORT_NO_METRICS'
  | 'ERR_REPORT_CORRUPT_METRICS'
  | 'ERR_REPORT_BAD_ROLLOUTS'
  | 'ERR_REPORT_CLOSED';

export class ReportError extends VlmGrpoError {
  declare readonly code: ReportErrorCode;

  constructor(code: ReportErrorCode, message: string, remedy: string, options?: { cause?: unknown }) {
    super(code, message, remedy, options);
    this.name = 'ReportError';
  }
}
