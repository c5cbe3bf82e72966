import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { defineAnalyzer, PermanentError, type Analyzer, type AnalyzerContext } from '../../core/analyzer.js';
import { coerceError } from '../../core/errors.js';
import { runProfileTask } from './profileTask.js';
import { DEFAULT_CHUNK_ROWS, type DatasetProfile, type DatasetProfileInput } from './types.js';
import type { MainMessage, WorkerMessage, WorkerOutcome, WorkerTask } from './workerProtocol.js';

export const DATASET_PROFILE_INPUT_SCHEMA = {
  type: 'object',
  properties: {
    format: { enum: ['csv', 'ndjson'] },
    data: { type: 'string' },
    file: { type: 'string', minLength: 1, description: 'Absolute path of an uploaded file.' },
    chunk_rows: { type: 'integer', minimum: 1, maximum: 100_000_000, default: DEFAULT_CHUNK_ROWS },
    delimiter: { type: 'string', minLength: 1, maxLength: 8, pattern: '^[^"\\r\\n]+$' },
  },
  required: ['format'],
  oneOf: [{ required: ['data'] }, { required: ['file'] }],
  additionalProperties: false,
} as const;

export interface DatasetProfileAnalyzerOptions {
  /**
   * Profile on the calling thread instead of the worker pool. For tests and embedders
   * without worker threads; a server must not use it (profiling is CPU-bound).
   */
  readonly inProcess?: boolean;
  /** Confine `file` inputs to these directories (recommended for servers). */
  readonly allowedRoots?: readonly string[];
}

/** One pool per process: thread count is a machine resource, not a per-analyzer one. */
const POOL_THREADS = Math.max(1, availableParallelism() - 1);
const WORKER_URL = new URL('./profileWorker.js', import.meta.url);
let pool: Piscina | null = null;
let workerFileExists: boolean | null = null;

function sharedPool(): Piscina {
  pool ??= new Piscina({
    filename: WORKER_URL.href,
    // Threads start on first use and exit when idle, so importing the analyzer costs nothing.
    minThreads: 0,
    maxThreads: POOL_THREADS,
    idleTimeout: 30_000,
    // Tasks are async and talk over their own port; Atomics waits would block that.
    atomics: 'disabled',
  });
  return pool;
}

/** Terminates the shared worker pool (graceful shutdown, end of tests). */
export async function closeDatasetProfilePool(): Promise<void> {
  const p = pool;
  pool = null;
  if (p !== null) await p.destroy();
}

export function createDatasetProfileAnalyzer(
  options: DatasetProfileAnalyzerOptions = {},
): Analyzer<DatasetProfileInput, DatasetProfile> {
  const allowedRoots = options.allowedRoots ?? null;
  return defineAnalyzer<DatasetProfileInput, DatasetProfile>({
    name: 'dataset-profile',
    version: '1.0.0',
    description:
      'Profiles a CSV or NDJSON dataset in one streaming pass: per column type, count, nulls, distinct, ' +
      'min/max/mean/stddev, quantiles, top values and histogram; a partial snapshot every chunk_rows rows.',
    inputSchema: DATASET_PROFILE_INPUT_SCHEMA,
    timeoutMs: 30 * 60_000,
    maxAttempts: 3,
    concurrency: POOL_THREADS,
    run(input, ctx) {
      if (options.inProcess === true) return runInProcess(input, ctx, allowedRoots);
      if (!hasWorkerFile()) {
        // Only when running from TypeScript sources (e.g. under vitest): worker threads cannot
        // load .ts files. Built code (dist/) always has the worker.
        ctx.logger.warn({ worker: fileURLToPath(WORKER_URL) }, 'dataset-profile worker not built; profiling in-process');
        return runInProcess(input, ctx, allowedRoots);
      }
      return runInWorker(input, ctx, allowedRoots);
    },
  });
}

export const datasetProfileAnalyzer = createDatasetProfileAnalyzer();

function hasWorkerFile(): boolean {
  workerFileExists ??= existsSync(fileURLToPath(WORKER_URL));
  return workerFileExists;
}

function runInProcess(
  input: DatasetProfileInput,
  ctx: AnalyzerContext,
  allowedRoots: readonly string[] | null,
): Promise<DatasetProfile> {
  return runProfileTask(
    input,
    { progress: (f) => ctx.progress(f), partial: (key, payload) => ctx.partial(key, payload) },
    { signal: ctx.signal, allowedRoots },
  );
}

async function runInWorker(
  input: DatasetProfileInput,
  ctx: AnalyzerContext,
  allowedRoots: readonly string[] | null,
): Promise<DatasetProfile> {
  ctx.signal.throwIfAborted();
  const { port1, port2 } = new MessageChannel();
  // Aborting this terminates the worker thread: on cancel/timeout, or when storing a
  // partial failed (e.g. the lease was lost), which makes further work pointless.
  const task = new AbortController();
  let relayError: Error | null = null;
  const onAbort = (): void => task.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  port1.on('message', (msg: WorkerMessage) => {
    if (msg.type === 'progress') {
      ctx.progress(msg.fraction);
      return;
    }
    ctx.partial(msg.chunkKey, msg.payload).then(
      () => port1.postMessage({ type: 'ack', id: msg.id } satisfies MainMessage),
      (e: unknown) => {
        relayError ??= coerceError(e);
        task.abort(relayError);
      },
    );
  });
  try {
    const workerTask: WorkerTask = { input, allowedRoots, port: port2 };
    const outcome = (await sharedPool().run(workerTask, { transferList: [port2], signal: task.signal })) as WorkerOutcome;
    if (outcome.ok) return outcome.profile;
    throw outcome.permanent ? new PermanentError(outcome.message, outcome.code) : new Error(outcome.message);
  } catch (e: unknown) {
    // Piscina rejects with its own AbortError; callers expect the signal's reason.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (relayError !== null) throw relayError;
    throw e;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    port1.close();
  }
}
