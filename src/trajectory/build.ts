/**
 * Building a knowledge base: full sampling over prompts × seeds, recording per
 * trajectory the latent entering the key step (the key) and the latent (with
 * the sampler's history) entering each value step, through the pipeline's
 * captureLatents seam. Appends in chunks, so an interrupted build keeps what it
 * wrote and a later build with the same settings extends it.
 */
import { existsSync } from 'node:fs';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { SamplerChoice } from '../pipeline/params.js';
import { createScheduler, type DiffusersSchedulerConfig } from '../scheduler/index.js';
import { generationBinding } from './binding.js';
import { appendTrajectories, createKnowledgeBase, KbMismatchError, KnowledgeBase, type TrajectoryRecord } from './kb-file.js';

export interface BuildKnowledgeBaseOptions {
  prompts: string[];
  /** Seeds per prompt: a count (seeds seedBase..seedBase+n−1) or the list. */
  seeds: number | number[];
  seedBase?: number;
  out: string;
  /** Step index of the key (default 10 of 50, scaled to `steps`: round(steps / 5)). */
  keyStep?: number;
  /** Step indices of the values (default [round(steps / 2)]). */
  valueSteps?: number[];
  steps?: number;
  guidanceScale?: number;
  negativePrompt?: string;
  sampler?: SamplerChoice;
  /** Trajectories per appended chunk (default 64). */
  chunkSize?: number;
  /** Optional prompt embedder (e.g. the bundle's CLIP text encoder); its width becomes embeddingDim. */
  embedText?: (texts: string[]) => Promise<Float32Array[]>;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export async function buildKnowledgeBase(pipeline: Pipeline, o: BuildKnowledgeBaseOptions): Promise<{ path: string; count: number; added: number }> {
  if (!Array.isArray(o.prompts) || o.prompts.length === 0 || !o.prompts.every((p) => typeof p === 'string')) throw typeError('INVALID_TYPE', 'prompts must be a non-empty array of strings');
  const base = o.seedBase ?? 0;
  const seeds = typeof o.seeds === 'number' ? Array.from({ length: o.seeds }, (_, i) => base + i) : o.seeds;
  if (!Array.isArray(seeds) || seeds.length === 0 || !seeds.every((s) => Number.isSafeInteger(s) && s >= 0)) throw rangeError('OUT_OF_RANGE', 'seeds must be a positive count or a list of non-negative integers');
  const info = pipeline.info;
  const steps = o.steps ?? info.defaults.steps;
  const guidanceScale = o.guidanceScale ?? info.defaults.guidanceScale;
  const negativePrompt = o.negativePrompt ?? '';
  const sampler = o.sampler ?? info.defaults.sampler;
  const sched = createScheduler(info.schedulerConfig as unknown as DiffusersSchedulerConfig, { sampler });
  sched.setTimesteps(steps);
  const calls = sched.timesteps.length;
  const keyStep = o.keyStep ?? Math.max(1, Math.round(steps / 5));
  const valueSteps = o.valueSteps ?? [Math.max(keyStep + 1, Math.round(steps / 2))];
  if (!Number.isInteger(keyStep) || keyStep < 1 || keyStep >= calls) throw rangeError('OUT_OF_RANGE', `keyStep must be an integer in 1..${calls - 1}, got ${keyStep}`);
  valueSteps.forEach((v, i) => {
    if (!Number.isInteger(v) || v <= keyStep || v >= calls || (i > 0 && v <= valueSteps[i - 1]!)) {
      throw rangeError('INVALID_VALUE', `valueSteps must be ascending integers in ${keyStep + 1}..${calls - 1} (after keyStep ${keyStep}), got ${JSON.stringify(valueSteps)}`);
    }
  });
  const binding = generationBinding(info, sched, { steps, guidanceScale, negativePrompt });
  const history = sampler === 'dpmpp-2m';
  let embeddingDim = 0;
  if (o.embedText) embeddingDim = (await o.embedText([o.prompts[0]!]))[0]!.length;
  if (existsSync(o.out)) {
    // A tail cut by an interrupted append is tolerated here and cut by the first append below (under the lock).
    const kb = KnowledgeBase.open(o.out, { expect: binding, repairTail: true });
    const h = kb.header;
    kb.close();
    if (h.keyStep !== keyStep) throw new KbMismatchError('keyStep', `${o.out} holds keys at step ${h.keyStep}, not ${keyStep}`);
    if (JSON.stringify(h.valueSteps) !== JSON.stringify(valueSteps)) throw new KbMismatchError('valueSteps', `${o.out} holds values at steps ${h.valueSteps.join(', ')}, not ${valueSteps.join(', ')}`);
    if (h.embeddingDim !== embeddingDim) throw new KbMismatchError('embeddingDim', `${o.out} stores ${h.embeddingDim}-float prompt embeddings, the embedder gives ${embeddingDim}`);
  } else {
    createKnowledgeBase(o.out, { ...binding, keyStep, valueSteps, history, embeddingDim });
  }
  const chunkSize = o.chunkSize ?? 64;
  const total = o.prompts.length * seeds.length;
  const capture = [keyStep - 1, ...valueSteps.map((v) => v - 1)];
  let pending: TrajectoryRecord[] = [];
  let count = 0, added = 0;
  const flush = () => {
    if (pending.length) count = appendTrajectories(o.out, pending);
    added += pending.length;
    pending = [];
  };
  // Keep every worker busy: up to the pipeline's concurrency generations in flight.
  const jobs = o.prompts.flatMap((prompt) => seeds.map((seed) => ({ prompt, seed })));
  const inFlight = Math.max(1, Math.min(pipeline.queueState.capacity, 4));
  let next = 0, done = 0;
  const embeddings = new Map<string, Float32Array>();
  const worker = async () => {
    while (next < jobs.length) {
      if (o.signal?.aborted) throw new RagdiffError('ABORTED', 'knowledge-base build aborted');
      const j = jobs[next++]!;
      const r = await pipeline.generate({ prompt: j.prompt, seed: j.seed, steps, guidanceScale, negativePrompt, sampler, captureLatents: capture, signal: o.signal });
      const at = new Map(r.latents.map((e) => [e.step, e]));
      const key = at.get(keyStep - 1)!;
      const vals = valueSteps.map((v) => at.get(v - 1)!);
      let embedding: Float32Array | undefined;
      if (o.embedText) {
        embedding = embeddings.get(j.prompt) ?? (await o.embedText([j.prompt]))[0]!;
        embeddings.set(j.prompt, embedding);
      }
      pending.push({
        key: key.latent, values: vals.map((e) => e.latent), ...(history ? { histories: vals.map((e) => e.history) } : {}),
        ...(embedding ? { embedding } : {}), seed: j.seed, prompt: j.prompt,
      });
      if (pending.length >= chunkSize) flush();
      o.onProgress?.(++done, total);
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, worker));
  } finally {
    flush();
  }
  const kb = KnowledgeBase.open(o.out);
  count = kb.count;
  kb.close();
  return { path: o.out, count, added };
}
