/** ragdiff as an HTTP service: OpenAI-shaped generation with retrieval, references, metrics, and a page. */
export { createServer, WEB_DIR } from './server.js';
export type { ServerOptions, RagServer } from './server.js';
export type { ApiKeys } from './auth.js';
export type { Limits } from './schemas.js';
export { DEFAULT_LIMITS } from './schemas.js';
export type { RagSafety } from './safety.js';
export type { ConnectionLimits } from './connections.js';
export { DEFAULT_CONNECTION_LIMITS } from './connections.js';
export { httpStatusOf } from './errors.js';
