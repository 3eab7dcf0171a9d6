/** Redis keys of our own beside BullMQ's (all under one prefix per queue name). */
export const keys = (queue: string) => ({
  /** Pub/sub channel: a job id published here is aborted by whichever worker runs it. */
  cancelChannel: `ragdiff:${queue}:cancel`,
  /** Set when a job is cancelled, so a worker that picks it up later (or after a stall) does not run it. */
  cancelled: (jobId: string) => `ragdiff:${queue}:cancelled:${jobId}`,
  /** A worker's announcement of its model (JSON GeneratorInfo + modes), refreshed while it runs. */
  model: (modelId: string) => `ragdiff:${queue}:model:${modelId}`,
});

/** How long cancel marks and model announcements live without refresh. */
export const CANCEL_TTL_S = 3600;
export const ANNOUNCE_TTL_S = 60;
