/**
 * Run logs and reports: per-step metrics (RUN_DIR/metrics.jsonl), every rollout as Parquet
 * (RUN_DIR/rollouts/step-NNNNNN.parquet), reflection-phrase counters, console progress, and the self-contained
 * HTML report (RUN_DIR/report.html). Each file's header describes its format and where it follows the peers.
 */
export {
  fracZeroStdGroups,
  flattenStepMetrics,
  lengthStats,
  stepMetricsSchema,
  summarize,
  summarizeRewards,
  validateStepMetrics,
  type ClipFractions,
  type LengthStats,
  type StepMetrics,
  type StepRewards,
  type StepSeconds,
  type StepTokens,
  type Summary,
  type ZeroStdOptions,
} from './step-metrics.js';
export { formatMetricsLine, METRICS_FILE, MetricsLog, type MetricsLogOptions, type ReadMetricsOptions } from './metrics-log.js';
export {
  makeThumbnail,
  ROLLOUTS_DIR,
  RolloutLog,
  rolloutStepPath,
  type ReadRolloutsOptions,
  type ReadStepOptions,
  type RolloutInput,
  type RolloutLogOptions,
  type RolloutRecord,
  type ThumbnailOptions,
} from './rollout-log.js';
export {
  countReflections,
  DEFAULT_REFLECTION_PHRASES,
  reflectionStats,
  type ReflectionCounts,
  type ReflectionStats,
} from './reflection.js';
export { formatDuration, ProgressReporter, type ProgressOptions, type ProgressStream, type ProgressUpdate } from './progress.js';
export {
  buildCharts,
  escapeHtml,
  formatNumber,
  lineChartSvg,
  niceTicks,
  writeHtmlReport,
  type ChartSeries,
  type ChartSpec,
  type HtmlReportOptions,
} from './html-report.js';
export { ReportError, type ReportErrorCode } from './errors.js';
export {
  attachWandb,
  decodeJsonWithNonFinite,
  DEFAULT_WANDB_BASE_URL,
  encodeJsonWithNonFinite,
  newRunId,
  syncWandbOffline,
  wandbConfigValue,
  WandbError,
  wandbMetrics,
  type WandbErrorCode,
  type WandbOfflineRun,
  type WandbOptions,
  type WandbRun,
  type WandbStats,
  type WandbStepSource,
} from './wandb.js';
