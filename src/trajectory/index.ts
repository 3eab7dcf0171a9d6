/** Trajectory retrieval (ReDi): knowledge bases of sampling trajectories and the lookup that skips denoising steps. */
export {
  appendTrajectories, checkBinding, createKnowledgeBase, KbMismatchError, KnowledgeBase, KB_VERSION, kbLockOwner,
} from './kb-file.js';
export type { AppendOptions, KbBinding, KbChunk, KbHeader, KeyWindow, OpenOptions, TrajectoryRecord } from './kb-file.js';
export { KeyIndex, lookupTrajectory, searchBase } from './lookup.js';
export type { LookupOptions, LookupResult, Neighbour } from './lookup.js';
export { buildKnowledgeBase } from './build.js';
export type { BuildKnowledgeBaseOptions } from './build.js';
export { generationBinding } from './binding.js';
export type { TrajectoryRequest, TrajectoryStats } from './request.js';
