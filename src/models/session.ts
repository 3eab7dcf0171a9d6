/**
 * Opens ONNX Runtime sessions with errors that name the file, and falls back
 * to the CPU provider (with a warning) when a requested provider cannot load.
 */
import { existsSync, statSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { RagdiffError } from '../errors.js';
import { prepareOnnxRuntime } from './ort-environment.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu' | 'dml' | 'coreml' | (string & {});

export interface SessionOptions {
  /** Providers in order of preference; 'cpu' is always appended as the last resort. */
  executionProviders?: ExecutionProvider[];
  /** Intra-op threads (default: ONNX Runtime's choice). */
  intraOpNumThreads?: number;
  /**
   * Let intra-op threads spin-wait between parallel sections (ONNX Runtime's default, true).
   * Off, idle threads sleep: better when cores are shared (several workers, a busy event loop).
   */
  allowSpinning?: boolean;
  /** Receives warnings such as a provider fallback. Default: console.warn. */
  onWarning?: (message: string) => void;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The providers the session actually runs with. */
  providers: string[];
  path: string;
}

export async function openSession(path: string, options: SessionOptions = {}): Promise<OpenedSession> {
  if (!existsSync(path)) throw new RagdiffError('MODEL_FILE_MISSING', `model file not found: ${path}`);
  if (statSync(path).size === 0) throw new RagdiffError('MODEL_FILE_INVALID', `model file is empty: ${path}`);
  // A long command line would overflow this thread's stack while onnxruntime creates its environment.
  await prepareOnnxRuntime();
  const warn = options.onWarning ?? ((m: string) => console.warn(`ragdiff: ${m}`));
  const wanted = options.executionProviders?.length ? options.executionProviders : ['cpu'];
  const base: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
  if (options.intraOpNumThreads) base.intraOpNumThreads = options.intraOpNumThreads;
  if (options.allowSpinning === false) base.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };

  const tryOpen = (providers: string[]) => ort.InferenceSession.create(path, { ...base, executionProviders: providers });
  const nonCpu = wanted.filter((p) => p !== 'cpu');
  let providerFailure: unknown;
  if (nonCpu.length > 0) {
    try {
      return { session: await tryOpen([...nonCpu, 'cpu']), providers: [...nonCpu, 'cpu'], path };
    } catch (e) {
      providerFailure = e; // decided below: a provider problem if the CPU alone can open the file
    }
  }
  try {
    const session = await tryOpen(['cpu']);
    if (providerFailure) warn(`execution provider(s) ${nonCpu.join(', ')} unavailable for ${path} (${firstLine(providerFailure)}); using cpu`);
    return { session, providers: ['cpu'], path };
  } catch (e) {
    throw invalidModel(path, e);
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!;
}

function invalidModel(path: string, e: unknown): RagdiffError {
  const msg = firstLine(e);
  // Large exports keep their weights beside the graph (external data, e.g. model.onnx_data): name that file.
  const missing = /External data path does not exist: "?([^"]+)"?/.exec(msg);
  if (missing) return new RagdiffError('MODEL_FILE_MISSING', `external data file of ${path} not found: ${missing[1]} (copy it beside the model: large ONNX exports keep their weights there)`, { cause: e });
  const short = /External initializer: (\S+) offset: (\d+) size to read: (\d+) given file_length: (\d+)/.exec(msg);
  if (short) {
    return new RagdiffError('MODEL_FILE_INVALID',
      `external data of ${path} is truncated: tensor ${short[1]} needs bytes ${short[2]}..${Number(short[2]) + Number(short[3])} but the file has ${short[4]} (an interrupted copy or download?)`, { cause: e });
  }
  return new RagdiffError('MODEL_FILE_INVALID', `cannot load ONNX model ${path}: ${msg}`, { cause: e });
}

/** Checks that a session has the named inputs and outputs; the error names the file and what is missing. */
export function expectIO(opened: OpenedSession, inputs: string[], outputs: string[]): void {
  const { session, path } = opened;
  const missingIn = inputs.filter((n) => !session.inputNames.includes(n));
  const missingOut = outputs.filter((n) => !session.outputNames.includes(n));
  if (missingIn.length || missingOut.length) {
    throw new RagdiffError(
      'MODEL_IO_MISMATCH',
      `${path} does not have the expected I/O: ` +
        [missingIn.length ? `missing inputs ${missingIn.join(', ')} (has ${session.inputNames.join(', ')})` : '',
         missingOut.length ? `missing outputs ${missingOut.join(', ')} (has ${session.outputNames.join(', ')})` : '']
          .filter(Boolean).join('; '),
    );
  }
}
