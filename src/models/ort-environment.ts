/**
 * onnxruntime-node creates its process-wide environment on the first session of
 * the process, and that step needs about 290 bytes of stack per byte of the
 * process's command line (see worker-options.ts). The main thread's stack (8 MiB
 * by default) overflows at about 29 KB of arguments, e.g. `ragdiff index add`
 * with a few thousand file names or `index query "<30 KB text>"`.
 *
 * `prepareOnnxRuntime()` creates that environment first, in a short-lived
 * worker whose stack is sized for the command line; sessions opened afterwards
 * on any thread reuse it. openSession awaits it, so every caller is covered.
 * With a short command line (the usual case) it does nothing.
 */
import { isMainThread, resourceLimits } from 'node:worker_threads';
import { commandLineBytes, startWorker, workerStackSizeMb } from '../worker-options.js';

/** Below this many command-line bytes the default stacks (4 MiB worker, 8 MiB main) suffice with a wide margin. */
export const SAFE_COMMAND_LINE_BYTES = 8 * 1024;

let ready: Promise<void> | null = null;

export function prepareOnnxRuntime(): Promise<void> {
  if (ready) return ready;
  const bytes = commandLineBytes();
  // The main thread's stack is RLIMIT_STACK (8 MiB by default); a worker's is its stackSizeMb (4 by default),
  // so a worker started by startWorker already has enough and needs no helper.
  const ownStackMb = isMainThread ? 8 : (resourceLimits.stackSizeMb ?? 4);
  if (bytes <= SAFE_COMMAND_LINE_BYTES || workerStackSizeMb(bytes) <= ownStackMb) return (ready = Promise.resolve());
  ready = new Promise<void>((resolve) => {
    let worker;
    try {
      worker = startWorker(new URL('./ort-environment-worker.js', import.meta.url));
    } catch {
      return resolve(); // the session open that follows reports whatever is wrong
    }
    worker.once('exit', () => resolve());
    worker.once('error', () => resolve());
  });
  return ready;
}
