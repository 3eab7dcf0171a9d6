/** Diffusers-compatible schedulers (DDIM, Euler, Euler ancestral, DPM-Solver++ 2M, PNDM, LCM) on the native core. */
export { Scheduler, createScheduler } from './scheduler.js';
export type { CreateSchedulerOptions, StepOptions } from './scheduler.js';
export { resolveSchedulerConfig, parseSchedulerConfigJson, SAMPLER_NAMES, DIFFUSERS_CLASS, samplerForClass } from './config.js';
export type { SamplerName, DiffusersSchedulerConfig, ResolvedSchedulerConfig } from './config.js';
