/** What every route of the server shares. */
import type { FastifyBaseLogger } from 'fastify';
import type { Generator } from '../generator/index.js';
import type { ImageStore } from '../store/index.js';
import type { SourceRegistry } from '../sources/index.js';
import type { Admission } from './admission.js';
import type { KeyCheck } from './auth.js';
import type { JobStore } from './jobs.js';
import type { ServerMetrics } from './metrics.js';
import type { RagSafety } from './safety.js';
import type { Limits } from './schemas.js';
import type { Redact } from './redact.js';

export interface ServerContext {
  /** What makes the images: in-process (LocalGenerator) or a queue of workers (QueueGenerator). */
  generator: Generator;
  store?: ImageStore;
  /** Online sources the operator enabled (serve --sources); absent: none. */
  sources?: SourceRegistry;
  limits: Limits;
  metrics: ServerMetrics;
  admission: Admission;
  jobs: JobStore;
  keys: KeyCheck;
  /** The hooks the server enforces, uncounted (the search route previews the reference screen with them). */
  safety: RagSafety;
  /** The model's one output size, "WxH". */
  size: string;
  log: FastifyBaseLogger;
  /** Rewrites server paths out of client-facing text. */
  redact: Redact;
}
