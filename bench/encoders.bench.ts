/**
 * The tiny-emoji CLIP encoders in-thread ({ workers: 0 }) against worker-hosted
 * ({ workers: 1 | 2 }), issue 10 "model work off the main thread":
 * - event-loop delay (perf_hooks.monitorEventLoopDelay, p50/p99/max) during a
 *   burst of 64 single-text queries and 16 embedImages calls of 32 images
 *   (64×64), all started at once;
 * - embedImages throughput for 4,096 64×64 images, as one call and as 128
 *   sequential calls of 32 (the store's ingest batch).
 *
 *   npm run bench encoders              # 3 burst repetitions, 2 throughput repetitions
 *   npm run bench encoders -- --quick   # 1 and 1
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { decodeImage } from '../src/image/decode.js';
import { loadClipEncoders, type ClipEncoders, type RgbImage } from '../src/models/encoders.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const quick = process.argv.includes('--quick');
const BURST_REPS = quick ? 1 : 3;
const THROUGHPUT_REPS = quick ? 1 : 2;
const N_IMAGES = 4096;
const bundle = join(root, 'models', 'tiny-emoji');
const f1 = (x: number) => x.toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const MODES = [
  { label: 'in-thread (workers: 0)', workers: 0 },
  { label: '1 worker', workers: 1 },
  { label: '2 workers', workers: 2 },
] as const;

async function loadImages(): Promise<RgbImage[]> {
  const dir = join(root, 'node_modules', 'emoji-datasource-twitter', 'img', 'twitter', '64');
  const files = readdirSync(dir).filter((f) => f.endsWith('.png')).sort();
  const distinct: RgbImage[] = [];
  for (const f of files.slice(0, N_IMAGES)) distinct.push(await decodeImage(readFileSync(join(dir, f)), { width: 64, height: 64 }));
  return Array.from({ length: N_IMAGES }, (_, i) => distinct[i % distinct.length]!);
}

interface Burst {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  wallMs: number;
}

/** Starts every call at once and records the event-loop delay until all have answered. */
async function burst(enc: ClipEncoders, images: RgbImage[], rep: number): Promise<Burst> {
  const queries = Array.from({ length: 64 }, (_, i) => `emoji ${rep}-${i}: a red apple next to a dog`);
  const batches = Array.from({ length: 16 }, (_, b) => images.slice(b * 32, (b + 1) * 32));
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  // The histogram records the gap between two ticks of its timer: let it tick once before the burst.
  await new Promise((r) => setTimeout(r, 5));
  const t0 = performance.now();
  await Promise.all([...queries.map((q) => enc.embedText([q])), ...batches.map((b) => enc.embedImages(b))]);
  const wallMs = performance.now() - t0;
  // The delay of a blocked loop is recorded by the sampling timer that fires after it: let it fire.
  await new Promise((r) => setTimeout(r, 5));
  h.disable();
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, samples: h.count, wallMs };
}

interface Throughput {
  oneCall: number;
  batches32: number;
  /** CPU time of the whole process (every thread, workers included) per image, one call of N. */
  cpuMsPerImage: number;
}

async function throughput(enc: ClipEncoders, images: RgbImage[]): Promise<Throughput> {
  let t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const all = await enc.embedImages(images);
  const cpu = process.cpuUsage(cpu0);
  if (all.length !== images.length) throw new Error('wrong number of embeddings');
  const oneCall = images.length / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let s = 0; s < images.length; s += 32) await enc.embedImages(images.slice(s, s + 32));
  const batches32 = images.length / ((performance.now() - t0) / 1000);
  return { oneCall, batches32, cpuMsPerImage: (cpu.user + cpu.system) / 1000 / images.length };
}

/** The machine's own noise: the same measurement over a quiet wait. */
async function idle(ms: number): Promise<Burst> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, ms));
  h.disable();
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, samples: h.count, wallMs: ms };
}

const images = await loadImages();
const encoders: ClipEncoders[] = [];
for (const mode of MODES) {
  const enc = await loadClipEncoders(bundle, { workers: mode.workers });
  // Warm-up: first runs allocate and optimise.
  await enc.embedText(['warm up']);
  await enc.embedImages(images.slice(0, 64));
  encoders.push(enc);
}
// Repetitions alternate between the modes, so that the load of the shared machine drifts over all of them alike.
const bursts: Burst[][] = MODES.map(() => []);
for (let r = 0; r < BURST_REPS; r++) {
  for (const [m, enc] of encoders.entries()) {
    bursts[m]!.push(await burst(enc, images, r));
    console.log(MODES[m]!.label, 'burst', bursts[m]!.at(-1));
  }
}
const quiet: Burst[] = [];
for (let r = 0; r < BURST_REPS; r++) quiet.push(await idle(3000));
const tputs: Throughput[][] = MODES.map(() => []);
for (let r = 0; r < THROUGHPUT_REPS; r++) {
  for (const [m, enc] of encoders.entries()) {
    tputs[m]!.push(await throughput(enc, images));
    console.log(MODES[m]!.label, 'throughput', tputs[m]!.at(-1));
  }
}
for (const enc of encoders) await enc.close();

const rows = MODES.map((mode, m) => {
  const bs = bursts[m]!;
  const med = (k: keyof Burst) => median(bs.map((x) => x[k]));
  return `| ${mode.label} | ${f1(med('p50'))} | ${f1(med('p99'))} | ${f1(med('max'))} | ${bs.map((x) => f1(x.p99)).join(' / ')} | ${med('samples')} | ${med('wallMs').toFixed(0)} |`;
});
{
  const med = (k: keyof Burst) => median(quiet.map((x) => x[k]));
  rows.unshift(`| no calls (a 3 s wait: the machine's noise) | ${f1(med('p50'))} | ${f1(med('p99'))} | ${f1(med('max'))} | ${quiet.map((x) => f1(x.p99)).join(' / ')} | ${med('samples')} | — |`);
}
const tputRows = MODES.map((mode, m) => {
  const t = tputs[m]!;
  const best = { oneCall: Math.max(...t.map((x) => x.oneCall)), batches32: Math.max(...t.map((x) => x.batches32)) };
  const cpuMs = Math.min(...t.map((x) => x.cpuMsPerImage));
  return `| ${mode.label} | ${best.oneCall.toFixed(0)} | ${best.batches32.toFixed(0)} | ${t.map((x) => `${x.oneCall.toFixed(0)}/${x.batches32.toFixed(0)}`).join(', ')} | ${cpuMs.toFixed(2)} | ${((availableParallelism() * 1000) / cpuMs).toFixed(0)} |`;
});

const md = `
Event-loop delay on the caller's thread (\`monitorEventLoopDelay\`, 1 ms resolution) while a burst
of 64 \`embedText([query])\` calls and 16 \`embedImages(32 × 64×64)\` calls, all started at once, is
answered. Median of ${BURST_REPS} bursts; the p99 of each burst is listed too. In-thread, the loop is
blocked for nearly the whole burst, so the sampling timer fires only a few times and p99 ≈ max ≈
the burst itself (few samples). Threads: in-thread uses
ONNX Runtime's default intra-op threads; workers get ${availableParallelism()} cores / workers each, no spinning.

| encoders | p50 ms | p99 ms | max ms | p99 per burst | samples | burst wall ms |
|---|---|---|---|---|---|---|
${rows.join('\n')}

\`embedImages\` throughput, ${N_IMAGES} Twemoji images at 64×64 (decoding not included), images/s,
best of ${THROUGHPUT_REPS}: one call of ${N_IMAGES}, and 128 sequential calls of 32 (the store's ingest
batch; with 2 workers each call is split 16 + 16).

| encoders | one call | 128 × 32 | each run (one call / 128 × 32) | CPU ms / image | ≈ ceiling on ${availableParallelism()} idle cores |
|---|---|---|---|---|---|
${tputRows.join('\n')}

CPU ms / image: the process's CPU time (all threads, workers included; \`process.cpuUsage\`) over the
one-call run, the lowest of the runs. The ceiling column is an estimate, not a measurement: the
cores divided by that CPU time, i.e. what the encoder would reach with the whole machine to itself
and perfect scaling (spin-waiting intra-op threads in-thread count as CPU time, which lowers their
estimate). The store's ingest also decodes, hashes and commits (see the store section). The machine is shared by several engineers' builds and tests while this
runs, so absolute figures are noisy; compare rows within one run.
`;
writeResultsSection('Encoders in worker threads (issue 10)', md, 'npm run bench encoders');
console.log(md);
