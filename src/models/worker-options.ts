/**
 * Options for the worker threads that host ONNX sessions.
 *
 * A worker inherits the process's argv and execArgv by default, and both have
 * broken model workers: `node --input-type=module -e …` passes --input-type to
 * the worker, which then refuses to start, and onnxruntime-node 1.30 has
 * crashed in InferenceSession.create inside a worker when the process argv
 * was long. So the worker gets no argv, only execArgv flags known to be
 * harmless (the rest are either rejected by Worker or change how the entry
 * file is read), and a larger stack (the thread's native stack follows
 * stackSizeMb; the default 4 MB is small for onnxruntime's graph optimiser).
 *
 * The pipeline's generation workers need the same; one helper for both is
 * expected when they are merged.
 */
import type { WorkerOptions } from 'node:worker_threads';

/** execArgv flags a model worker may inherit: diagnostics only, nothing that changes module loading. */
const INHERITABLE = /^--(enable-source-maps|no-warnings|no-deprecation|trace-warnings|trace-deprecation|trace-uncaught|unhandled-rejections=.+|conditions=.+)$/;

export function modelWorkerOptions(workerData: unknown, execArgv: readonly string[] = process.execArgv): WorkerOptions {
  return {
    workerData,
    argv: [],
    execArgv: execArgv.filter((a) => INHERITABLE.test(a)),
    resourceLimits: { stackSizeMb: 8 },
  };
}
