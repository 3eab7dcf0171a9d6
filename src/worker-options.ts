/**
 * How ragdiff starts worker threads: with a deliberate execArgv, no argv, and a
 * stack big enough for onnxruntime. Every `new Worker` in ragdiff goes through
 * `startWorker`.
 *
 * execArgv. By default a worker inherits the parent's execArgv, and Node then
 * refuses or misreads flags that only make sense for the main entry point:
 * `node --input-type=module -e '…Pipeline.load…'` failed with WORKER_FAILED
 * because a file worker cannot take --input-type. `workerExecArgv` keeps the
 * flags that shape how modules load and warn (--conditions, --import,
 * --require, --loader, --enable-source-maps, --no-warnings, --experimental-…)
 * and drops:
 *   - entry-point and mode flags: -e/--eval, -p/--print, --input-type, -c/--check,
 *     -i/--interactive, --test*, --watch*, --run, -v, -h, --v8-options;
 *   - debugger flags (--inspect*, --debug*): workers are debugged through the main
 *     thread's inspector session, and --inspect-brk would stop each worker for a
 *     debugger that never attaches;
 *   - V8 and per-process options, which Node rejects in a worker's execArgv
 *     (--expose-gc, --max-old-space-size, --stack-size, --title, --jitless, …).
 *     V8 flags are process-wide, so the worker has them anyway (gc() exists in a
 *     worker of `node --expose-gc`); --max-old-space-size=N becomes the worker's
 *     resourceLimits.maxOldGenerationSizeMb, so the user's heap limit still holds.
 * If Node still rejects a flag (a newer Node, an unlisted option), the flags it
 * names are dropped and the start retried once, then the worker starts with no
 * flags at all; either way with a warning.
 *
 * argv. `argv: []`: nothing of the parent's command line is appended to the
 * worker's process.argv (it was not before either; this makes it explicit).
 *
 * Stack. onnxruntime-node 1.30 creates its process-wide environment on the first
 * InferenceSession of the process, and while doing so reads /proc/self/cmdline and
 * walks it with a routine that recurses once per byte, about 290 bytes of stack
 * each (measured with gdb: one three-frame cycle per command-line byte). A worker's
 * default 4 MiB stack overflowed at about 14.5 KB of command line (SIGSEGV, exit
 * 139, e.g. `ragdiff generate "<15 KB prompt>"`); the main thread's 8 MiB at about
 * 29 KB. `workerStackSizeMb` sizes the stack from the command line's length, so
 * no argument can crash the process; the extra stack is reserved address space
 * and only touched by the thread that creates the environment.
 */
import { readFileSync } from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { RagdiffError } from './errors.js';
import { deserializeError, type SerializedError } from './worker-errors.js';

/** Flags that take a value in the next token when written without `=`. */
const TAKES_VALUE = new Set([
  '-e', '--eval', '-p', '--print', '-r', '--require', '--import', '--loader', '--experimental-loader', '-C', '--conditions',
  '--input-type', '--watch-path', '--env-file', '--env-file-if-exists', '--inspect-port', '--debug-port', '--title',
  '--test-name-pattern', '--test-skip-pattern', '--test-reporter', '--test-reporter-destination', '--test-concurrency',
  '--test-shard', '--test-timeout', '--diagnostic-dir', '--report-dir', '--report-directory', '--report-filename',
  '--report-signal', '--heapsnapshot-signal', '--cpu-prof-dir', '--cpu-prof-name', '--heap-prof-dir', '--heap-prof-name',
  '--redirect-warnings', '--icu-data-dir', '--openssl-config', '--max-old-space-size', '--stack-size', '--disable-proto',
  '--secure-heap', '--secure-heap-min', '--unhandled-rejections', '--dns-result-order', '--experimental-default-type',
]);

/** Entry-point, mode and per-process flags a worker must not get. */
const DROP = new Set([
  '-e', '--eval', '-p', '--print', '--input-type', '-c', '--check', '-i', '--interactive', '--run', '-v', '--version',
  '-h', '--help', '--v8-options', '--completion-bash', '--prof-process', '--watch', '--watch-path', '--watch-preserve-output',
  '--env-file', '--env-file-if-exists', '--title', '--max-old-space-size', '--max-semi-space-size', '--stack-size',
  '--expose-gc', '--jitless', '--abort-on-uncaught-exception', '--disable-proto', '--secure-heap', '--secure-heap-min',
  '--zero-fill-buffers', '--perf-basic-prof', '--perf-basic-prof-only-functions', '--perf-prof', '--perf-prof-unwinding-info',
  '--interpreted-frames-native-stack', '--huge-max-old-generation-size', '--max-http-header-size', '--use-largepages',
  '--v8-pool-size', '--trace-event-categories', '--trace-event-file-pattern', '--trace-events-enabled',
]);

const DROP_PREFIXES = ['--test', '--experimental-test', '--inspect', '--debug', '--watch', '--v8-', '--prof'];

export interface FilteredExecArgv {
  execArgv: string[];
  /** From --max-old-space-size, for resourceLimits.maxOldGenerationSizeMb. */
  maxOldGenerationSizeMb?: number;
}

/** The parent's execArgv minus the flags a worker must not get (see the file comment). */
export function workerExecArgv(parent: readonly string[] = process.execArgv): FilteredExecArgv {
  const kept: string[] = [];
  let maxOld: number | undefined;
  for (let i = 0; i < parent.length; i++) {
    const token = parent[i]!;
    if (token === '--') break; // everything after belongs to the script
    if (!token.startsWith('-') || token === '-') continue; // a stray value or stdin marker: nothing a worker can use
    const eq = token.startsWith('--') ? token.indexOf('=') : -1;
    const raw = eq > 0 ? token.slice(0, eq) : token;
    const name = raw.replaceAll('_', '-').replace(/^--no-/, '--');
    const unit = [token];
    if (eq < 0 && TAKES_VALUE.has(token) && i + 1 < parent.length) unit.push(parent[++i]!);
    if (name === '--max-old-space-size') {
      const v = Number(eq > 0 ? token.slice(eq + 1) : unit[1]);
      if (Number.isFinite(v) && v > 0) maxOld = v;
    }
    // V8 options are spelt with underscores or are process-wide; Node refuses them in workers.
    if (DROP.has(name) || DROP_PREFIXES.some((p) => name.startsWith(p)) || raw.includes('_')) continue;
    kept.push(...unit);
  }
  return maxOld !== undefined ? { execArgv: kept, maxOldGenerationSizeMb: maxOld } : { execArgv: kept };
}

/** Bytes of this process's command line as the kernel holds it (what onnxruntime reads). */
export function commandLineBytes(): number {
  try {
    return readFileSync('/proc/self/cmdline').length;
  } catch {
    // Not Linux (or /proc hidden): the same strings, NUL-terminated.
    const parts = [process.argv0, ...process.execArgv, ...process.argv.slice(1)];
    return parts.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0);
  }
}

/** Measured ≈ 290 bytes of stack per command-line byte; 320 leaves a margin. */
const STACK_BYTES_PER_CMDLINE_BYTE = 320;
const BASE_STACK_MB = 4;
const MAX_STACK_MB = 2048;

/** The worker stack (MiB) onnxruntime needs for a command line of `bytes`: Node's default 4 MiB plus the recursion. */
export function workerStackSizeMb(bytes = commandLineBytes()): number {
  const need = Math.ceil((bytes * STACK_BYTES_PER_CMDLINE_BYTE) / (1024 * 1024));
  return Math.min(MAX_STACK_MB, BASE_STACK_MB + need);
}

/** The options ragdiff starts a worker with: `extra` plus execArgv, argv and stack (see the file comment). */
export function workerOptions(extra: WorkerOptions = {}): WorkerOptions & { execArgv: string[] } {
  const { execArgv, maxOldGenerationSizeMb } = workerExecArgv();
  const limits = { ...extra.resourceLimits };
  limits.stackSizeMb = Math.max(limits.stackSizeMb ?? 0, workerStackSizeMb());
  if (limits.maxOldGenerationSizeMb === undefined && maxOldGenerationSizeMb !== undefined) limits.maxOldGenerationSizeMb = maxOldGenerationSizeMb;
  return { ...extra, execArgv, argv: [], resourceLimits: limits };
}

/**
 * `new Worker(url, workerOptions(extra))`; if Node refuses some flag of the
 * filtered execArgv, retries without the flags it names, then without any.
 */
export function startWorker(url: URL | string, extra: WorkerOptions = {}, onWarning: (message: string) => void = () => {}): Worker {
  const options = workerOptions(extra);
  try {
    return new Worker(url, options);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    const named = String((e as Error).message).split('flags: ')[1]?.split(', ') ?? [];
    const fewer = options.execArgv.filter((f) => !named.includes(f));
    onWarning(`worker thread started without the Node flags it refused: ${(e as Error).message}`);
    try {
      return new Worker(url, { ...options, execArgv: fewer });
    } catch (e2) {
      if ((e2 as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e2;
      return new Worker(url, { ...options, execArgv: [] });
    }
  }
}

/** The fields of the messages every ragdiff worker posts while it opens its sessions ('ready', 'warning', 'error'). */
interface WorkerStartMessage<Info> {
  type: string;
  info?: Info;
  message?: string;
  error?: SerializedError;
}

/**
 * Resolves with the worker's `ready` info once its sessions are open; rejects
 * with its rebuilt error, or WORKER_FAILED if it fails or exits first (`what`
 * names it in the message). Warnings are passed on; its listeners are removed either way.
 */
export function awaitWorkerReady<Info>(worker: Worker, what: string, onWarning: (message: string) => void): Promise<Info> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: WorkerStartMessage<Info>) => {
      if (m.type === 'warning') onWarning(m.message!);
      else if (m.type === 'ready') {
        done();
        resolve(m.info!);
      } else if (m.type === 'error') {
        done();
        reject(deserializeError(m.error!));
      }
    };
    const onError = (e: Error) => {
      done();
      reject(new RagdiffError('WORKER_FAILED', `${what} failed to start: ${e.message}`, { cause: e }));
    };
    const onExit = (code: number) => {
      done();
      reject(new RagdiffError('WORKER_FAILED', `${what} exited (code ${code}) before its models were loaded`));
    };
    const done = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}
