/**
 * Options for the worker threads that host ONNX sessions.
 *
 * A worker inherits the process's argv and execArgv by default, and both have
 * broken model workers: `node --input-type=module -e …` passes --input-type to
 * the worker, which then refuses to start; and onnxruntime-node 1.30
 * segfaults in InferenceSession.create inside a worker when the process's
 * command line is long. So the worker gets no argv, only execArgv flags known
 * to be harmless (the rest are either rejected by Worker or change how the
 * entry file is read), and a stack that grows with the command line.
 *
 * The stack size is empirical (Node 20, onnxruntime-node 1.30, x64 Linux; the
 * cause inside onnxruntime was not found): with the worker's argv emptied, the
 * crash still came back once the *process's* command line passed about
 * 25 KB at the default 4 MB stack, 55 KB at 8 MB, 110 KB at 16 MB and
 * 220 KB at 32 MB, i.e. roughly 150 bytes of stack per byte of command line;
 * the environment's size made no difference. The formula below allows 300
 * per byte on top of 8 MB. stackSizeMb only reserves address space; pages
 * are committed when touched.
 *
 * The pipeline's generation workers need the same; one helper for both is
 * expected when they are merged.
 */
import type { WorkerOptions } from 'node:worker_threads';

/** execArgv flags a model worker may inherit: diagnostics only, nothing that changes module loading. */
const INHERITABLE = /^--(enable-source-maps|no-warnings|no-deprecation|trace-warnings|trace-deprecation|trace-uncaught|unhandled-rejections=.+|conditions=.+)$/;

/** Stack for a model worker given the process's command line (see the file comment). */
export function modelWorkerStackMb(commandLine: readonly string[] = [...process.execArgv, ...process.argv]): number {
  const bytes = commandLine.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
  return Math.min(1024, 8 + Math.ceil((bytes * 300) / 2 ** 20));
}

export function modelWorkerOptions(workerData: unknown, execArgv: readonly string[] = process.execArgv): WorkerOptions {
  return {
    workerData,
    argv: [],
    execArgv: execArgv.filter((a) => INHERITABLE.test(a)),
    resourceLimits: { stackSizeMb: modelWorkerStackMb() },
  };
}
