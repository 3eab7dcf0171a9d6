/**
 * The worker side of a trajectory jump: the base and its in-memory key index
 * are cached per path (re-read when the file grew), the batch's queries are
 * looked up, and the jump target (latent and sampler history per image) is
 * returned, or null with the reason when a query lies beyond maxDistance.
 */
import { statSync } from 'node:fs';
import { denoiseLoop, type LoopOptions } from '../pipeline/loop.js';
import { KnowledgeBase } from './kb-file.js';
import { KeyIndex, lookupTrajectory } from './lookup.js';
import type { TrajectoryJob, TrajectoryStats } from './request.js';

// Keys up to this many bytes are held in memory per worker; larger bases are
// searched a window at a time from the file (exact only).
const MEMORY_LIMIT = Number(process.env.RAGDIFF_KB_MEMORY_BYTES ?? 2 ** 31);

interface Cached {
  kb: KnowledgeBase;
  index: KeyIndex | null;
  size: number;
  nlist: number | null;
}
const cache = new Map<string, Cached>();

function open(job: TrajectoryJob): Cached {
  const size = statSync(job.kbPath).size;
  let c = cache.get(job.kbPath);
  if (c && c.size !== size) {
    c.kb.close();
    cache.delete(job.kbPath);
    c = undefined;
  }
  if (!c) {
    const kb = KnowledgeBase.open(job.kbPath);
    const [ch, h, w] = kb.header.latentShape;
    c = { kb, index: kb.count * ch * h * w * 4 <= MEMORY_LIMIT ? KeyIndex.fromBase(kb) : null, size, nlist: null };
    cache.set(job.kbPath, c);
  }
  if (job.nlist !== undefined && c.index !== null && c.nlist !== job.nlist) {
    c.index.buildIvf(job.nlist, { iterations: 10, seed: 0 });
    c.nlist = job.nlist;
  }
  return c;
}

export interface JumpTarget {
  latent: Float32Array;
  history: Float32Array | null;
}

/** Looks up every image's query (batch × latentSize in `latent`); targets when all are within maxDistance. */
export function planJump(job: TrajectoryJob, latent: Float32Array, batch: number): { targets: JumpTarget | null; stats: Omit<TrajectoryStats, 'denoiserCalls' | 'denoiserCallsSaved'> } {
  const t0 = performance.now();
  const c = open(job);
  const D = latent.length / batch;
  const out = new Float32Array(latent.length);
  const hist = c.kb.header.history ? new Float32Array(latent.length) : null;
  const stats: Omit<TrajectoryStats, 'denoiserCalls' | 'denoiserCallsSaved'> = {
    jumped: false, keyStep: job.keyStep, valueStep: job.valueStep, k: job.k, distance: [], relativeDistance: [], residual: [], neighbours: [], lookupMs: 0,
    search: job.nprobe !== undefined && c.index ? 'ivf' : 'exact',
  };
  let far = -1;
  for (let b = 0; b < batch; b++) {
    const q = latent.subarray(b * D, (b + 1) * D);
    const r = lookupTrajectory(c.kb, q, {
      k: job.k, valueStep: job.valueStep, ...(c.index ? { index: c.index } : {}), ...(job.nprobe !== undefined && c.index ? { nprobe: job.nprobe } : {}),
    });
    let qn = 0;
    for (const v of q) qn += v * v;
    const d0 = r.neighbours[0]?.distance ?? Infinity;
    stats.distance.push(d0);
    stats.relativeDistance.push(qn > 0 ? d0 / Math.sqrt(qn) : Infinity);
    stats.residual.push(r.residual);
    stats.neighbours.push(r.neighbours.map((nb, j) => ({ index: nb.index, weight: r.weights[j]!, distance: nb.distance })));
    if (!(d0 <= job.maxDistance) && far < 0) far = b;
    out.set(r.latent, b * D);
    if (hist && r.history) hist.set(r.history, b * D);
  }
  stats.lookupMs = performance.now() - t0;
  if (far >= 0) {
    stats.fallback = `image ${far}'s nearest key is at distance ${stats.distance[far]!.toPrecision(4)}, beyond maxDistance ${job.maxDistance}: sampled in full`;
    return { targets: null, stats };
  }
  stats.jumped = true;
  return { targets: { latent: out, history: hist }, stats };
}

/**
 * Samples to the key step, looks up, then either jumps to the value step
 * (re-entering the schedule there with the blended history) or, beyond
 * maxDistance, continues from the key step with the sampler state intact
 * (exactly full sampling).
 */
export async function denoiseWithJump(loop: LoopOptions, job: TrajectoryJob, batch: number): Promise<{ nfe: number; stats: TrajectoryStats }> {
  const start = loop.startIndex ?? 0;
  const total = loop.scheduler.timesteps.length;
  let nfe = await denoiseLoop({ ...loop, endIndex: job.keyStep });
  const { targets, stats } = planJump(job, loop.buffers.latent, batch);
  if (targets) {
    loop.buffers.latent.set(targets.latent);
    nfe += await denoiseLoop({ ...loop, startIndex: job.valueStep, history: targets.history });
  } else {
    nfe += await denoiseLoop({ ...loop, startIndex: job.keyStep, continues: true });
  }
  return { nfe, stats: { ...stats, denoiserCalls: nfe, denoiserCallsSaved: total - start - nfe } };
}
