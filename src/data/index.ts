/** Dataset loading for the GRPO trainer: VLM-R1 / verl / R1-V rows as Arrow tables, prompt templates, prepared model inputs. */
export { PromptDataset, loadPromptDatasets } from './dataset.js';
export type { DatasetCursor, DatasetState, LoadSummary, PromptDatasets, LoadPromptDatasetsContext, PromptDatasetSettings } from './dataset.js';
export { promptDatasetOptionsSchema, resolveDatasetOptions } from './options.js';
export type { PromptDatasetOptions, ResolvedDatasetOptions } from './options.js';
export { loadSource } from './sources.js';
export type { DataSource, LoadedSource } from './sources.js';
export { preparePrompt, resolvePreprocessor } from './prepare.js';
export type { PromptProcessor, PrepareOptions, PreparedPrompt, PrepareResult } from './prepare.js';
export { PROMPT_TEMPLATES, PROMPT_TEMPLATE_NAMES, resolvePromptTemplate, applyPromptTemplate } from './prompt-template.js';
export type { PromptTemplate, PromptTemplateName } from './prompt-template.js';
export { detectFormat } from './detect.js';
export { readParquet, parquetRowCount } from './parquet.js';
export { readJsonl, readJsonArray } from './jsonl.js';
export type { RawItem } from './jsonl.js';
export { rowsToTable, readRow, readRows, sliceTable, concatTables } from './table.js';
export { permutation } from './shuffle.js';
export { DataError, SkipLog, formatSource } from './errors.js';
export { IMAGE_PLACEHOLDER } from './formats/common.js';
export { DATASET_FORMATS, SKIP_REASONS } from './types.js';
export type {
  PromptRow,
  RowSource,
  RowMessage,
  RowContentPart,
  RowTextPart,
  RowImagePart,
  RowImage,
  DatasetFormat,
  SkipReason,
  SkippedRow,
} from './types.js';
