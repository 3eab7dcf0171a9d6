export { BlobDir } from './blob-dir.js';
export { QueueGenerator, type QueueGeneratorOptions } from './queue-generator.js';
export { startQueueWorker, type QueueWorker, type QueueWorkerOptions } from './worker.js';
export { checkRedisPolicy, DEFAULT_QUEUE_NAME, openRedis } from './redis.js';
export { requestCancel } from './cancel.js';
export type { JobPayload, WireResult } from './payload.js';
