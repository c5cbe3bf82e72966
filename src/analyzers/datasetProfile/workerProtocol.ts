import type { MessagePort } from 'node:worker_threads';
import type { DatasetProfile, DatasetProfileInput } from './types.js';

/**
 * Messages between the analyzer (main thread) and the profiling worker thread. Errors cannot
 * cross the thread boundary with their class intact (structured clone keeps only the
 * message), so the worker returns an outcome saying whether a failure is permanent.
 */
export interface WorkerTask {
  readonly input: DatasetProfileInput;
  readonly allowedRoots: readonly string[] | null;
  /** Worker -> main: progress and partials; main -> worker: partial acks. */
  readonly port: MessagePort;
}

export type WorkerOutcome =
  | { readonly ok: true; readonly profile: DatasetProfile }
  | { readonly ok: false; readonly permanent: boolean; readonly code: string; readonly message: string };

export type WorkerMessage =
  | { readonly type: 'progress'; readonly fraction: number }
  | { readonly type: 'partial'; readonly id: number; readonly chunkKey: string; readonly payload: DatasetProfile };

export type MainMessage = { readonly type: 'ack'; readonly id: number };
