/** Adapts the dataset (src/data) to the trainer's PromptSource, and builds it from the training config. */
import type { TrainConfig } from '../config/schema.js';
import { loadPromptDatasets, type PromptDataset, type PromptDatasets } from '../data/dataset.js';
import type { DatasetState } from '../data/dataset.js';
import type { PreparedPrompt as DataPrompt } from '../data/prepare.js';
import type { VlmModel } from '../model/vlm-model.js';
import type { PreparedPrompt, PromptSource } from './types.js';

/** The trainer's view of a prepared dataset row. */
export function toTrainerPrompt(p: DataPrompt): PreparedPrompt {
  const row = p.row;
  return {
    id: row.id,
    input: {
      inputIds: p.input.inputIds,
      pixelValues: p.input.pixelValues,
      imageGridThw: p.input.imageGridThw,
      ...(p.input.videoGridThw?.length
        ? { pixelValuesVideos: p.input.pixelValuesVideos!, videoGridThw: p.input.videoGridThw, secondPerGridTs: p.input.secondPerGridTs! }
        : {}),
    },
    text: p.text,
    groundTruth: row.groundTruth,
    // Reward functions see the row's other columns plus the per-row method and data source.
    row: { ...row.extra, ...(row.rewardMethod ? { reward_method: row.rewardMethod } : {}), ...(row.dataSource ? { data_source: row.dataSource } : {}) },
    images: p.images,
    imagePaths: row.images.flatMap((im) => ('path' in im ? [im.path] : [])),
  };
}

export class DatasetPromptSource implements PromptSource {
  constructor(readonly dataset: PromptDataset) {}
  async next(n: number): Promise<PreparedPrompt[]> {
    return (await this.dataset.next(n)).map(toTrainerPrompt);
  }
  cursor(): unknown {
    return this.dataset.state();
  }
  restore(cursor: unknown): void {
    this.dataset.restore(cursor as DatasetState);
  }
  metrics(): Record<string, number> {
    return this.dataset.metrics();
  }
}

/** Loads the train (and validation) datasets the config names, prepared for `model`. */
export async function loadConfiguredDatasets(cfg: Pick<TrainConfig, 'data' | 'train'>, model: VlmModel, log: (line: string) => void): Promise<PromptDatasets> {
  const src = (d: TrainConfig['data']['train'][number]) => ({ path: d.path, format: d.format, ...(d.imageFolder ? { imageFolder: d.imageFolder } : {}) });
  return loadPromptDatasets({
    sources: cfg.data.train.map(src),
    ...(cfg.data.validation.length ? { validationSources: cfg.data.validation.map(src) } : { validationRatio: cfg.data.validationSplit }),
    promptTemplate: cfg.data.promptTemplate,
    systemPrompt: cfg.data.systemPrompt,
    minPixels: cfg.data.minPixels,
    maxPixels: cfg.data.maxPixels,
    maxPromptLength: cfg.data.maxPromptLength,
    ...(cfg.data.video ? { video: cfg.data.video } : {}),
    seed: cfg.train.seed,
    shuffle: cfg.data.shuffle,
    maxBadFraction: cfg.data.maxBadFraction,
  }, { processor: model, log });
}
