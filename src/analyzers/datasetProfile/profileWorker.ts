/**
 * Piscina worker entry: profiles one dataset off the main event loop. Cancel is piscina's
 * job (it terminates this thread when the task's signal aborts), so no signal is used here.
 */
import { PermanentError } from '../../core/analyzer.js';
import { coerceError } from '../../core/errors.js';
import { runProfileTask } from './profileTask.js';
import type { MainMessage, WorkerMessage, WorkerOutcome, WorkerTask } from './workerProtocol.js';

export default async function profileInWorker(task: WorkerTask): Promise<WorkerOutcome> {
  const { port } = task;
  const waiting = new Map<number, () => void>();
  let nextId = 0;
  port.on('message', (msg: MainMessage) => {
    const done = waiting.get(msg.id);
    waiting.delete(msg.id);
    done?.();
  });
  const post = (msg: WorkerMessage): void => port.postMessage(msg);
  try {
    const profile = await runProfileTask(task.input, {
      progress: (fraction) => post({ type: 'progress', fraction }),
      // Wait for the main thread to store each partial: that is the backpressure which keeps
      // a slow store from queueing snapshots without bound.
      partial: (chunkKey, payload) =>
        new Promise<void>((resolve) => {
          const id = nextId++;
          waiting.set(id, resolve);
          post({ type: 'partial', id, chunkKey, payload });
        }),
    }, { allowedRoots: task.allowedRoots });
    return { ok: true, profile };
  } catch (e: unknown) {
    const err = coerceError(e);
    return err instanceof PermanentError
      ? { ok: false, permanent: true, code: err.code, message: err.message }
      : { ok: false, permanent: false, code: 'ANALYZER_FAILED', message: err.message };
  } finally {
    port.close();
  }
}
