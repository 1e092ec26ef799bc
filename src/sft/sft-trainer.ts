/**
 * SftTrainer: supervised fine-tuning on the same data formats, e.g. the warm start before GRPO. Each row's target
 * completion is `sft.answerTemplate` with the ground truth filled in (plus the end-of-turn token); the loss is the
 * token-mean cross-entropy over the completion tokens of the step's batch. Full fine-tuning or LoRA, the same
 * optimizer, schedules, checkpoints and resume as GRPO, and the work runs on the model's native thread.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { parseSftConfig } from '../config/load.js';
import type { SftConfig, SftConfigInput } from '../config/schema.js';
import { setNumThreads } from '../native/runtime.js';
import { loadModel, type VlmModel } from '../model/vlm-model.js';
import { groundTruthText } from '../rewards/answer.js';
import { DatasetPromptSource, loadConfiguredDatasets } from '../rl/dataset-source.js';
import { AdamW } from '../rl/optimizer.js';
import { prepareTrainable, restoreTrainingCheckpoint, saveTrainingCheckpoint } from '../rl/trainable.js';
import type { PreparedPrompt, PromptSource } from '../rl/types.js';

export interface SftStepMetrics {
  step: number;
  /** Mean negative log-likelihood per completion token. */
  loss: number;
  tokens: number;
  gradNorm: number;
  lr: number;
  seconds: number;
}

export interface SftEvents {
  step: [SftStepMetrics];
  checkpoint: [{ step: number; dir: string }];
  log: [string];
}

export interface SftOptions {
  prompts?: PromptSource;
  model?: VlmModel;
  baseDir?: string;
}

interface Example {
  input: PreparedPrompt['input'];
  inputIds: Int32Array;
  targets: Int32Array;
  promptLen: number;
  answerLen: number;
}

export class SftTrainer extends EventEmitter<SftEvents> {
  readonly config: SftConfig;
  readonly #opts: SftOptions;
  #model: VlmModel | undefined;
  #optimizer: AdamW | undefined;
  #prompts: PromptSource | undefined;
  #step = 0;

  constructor(config: SftConfig | SftConfigInput, options: SftOptions = {}) {
    super();
    this.config = parseSftConfig(config, { source: 'sft config', ...(options.baseDir ? { baseDir: options.baseDir } : {}) });
    this.#opts = options;
  }

  get step(): number {
    return this.#step;
  }

  #example(p: PreparedPrompt): Example {
    const m = this.#model!;
    const c = this.config.sft;
    const text = fillAnswerTemplate(c.answerTemplate, groundTruthText(p.groundTruth), p.row, p.id);
    const answer = m.tokenizer.encode(text);
    if (c.appendEos) answer.push(m.tokenizer.specialTokens.imEnd);
    const promptIds = p.input.inputIds;
    const inputIds = new Int32Array(promptIds.length + answer.length);
    inputIds.set(promptIds);
    inputIds.set(answer, promptIds.length);
    const targets = new Int32Array(inputIds.length).fill(-1);
    for (let j = 0; j < answer.length; j++) targets[promptIds.length - 1 + j] = answer[j]!;
    return { input: p.input, inputIds, targets, promptLen: promptIds.length, answerLen: answer.length };
  }

  async #trainStep(): Promise<SftStepMetrics> {
    const c = this.config;
    const model = this.#model!;
    const t0 = performance.now();
    const examples = (await this.#prompts!.next(c.sft.batchSize)).map((p) => this.#example(p));
    const tokens = examples.reduce((a, e) => a + e.answerLen, 0);
    model.zeroGrads();
    let nll = 0;
    for (let i = 0; i < examples.length; i += c.optim.microBatchSize) {
      const mb = examples.slice(i, i + c.optim.microBatchSize);
      const outs = await model.forwardBatch(mb.map((e) => ({ ...e.input, inputIds: e.inputIds, targets: e.targets })), {
        keepForBackward: true, recompute: c.model.gradientCheckpointing,
      });
      let total = 0;
      for (const e of mb) total += e.inputIds.length;
      const grad = new Float32Array(total);
      let off = 0;
      mb.forEach((e, k) => {
        const lp = outs[k]!.logprobs!;
        for (let j = 0; j < e.answerLen; j++) {
          nll -= lp[e.promptLen - 1 + j]!;
          grad[off + e.promptLen - 1 + j] = -1 / tokens;  // d(token-mean NLL)/d logprob
        }
        off += e.inputIds.length;
      });
      await model.backward({ gradLogprobs: grad, trainVision: !c.model.freezeVision });
    }
    const step = await this.#optimizer!.apply();
    this.#step++;
    return { step: this.#step, loss: nll / Math.max(1, tokens), tokens, gradNorm: step.gradNorm, lr: step.lr, seconds: (performance.now() - t0) / 1000 };
  }

  async #checkpoint(): Promise<string> {
    const c = this.config;
    const dir = await saveTrainingCheckpoint({
      runDir: c.train.outDir, step: this.#step, modelDir: c.model.path, model: this.#model!, optimizer: this.#optimizer!,
      prompts: this.#prompts!, lora: c.model.lora.enabled, exportDtype: c.train.exportDtype, keepLast: c.train.keepLast,
      state: { kind: 'sft', config: c },
    });
    this.emit('checkpoint', { step: this.#step, dir });
    return dir;
  }

  /** Trains for train.steps optimizer steps; an abort saves a checkpoint and resolves. */
  async train(opts: { signal?: AbortSignal; resume?: boolean } = {}): Promise<{ steps: number; stoppedEarly: boolean; lastCheckpoint: string }> {
    const c = this.config;
    if (c.model.threads > 0) setNumThreads(c.model.threads);
    this.#model = this.#opts.model ?? (await loadModel(c.model.path, { device: c.model.device }));
    try {
      const range = await prepareTrainable(this.#model, c.model, c.train.seed);
      this.#optimizer = new AdamW(this.#model, range, { ...c.optim, totalSteps: c.optim.scheduleSteps ?? c.train.steps });
      this.#prompts = this.#opts.prompts ?? new DatasetPromptSource((await loadConfiguredDatasets(c, this.#model, (l) => this.emit('log', l))).train);
      mkdirSync(c.train.outDir, { recursive: true });
      writeFileSync(join(c.train.outDir, 'sft-config.json'), JSON.stringify(c, null, 2));
      if (opts.resume) {
        const r = restoreTrainingCheckpoint(c.train.outDir, this.#model, this.#optimizer, this.#prompts, c.model.lora.enabled);
        if (r) {
          this.#step = r.step;
          this.emit('log', `resumed from ${r.dir} (step ${r.step})`);
        }
      }
      let stoppedEarly = false;
      while (this.#step < c.train.steps) {
        if (opts.signal?.aborted) {
          stoppedEarly = true;
          break;
        }
        const m = await this.#trainStep();
        this.emit('step', m);
        if (c.train.saveEvery > 0 && this.#step % c.train.saveEvery === 0 && this.#step < c.train.steps) await this.#checkpoint();
      }
      const lastCheckpoint = await this.#checkpoint();
      return { steps: this.#step, stoppedEarly, lastCheckpoint };
    } finally {
      if (!this.#opts.model) await this.#model.dispose();
    }
  }
}

/**
 * The SFT target: `{answer}` becomes the ground truth, `{row.COLUMN}` a column of the data row (so a template can
 * restate, say, what the question asks about). A missing column is an error naming the row and the column.
 */
export function fillAnswerTemplate(template: string, answer: string, row: Record<string, unknown> | undefined, rowId: string): string {
  return template.split('{answer}').join(answer).replace(/\{row\.([A-Za-z0-9_]+)\}/g, (_, col: string) => {
    const v = row?.[col];
    if (v === undefined || v === null) throw new RangeError(`sft.answerTemplate uses {row.${col}} but row ${rowId} has no "${col}" column; add it to the data or change the template`);
    return String(v);
  });
}
