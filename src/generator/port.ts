/**
 * The `Generator` port: what the HTTP server (and a queue worker) needs from
 * whatever makes images. The in-process RagPipeline is one implementation
 * (LocalGenerator); a BullMQ queue in front of stateless workers is another
 * (QueueGenerator in src/queue/).
 *
 * The request is serialisable: it names no store object. A generator searches
 * the store it was opened with; pinned uploads travel as bytes here and as
 * blob keys across a process boundary (never as image bytes in Redis).
 */
import type { ProgressEvent } from '../pipeline/index.js';
import type { RagRequest, RagResult, RetrievalOptions } from '../rag/index.js';

/** Retrieval without a store object: the generator searches its own (a query's bytes and vectors become blob keys and arrays on the wire). */
export type GenerationRetrieval = Omit<RetrievalOptions, 'store'>;

/** A generation request that can cross a process boundary (as JSON, after uploads become blob keys). */
export type GenerationRequest = Omit<RagRequest, 'signal' | 'onProgress' | 'retrieval' | 'initImage'> & {
  retrieval?: GenerationRetrieval;
};

/** What a client sees of the model (the server's /v1/info and size checks). */
export interface GeneratorInfo {
  /** The bundle's display name. */
  name: string;
  /** `name@hash-prefix`: what a queued job asks for and a worker compares with its own. */
  id: string;
  image: { width: number; height: number };
  neighbourSlots: number;
  defaults: { steps: number; guidanceScale: number };
  /** The bundle's directory where it is local (for redacting paths out of messages); absent for a remote model. */
  dir?: string;
}

/** Work admitted and not finished; `capacity` is the most the generator accepts before BUSY. */
export interface CapacityState {
  running: number;
  queued: number;
  capacity: number;
}

export interface GenerateControls {
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
}

export interface Generator {
  info(): GeneratorInfo;
  /** The retrieval modes the model supports. */
  readonly modes: string[];
  capacity(): CapacityState;
  /** Throws BUSY at once when full, ABORTED when `signal` fires, NO_STORE when retrieval is asked of a generator without a store. */
  generate(request: GenerationRequest, controls?: GenerateControls): Promise<RagResult>;
  close(): Promise<void>;
}

/** The model id a job carries: the display name and the first 16 hex digits of the bundle hash. */
export function modelIdOf(info: { name: string; hash: string }): string {
  return `${info.name}@${info.hash.slice(0, 16)}`;
}
