/**
 * Weights & Biases logging: one W&B run per training run, the configuration at the start, one history row per
 * optimizer step, and the run marked finished at the end. Config: `logging.wandb` (config/schema.ts).
 *
 * Peers (peers.md (a) "Logger backends", (f)): TRL/R1-V/VLM-R1 log through HF `report_to="wandb"`, verl/EasyR1
 * through `tracking.py`; all use the Python SDK. The npm package `@wandb/sdk` (0.5.1, 2023) was inspected and is
 * not usable here: a failed upload is "retried" by awaiting the same settled promise (the row is lost), its offline
 * mode discards rows instead of writing them, it installs SIGINT/SIGTERM handlers that call process.exit (which
 * would kill our Ctrl-C checkpoint), and it prompts for a login when no key is set. So this file talks to the W&B
 * HTTP API directly, as the SDKs do:
 * - run creation: POST `${baseUrl}/graphql` with the `UpsertBucket` mutation (name = run id, displayName, project,
 *   entity, groupName, tags, config as a JSON string of `{ key: { value, desc: null } }`, host, program,
 *   jobType "train");
 * - history: POST `${baseUrl}/files/${entity}/${project}/${id}/file_stream` with
 *   `{ files: { "wandb-history.jsonl": { offset, content: [row, …] }, "wandb-summary.json": { offset: 0,
 *   content: [summary] } } }`, where offset counts the history lines already accepted and each row is one JSON
 *   object with the metric keys plus `_step`, `_runtime` (seconds since start) and `_timestamp` (Unix seconds);
 * - finish: the same endpoint with `{ complete: true, exitcode }`.
 * Authentication: HTTP Basic `api:<WANDB_API_KEY>`. Server: `baseUrl` option, else WANDB_BASE_URL, else
 * https://api.wandb.ai. WANDB_MODE (online/offline/disabled) overrides the configured mode, as in the Python SDK.
 *
 * Rows: StepMetrics flattened to "a/b/c" keys like flattenStepMetrics (reward/mean, rewards/accuracy/mean,
 * completionLength/mean, kl, entropy, clipFrac/low, seconds/generation, reflection/counts/wait, …); the
 * `extra` map is logged under its own keys (eval/accuracy, reward_errors/llm, update/ratio_mean, …); `step` becomes
 * `_step`; nulls (not measured) are left out; NaN and ±Infinity are written as the bare tokens NaN / Infinity /
 * -Infinity, which the W&B backend accepts (Python's json.dumps writes the same). SFT steps log loss, tokens,
 * gradNorm, lr, seconds the same way.
 *
 * Failures never stop training: run creation and uploads happen in the background; a failed request is retried
 * with exponential backoff (1 s doubling to 60 s) while rows queue in memory (at most `maxQueuedRows`, default
 * 10000, the oldest dropped first and counted); the first problem prints ONE warning (later ones go to onLog); an
 * HTTP 4xx other than 408/429 (bad key, no access) stops uploading for the run (rows counted as dropped).
 * attachWandb waits for the first attempt to create the run (at most `requestTimeoutMs`, default 30 s) so the run
 * URL is printed before training, never for retries. `finish()` lets a request in flight end, keeps trying for at
 * most `finishTimeoutMs` (default 30 s), then counts what is left as dropped. Every row is also in
 * RUN_DIR/metrics.jsonl whatever happens here. Distributed runs: attach on rank 0 only (cli/train.ts does).
 *
 * Offline mode writes, for a later `syncWandbOffline(dir)` (which replays the same requests as online mode):
 *   RUN_DIR/wandb/offline-run-YYYYMMDD_HHMMSS-<id>/run.json     {"format":"vlm-grpo-wandb-offline","version":1,
 *       "id","project","entity","name","group","tags","config" (the raw config object),"host","program",
 *       "startedAt" (ISO time),"finishedAt" and "exitCode" (after finish, else null),"rows"} — rewritten atomically
 *       at start and at finish;
 *   RUN_DIR/wandb/offline-run-YYYYMMDD_HHMMSS-<id>/history.jsonl  one line per step, byte for byte the row that
 *       online mode streams to wandb-history.jsonl (appended and flushed per step).
 * This is our own layout: the Python `wandb sync` reads only its protobuf `.wandb` files, not these.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

import type { WandbConfigInput } from '../config/schema.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { VlmGrpoError } from '../errors.js';

export const DEFAULT_WANDB_BASE_URL = 'https://api.wandb.ai';

export type WandbErrorCode = 'ERR_WANDB_CONFIG' | 'ERR_WANDB_NO_KEY' | 'ERR_WANDB_OFFLINE' | 'ERR_WANDB_SYNC';

/** Misconfiguration found before training (no key, no project) or a failed explicit sync; never a failed upload. */
export class WandbError extends VlmGrpoError {
  declare readonly code: WandbErrorCode;

  constructor(code: WandbErrorCode, message: string, remedy: string, options?: { cause?: unknown }) {
    super(code, message, remedy, options);
    this.name = 'WandbError';
  }
}

/** Anything that emits 'step' events with metric objects: GrpoTrainer (StepMetrics) and SftTrainer (SftStepMetrics). */
export interface WandbStepSource {
  readonly config: object;
  on(event: 'step', listener: (metrics: object) => void): unknown;
  off(event: 'step', listener: (metrics: object) => void): unknown;
}

export interface WandbOptions extends WandbConfigInput {
  /** Run folder (offline files go to RUN_DIR/wandb/); default: the trainer's config.train.outDir. */
  runDir?: string;
  /** Environment read for WANDB_API_KEY, WANDB_BASE_URL, WANDB_MODE (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The one warning about failed uploads, and the finish summary when rows were dropped (default console.warn). */
  onWarning?: (message: string) => void;
  /** Informational lines: where the run is (default: nothing). */
  onLog?: (message: string) => void;
  /** HTTP client (default the global fetch). */
  fetch?: typeof fetch;
  /** One request's time limit, ms (default 30000). */
  requestTimeoutMs?: number;
  /** First retry delay, ms (default 1000; doubles per failure up to maxBackoffMs, default 60000). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Rows kept while the server is unreachable (default 10000); older ones are dropped and counted. */
  maxQueuedRows?: number;
  /** How long finish() keeps trying to upload what is queued, ms (default 30000). */
  finishTimeoutMs?: number;
}

export interface WandbStats {
  /** Rows logged (one per step). */
  rows: number;
  /** Rows the server accepted (online) or written to history.jsonl (offline). */
  uploaded: number;
  /** Rows that will never be uploaded (queue overflow, a fatal HTTP error, or left at finish). */
  dropped: number;
  /** Rows waiting to be uploaded. */
  pending: number;
  /** Failed requests. */
  failures: number;
}

/** A W&B run attached to a trainer. finish() is idempotent. */
export interface WandbRun {
  readonly mode: 'online' | 'offline' | 'disabled';
  /** The W&B run id (8 characters [a-z0-9]); '' when disabled. */
  readonly id: string;
  /** The run page (online, once created), else null. */
  url(): string | null;
  /** The offline folder, else null. */
  readonly dir: string | null;
  stats(): WandbStats;
  /** Stops listening, uploads what is queued (bounded by finishTimeoutMs) and marks the run finished. */
  finish(options?: { exitCode?: number }): Promise<void>;
}

/** A new run id: 8 characters from [a-z0-9], like the Python SDK's. */
export function newRunId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(8), (b) => alphabet[b % 36]).join('');
}

const NON_FINITE = /"\\u0000(NaN|Infinity|-Infinity)\\u0000"/g;

/** JSON with NaN / Infinity / -Infinity as bare tokens (what the W&B backend and Python's json.dumps use). */
export function encodeJsonWithNonFinite(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'number' && !Number.isFinite(v) ? `\u0000${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'}\u0000` : v,
  ).replace(NON_FINITE, '$1');
}

/** JSON.parse that also accepts the bare NaN / Infinity / -Infinity tokens encodeJsonWithNonFinite writes. */
export function decodeJsonWithNonFinite(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = text.startsWith('NaN', i) ? 'NaN' : text.startsWith('Infinity', i) ? 'Infinity' : text.startsWith('-Infinity', i) ? '-Infinity' : null;
    if (token) {
      out += `"\\u0000${token}\\u0000"`;
      i += token.length - 1;
    } else out += c;
  }
  return JSON.parse(out, (_k, v: unknown) =>
    typeof v === 'string' && v.length > 2 && v.startsWith('\u0000') && v.endsWith('\u0000') ? Number(v.slice(1, -1)) : v,
  );
}

/**
 * One history row's metric keys from a step's metrics: numbers at nested paths joined with '/', `extra` entries
 * under their own keys, nulls and non-numbers left out, `step` and `time` removed (they become _step/_timestamp).
 */
export function wandbMetrics(metrics: object): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (prefix: string, v: unknown): void => {
    if (typeof v === 'number') out[prefix] = v;
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) walk(prefix ? `${prefix}/${k}` : k, child);
    }
  };
  for (const [k, v] of Object.entries(metrics as Record<string, unknown>)) {
    if (k === 'step' || k === 'time') continue;
    walk(k === 'extra' ? '' : k, v);
  }
  return out;
}

/** `{ key: { value, desc: null } }`, the config format W&B runs store. */
export function wandbConfigValue(config: object): Record<string, { value: unknown; desc: null }> {
  return Object.fromEntries(Object.entries(config as Record<string, unknown>).map(([k, v]) => [k, { value: v, desc: null }]));
}

const UPSERT_BUCKET = `mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, $groupName: String, $description: String, $displayName: String, $notes: String, $commit: String, $config: JSONString, $host: String, $debug: Boolean, $program: String, $repo: String, $jobType: String, $state: String, $sweep: String, $tags: [String!], $summaryMetrics: JSONString) {
  upsertBucket(input: { id: $id, name: $name, groupName: $groupName, modelName: $project, entityName: $entity, description: $description, displayName: $displayName, notes: $notes, config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program, jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, summaryMetrics: $summaryMetrics }) {
    bucket { id name displayName project { id name entity { id name } } }
    inserted
  }
}`;

/** An HTTP failure; `fatal` when retrying cannot help (4xx other than 408/429). */
class HttpFailure extends Error {
  constructor(message: string, readonly fatal: boolean) {
    super(message);
  }
}

interface RunInfo {
  id: string;
  project: string;
  entity?: string | undefined;
  name?: string | undefined;
  group?: string | undefined;
  tags: string[];
  config: object;
}

/** The W&B HTTP client: run creation, history streaming and finishing, without retries (callers retry). */
class WandbApi {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly fetchFn: typeof fetch,
    private readonly timeoutMs: number,
  ) {}

  private async post(path: string, body: string): Promise<unknown> {
    const url = `${this.baseUrl}${path}`;
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Basic ${Buffer.from(`api:${this.apiKey}`).toString('base64')}`,
          'user-agent': 'vlm-grpo',
        },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const e = err as Error;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new HttpFailure(`${url}: ${e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (cause?.code ?? cause?.message ?? e.message)}`, false);
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      throw new HttpFailure(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`.trim(), res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429);
    }
    try {
      return text ? (JSON.parse(text) as unknown) : {};
    } catch {
      throw new HttpFailure(`${url}: the answer is not JSON: ${text.slice(0, 200)}`, false);
    }
  }

  /** Creates (or updates) the run; returns the entity and project the server filed it under. */
  async upsertRun(run: RunInfo): Promise<{ entity: string; project: string }> {
    const variables: Record<string, unknown> = {
      name: run.id,
      project: run.project,
      config: JSON.stringify(wandbConfigValue(run.config)),
      host: hostname(),
      program: 'vlm-grpo',
      jobType: 'train',
      tags: run.tags,
    };
    if (run.entity) variables['entity'] = run.entity;
    if (run.name) variables['displayName'] = run.name;
    if (run.group) variables['groupName'] = run.group;
    const res = (await this.post('/graphql', JSON.stringify({ query: UPSERT_BUCKET, variables }))) as {
      data?: { upsertBucket?: { bucket?: { project?: { name?: string; entity?: { name?: string } } } } };
      errors?: Array<{ message?: string }>;
    };
    if (res.errors?.length) throw new HttpFailure(`W&B refused to create the run: ${res.errors.map((e) => e.message).join('; ')}`, true);
    const project = res.data?.upsertBucket?.bucket?.project;
    const entity = project?.entity?.name ?? run.entity;
    if (!entity) throw new HttpFailure('W&B did not say which entity the run belongs to; set logging.wandb.entity.', true);
    return { entity, project: project?.name ?? run.project };
  }

  streamPath(entity: string, project: string, id: string): string {
    return `/files/${encodeURIComponent(entity)}/${encodeURIComponent(project)}/${encodeURIComponent(id)}/file_stream`;
  }

  async sendHistory(path: string, offset: number, lines: readonly string[], summary: string): Promise<void> {
    await this.post(path, JSON.stringify({
      files: {
        'wandb-history.jsonl': { offset, content: lines },
        'wandb-summary.json': { offset: 0, content: [summary] },
      },
    }));
  }

  async complete(path: string, exitCode: number): Promise<void> {
    await this.post(path, JSON.stringify({ complete: true, exitcode: exitCode }));
  }
}

/** A delay that keeps the process alive (finish() and sync must not be cut short by an idle event loop). */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Online mode: a background uploader with a bounded queue and exponential backoff. */
class OnlineUploader {
  readonly #api: WandbApi;
  readonly #run: RunInfo;
  readonly #warn: (m: string) => void;
  readonly #log: (m: string) => void;
  readonly #appUrl: string;
  readonly #maxQueued: number;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  #path: string | null = null;
  #url: string | null = null;
  #queue: string[] = [];
  /** Rows of the request in flight (back to the front of the queue if it fails). */
  #inflight: string[] = [];
  #summary: Record<string, number> = {};
  #offset = 0;
  #backoff: number;
  #timer: NodeJS.Timeout | null = null;
  #pumping: Promise<void> | null = null;
  #fatal = false;
  #warned = false;
  #finishing = false;
  stats: WandbStats = { rows: 0, uploaded: 0, dropped: 0, pending: 0, failures: 0 };

  constructor(api: WandbApi, run: RunInfo, baseUrl: string, o: Required<Pick<WandbOptions, 'maxQueuedRows' | 'initialBackoffMs' | 'maxBackoffMs'>>, warn: (m: string) => void, log: (m: string) => void) {
    this.#api = api;
    this.#run = run;
    this.#warn = warn;
    this.#log = log;
    this.#appUrl = baseUrl.replace('://api.', '://');
    this.#maxQueued = o.maxQueuedRows;
    this.#initialBackoff = o.initialBackoffMs;
    this.#maxBackoff = o.maxBackoffMs;
    this.#backoff = o.initialBackoffMs;
  }

  url(): string | null {
    return this.#url;
  }

  /** One attempt to create the run and upload what is queued; never throws. Returns whether it all went through. */
  async #attempt(): Promise<boolean> {
    try {
      if (this.#path === null) {
        const where = await this.#api.upsertRun(this.#run);
        this.#path = this.#api.streamPath(where.entity, where.project, this.#run.id);
        this.#url = `${this.#appUrl}/${encodeURIComponent(where.entity)}/${encodeURIComponent(where.project)}/runs/${this.#run.id}`;
        this.#log(`W&B run: ${this.#url}`);
      }
      while (this.#queue.length > 0) {
        this.#inflight = this.#queue.splice(0, 1000);
        await this.#api.sendHistory(this.#path, this.#offset, this.#inflight, encodeJsonWithNonFinite(this.#summary));
        this.#offset += this.#inflight.length;
        this.stats.uploaded += this.#inflight.length;
        this.#inflight = [];
      }
      this.#backoff = this.#initialBackoff;
      return true;
    } catch (err) {
      this.#queue = [...this.#inflight, ...this.#queue];
      this.#inflight = [];
      this.#trim();
      this.stats.failures++;
      const e = err as Error;
      if (err instanceof HttpFailure && err.fatal) {
        this.#fatal = true;
        this.stats.dropped += this.#queue.length;
        this.#queue = [];
        this.#warnOnce(`W&B: ${e.message}. Uploading stopped for this run; training continues (RUN_DIR/metrics.jsonl has every step).`);
        return false;
      }
      this.#warnOnce(`W&B: ${e.message}. Training continues; retrying with backoff (up to ${this.#maxQueued} rows are kept meanwhile; RUN_DIR/metrics.jsonl has every step).`);
      return false;
    }
  }

  /** The first problem is a warning; later ones are log lines (one warning per run, not one per step). */
  #warnOnce(message: string): void {
    if (this.#warned) this.#log(message);
    else {
      this.#warned = true;
      this.#warn(message);
    }
  }

  /** Drops the oldest queued rows beyond maxQueuedRows (rows in flight stay). */
  #trim(): void {
    const excess = this.#queue.length + this.#inflight.length - this.#maxQueued;
    if (excess > 0) {
      const n = Math.min(excess, this.#queue.length);
      this.#queue.splice(0, n);
      this.stats.dropped += n;
    }
  }

  #kick(): void {
    if (this.#pumping || this.#timer || this.#fatal || this.#finishing) return;
    this.#pumping = this.#attempt().then((ok) => {
      this.#pumping = null;
      if (this.#fatal || this.#finishing) return;
      if (!ok) {
        const wait = this.#backoff;
        this.#backoff = Math.min(this.#maxBackoff, this.#backoff * 2);
        this.#timer = setTimeout(() => {
          this.#timer = null;
          this.#kick();
        }, wait);
        this.#timer.unref();
      } else if (this.#queue.length > 0) this.#kick();
    });
  }

  start(): Promise<void> {
    this.#kick();
    return this.#pumping ?? Promise.resolve();
  }

  push(line: string, metrics: Record<string, number>): void {
    this.stats.rows++;
    if (this.#fatal) {
      this.stats.dropped++;
      return;
    }
    Object.assign(this.#summary, metrics);
    this.#queue.push(line);
    this.#trim();
    this.#kick();
  }

  async finish(exitCode: number, timeoutMs: number): Promise<void> {
    this.#finishing = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#pumping) await this.#pumping;
    const deadline = Date.now() + timeoutMs;
    let backoff = this.#initialBackoff;
    while (!this.#fatal && (this.#path === null || this.#queue.length > 0) && Date.now() < deadline) {
      if (await this.#attempt()) break;
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
      backoff = Math.min(this.#maxBackoff, backoff * 2);
    }
    if (!this.#fatal && this.#path !== null && this.#queue.length === 0) {
      try {
        await this.#api.complete(this.#path, exitCode);
      } catch (err) {
        this.stats.failures++;
        this.#warnOnce(`W&B: could not mark the run finished: ${(err as Error).message}`);
      }
    }
    if (this.#queue.length > 0) {
      this.stats.dropped += this.#queue.length;
      this.#warnOnce(`W&B: ${this.#queue.length} row(s) could not be uploaded before finishing (RUN_DIR/metrics.jsonl has them).`);
      this.#queue = [];
    }
  }

  pending(): number {
    return this.#queue.length + this.#inflight.length;
  }
}

function timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** The JSON of an offline run's run.json. */
export interface WandbOfflineRun {
  format: 'vlm-grpo-wandb-offline';
  version: 1;
  id: string;
  project: string;
  entity: string | null;
  name: string | null;
  group: string | null;
  tags: string[];
  config: object;
  host: string;
  program: 'vlm-grpo';
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  rows: number;
}

/**
 * Subscribes to a trainer's 'step' events and logs each step to W&B (see the top of this file). Call before
 * `train()`; call `finish()` after it (also on failure). Online mode with no WANDB_API_KEY throws a WandbError
 * (ERR_WANDB_NO_KEY) here, before any training; network failures never throw.
 */
export async function attachWandb(trainer: WandbStepSource, options: WandbOptions): Promise<WandbRun> {
  const env = options.env ?? process.env;
  const envMode = env['WANDB_MODE']?.trim().toLowerCase();
  const mode = envMode === 'online' || envMode === 'offline' || envMode === 'disabled' ? envMode : (options.mode ?? 'online');
  if (typeof options.project !== 'string' || options.project.trim() === '') {
    throw new WandbError('ERR_WANDB_CONFIG', 'logging.wandb.project must be a non-empty string.', 'Name the W&B project, e.g. logging: { wandb: { project: "vlm-grpo" } }.');
  }
  const warn = options.onWarning ?? ((m: string) => console.warn(`[vlm-grpo] ${m}`));
  const log = options.onLog ?? (() => {});
  if (mode === 'disabled') {
    return {
      mode, id: '', dir: null, url: () => null,
      stats: () => ({ rows: 0, uploaded: 0, dropped: 0, pending: 0, failures: 0 }),
      finish: async () => {},
    };
  }
  const config = trainer.config;
  const run: RunInfo = {
    id: newRunId(), project: options.project, entity: options.entity, name: options.name, group: options.group,
    tags: options.tags ?? [], config,
  };
  const started = Date.now();
  const row = (m: object): { line: string; metrics: Record<string, number> } => {
    const metrics = wandbMetrics(m);
    const step = (m as { step?: unknown }).step;
    const now = Date.now();
    const full: Record<string, number> = { ...metrics, _runtime: (now - started) / 1000, _timestamp: now / 1000 };
    if (typeof step === 'number') full['_step'] = step;
    return { line: encodeJsonWithNonFinite(full), metrics };
  };
  let finished: Promise<void> | null = null;

  if (mode === 'offline') {
    const runDir = options.runDir ?? (config as { train?: { outDir?: string } }).train?.outDir ?? process.cwd();
    const startedAt = new Date(started);
    const dir = join(runDir, 'wandb', `offline-run-${timestamp(startedAt)}-${run.id}`);
    mkdirSync(dir, { recursive: true });
    const meta: WandbOfflineRun = {
      format: 'vlm-grpo-wandb-offline', version: 1, id: run.id, project: run.project, entity: run.entity ?? null,
      name: run.name ?? null, group: run.group ?? null, tags: run.tags, config, host: hostname(), program: 'vlm-grpo',
      startedAt: startedAt.toISOString(), finishedAt: null, exitCode: null, rows: 0,
    };
    const history = join(dir, 'history.jsonl');
    writeFileAtomic(join(dir, 'run.json'), `${JSON.stringify(meta, null, 2)}\n`);
    writeFileAtomic(history, '');
    const stats: WandbStats = { rows: 0, uploaded: 0, dropped: 0, pending: 0, failures: 0 };
    let warned = false;
    const onStep = (m: object): void => {
      stats.rows++;
      try {
        appendFileSync(history, `${row(m).line}\n`);
        stats.uploaded++;
      } catch (err) {
        stats.dropped++;
        stats.failures++;
        if (!warned) {
          warned = true;
          warn(`W&B offline: could not write ${history}: ${(err as Error).message}. Training continues.`);
        }
      }
    };
    trainer.on('step', onStep);
    log(`W&B offline run: ${dir} (upload later with syncWandbOffline)`);
    return {
      mode, id: run.id, dir, url: () => null, stats: () => ({ ...stats }),
      finish: (o = {}) => (finished ??= (async () => {
        trainer.off('step', onStep);
        meta.finishedAt = new Date().toISOString();
        meta.exitCode = o.exitCode ?? 0;
        meta.rows = stats.uploaded;
        writeFileAtomic(join(dir, 'run.json'), `${JSON.stringify(meta, null, 2)}\n`);
      })()),
    };
  }

  const apiKey = env['WANDB_API_KEY']?.trim();
  if (!apiKey) {
    throw new WandbError(
      'ERR_WANDB_NO_KEY',
      'logging.wandb.mode is online but WANDB_API_KEY is not set.',
      'Export WANDB_API_KEY (from https://wandb.ai/authorize), or set logging.wandb.mode: offline and upload later.',
    );
  }
  const baseUrl = (options.baseUrl ?? (env['WANDB_BASE_URL']?.trim() || DEFAULT_WANDB_BASE_URL)).replace(/\/+$/, '');
  const api = new WandbApi(baseUrl, apiKey, options.fetch ?? fetch, options.requestTimeoutMs ?? 30_000);
  const up = new OnlineUploader(api, run, baseUrl, {
    maxQueuedRows: options.maxQueuedRows ?? 10_000,
    initialBackoffMs: options.initialBackoffMs ?? 1000,
    maxBackoffMs: options.maxBackoffMs ?? 60_000,
  }, warn, log);
  const onStep = (m: object): void => {
    const r = row(m);
    up.push(r.line, r.metrics);
  };
  trainer.on('step', onStep);
  // Wait for the first attempt to create the run (so its URL is printed before training), never for retries.
  await up.start();
  return {
    mode, id: run.id, dir: null, url: () => up.url(),
    stats: () => ({ ...up.stats, pending: up.pending() }),
    finish: (o = {}) => (finished ??= (async () => {
      trainer.off('step', onStep);
      await up.finish(o.exitCode ?? 0, options.finishTimeoutMs ?? 30_000);
    })()),
  };
}

/**
 * Uploads an offline run folder (RUN_DIR/wandb/offline-run-…) written by `mode: 'offline'`: creates the run with
 * the same id, streams history.jsonl in order and marks it finished with the recorded exit code. Retries each
 * request a few times, then throws a WandbError naming the failure. Re-running it re-sends the same lines at the
 * same offsets (the server overwrites them).
 */
export async function syncWandbOffline(
  dir: string,
  options: { env?: NodeJS.ProcessEnv; baseUrl?: string; fetch?: typeof fetch; requestTimeoutMs?: number; retries?: number; retryDelayMs?: number } = {},
): Promise<{ id: string; url: string; rows: number }> {
  const env = options.env ?? process.env;
  let meta: WandbOfflineRun;
  let lines: string[];
  try {
    meta = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as WandbOfflineRun;
    lines = readFileSync(join(dir, 'history.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  } catch (err) {
    throw new WandbError('ERR_WANDB_OFFLINE', `${dir} is not a readable offline W&B run: ${(err as Error).message}`, 'Pass a RUN_DIR/wandb/offline-run-… folder written with logging.wandb.mode: offline.');
  }
  if (meta.format !== 'vlm-grpo-wandb-offline') {
    throw new WandbError('ERR_WANDB_OFFLINE', `${dir}/run.json is not a vlm-grpo offline W&B run (format ${JSON.stringify(meta.format)}).`, 'Pass a folder written with logging.wandb.mode: offline.');
  }
  const apiKey = env['WANDB_API_KEY']?.trim();
  if (!apiKey) throw new WandbError('ERR_WANDB_NO_KEY', 'WANDB_API_KEY is not set.', 'Export WANDB_API_KEY (from https://wandb.ai/authorize).');
  const baseUrl = (options.baseUrl ?? (env['WANDB_BASE_URL']?.trim() || DEFAULT_WANDB_BASE_URL)).replace(/\/+$/, '');
  const api = new WandbApi(baseUrl, apiKey, options.fetch ?? fetch, options.requestTimeoutMs ?? 30_000);
  const retries = options.retries ?? 4;
  const retry = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    let delay = options.retryDelayMs ?? 1000;
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (i >= retries || (err instanceof HttpFailure && err.fatal)) {
          throw new WandbError('ERR_WANDB_SYNC', `W&B sync of ${dir} failed while ${what}: ${(err as Error).message}`, 'Check WANDB_API_KEY, WANDB_BASE_URL and the network, then run the sync again.', { cause: err });
        }
        await sleep(delay);
        delay *= 2;
      }
    }
  };
  const run: RunInfo = { id: meta.id, project: meta.project, entity: meta.entity ?? undefined, name: meta.name ?? undefined, group: meta.group ?? undefined, tags: meta.tags, config: meta.config };
  const where = await retry('creating the run', () => api.upsertRun(run));
  const path = api.streamPath(where.entity, where.project, meta.id);
  // The summary is each key's last logged value (W&B's default summary).
  const summary: Record<string, unknown> = {};
  lines.forEach((l, i) => {
    let rowValue: unknown;
    try {
      rowValue = decodeJsonWithNonFinite(l);
    } catch (err) {
      throw new WandbError('ERR_WANDB_OFFLINE', `${dir}/history.jsonl line ${i + 1} is not JSON: ${(err as Error).message}`, 'Remove or repair that line (a crash can cut the last line short) and sync again.');
    }
    for (const [k, v] of Object.entries(rowValue as Record<string, unknown>)) if (!k.startsWith('_')) summary[k] = v;
  });
  const summaryLine = encodeJsonWithNonFinite(summary);
  for (let off = 0; off < lines.length; off += 1000) {
    const batch = lines.slice(off, off + 1000);
    await retry(`uploading rows ${off}..${off + batch.length - 1}`, () => api.sendHistory(path, off, batch, summaryLine));
  }
  await retry('marking the run finished', () => api.complete(path, meta.exitCode ?? 0));
  return { id: meta.id, url: `${baseUrl.replace('://api.', '://')}/${where.entity}/${where.project}/runs/${meta.id}`, rows: lines.length };
}
