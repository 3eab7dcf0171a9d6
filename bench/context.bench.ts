/**
 * Conditioning fusion benchmark (issue 10): building the batched
 * encoder_hidden_states for all guidance branches with the native kernel
 * (src/pipeline/context.ts → native/core/context_fusion.cc) vs the TypeScript
 * assembly it replaced (test/reference/context.ts: Float32Array.set per row and
 * fill for zeros), at tiny-emoji size (16 text + 4 neighbour tokens × 128,
 * 2–4 branches, batch 1–16) and Stable Diffusion size (77 + 4 tokens × 768,
 * 4 branches, batch 8 and 32). Also with fractional neighbour weights (the retrieval
 * modes' scaling path), and `Float32Array.prototype.set` of the whole output as
 * the memory floor. Where a CUDA device is usable, the device-resident twin.
 *
 *   npm run bench context                                   # CPU section (+ CUDA section when a device is usable)
 *   node dist/bench/context.bench.js --gpu-only [--json=f]   # CUDA section only
 *   node dist/bench/context.bench.js --gpu-from=f.json       # write a CUDA section measured elsewhere
 *   --quick                                                 # one round, shorter timings
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Bench } from 'tinybench';
import { native } from '../src/native.js';
import { branchContext, buildEncoderHiddenStates, type ContextLayout } from '../src/pipeline/context.js';
import type { GuidanceBranch } from '../src/pipeline/guidance.js';
import { referenceEncoderHiddenStates } from '../test/reference/context.js';
import { seededRandom } from '../test/helpers.js';
import { machineDescription, writeResultsSection } from './results.js';

const args = process.argv.slice(2);
const arg = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const gpuOnly = args.includes('--gpu-only');
const quick = args.includes('--quick');
const n = native();

interface Shape { label: string; branches: number; batch: number; textLength: number; slots: number; width: number }
const SHAPES: Shape[] = [
  ...[2, 3, 4].flatMap((branches) => [1, 4, 16].map((batch) => ({ label: `tiny-emoji ${branches}×${batch}`, branches, batch, textLength: 16, slots: 4, width: 128 }))),
  { label: 'SD 4×8', branches: 4, batch: 8, textLength: 77, slots: 4, width: 768 },
  { label: 'SD 4×32', branches: 4, batch: 32, textLength: 77, slots: 4, width: 768 },
];

/** Median ms per call of fn (tinybench). */
async function time(fn: () => void, budgetMs = quick ? 100 : 250): Promise<number> {
  const b = new Bench({ time: budgetMs, warmupTime: 50 });
  b.add('x', fn);
  await b.run();
  const r = b.tasks[0]!.result;
  if (r.state !== 'completed') throw new Error(`benchmark task ${r.state}`, { cause: (r as { error?: unknown }).error });
  return r.latency.p50 ?? r.period;
}

const rand = seededRandom(77);
const randomArray = (len: number) => Float32Array.from({ length: len }, () => rand() * 2 - 1);

/**
 * The branches a retrieval mode would send: unconditional and text-only
 * without neighbours, the rest with their own neighbour tokens (as image_proj
 * gives them). `weighted`: fractional relevance weights on every neighbour slot.
 */
function branchesFor(s: Shape, weighted: boolean): GuidanceBranch[] {
  return Array.from({ length: s.branches }, (_, b) => {
    const withNb = b === s.branches - 1 || (b >= 2 && b % 2 === 0);
    if (!withNb) return { text: b === 0 ? 1 : 0 };
    const neighbourWeights = weighted ? Float32Array.from({ length: s.slots }, (_, k) => 1 / (k + 1.5)) : null;
    return { text: 0, neighbours: randomArray(s.slots * s.width), neighbourWeights };
  });
}

interface Row { shape: Shape; mib: number; tsMs: number; nativeMs: number; kernelMs: number; kernel1Ms: number; tsWMs: number; nativeWMs: number; floorMs: number }

async function cpuSection(): Promise<string> {
  const rows: Row[] = [];
  for (const s of SHAPES) {
    const layout: ContextLayout = { batch: s.batch, textLength: s.textLength, slots: s.slots, width: s.width };
    const textStates = randomArray(2 * s.textLength * s.width);
    const plain = branchesFor(s, false), weighted = branchesFor(s, true);
    const len = s.branches * s.batch * (s.textLength + s.slots) * s.width;
    const out = new Float32Array(len), src = randomArray(len);
    // The raw kernel: rows prepared once (what a caller re-fusing into a reused buffer pays).
    const ctx = branchContext(plain, s.batch, layout);
    const kernel = () => n.fuseContext(out, ctx.rows.text.length, s.textLength, s.slots, s.width, textStates, ctx.rows.text, ctx.neighbourTokens, ctx.rows.neighbours, ctx.weights);
    const row: Row = { shape: s, mib: (4 * len) / 2 ** 20, tsMs: Infinity, nativeMs: Infinity, kernelMs: Infinity, kernel1Ms: Infinity, tsWMs: Infinity, nativeWMs: Infinity, floorMs: Infinity };
    // Interleaved rounds, best median of each: the machine is shared.
    for (let round = 0; round < (quick ? 1 : 3); round++) {
      row.tsMs = Math.min(row.tsMs, await time(() => referenceEncoderHiddenStates(out, layout, plain, textStates)));
      row.nativeMs = Math.min(row.nativeMs, await time(() => buildEncoderHiddenStates(out, layout, plain, textStates)));
      row.kernelMs = Math.min(row.kernelMs, await time(kernel));
      const threads = n.threadCount();
      n.setThreadCount(1);
      row.kernel1Ms = Math.min(row.kernel1Ms, await time(kernel));
      n.setThreadCount(threads);
      row.tsWMs = Math.min(row.tsWMs, await time(() => referenceEncoderHiddenStates(out, layout, weighted, textStates)));
      row.nativeWMs = Math.min(row.nativeWMs, await time(() => buildEncoderHiddenStates(out, layout, weighted, textStates)));
      row.floorMs = Math.min(row.floorMs, await time(() => out.set(src)));
    }
    rows.push(row);
    console.log(`${s.label}: TS ${us(row.tsMs)} µs, native ${us(row.nativeMs)} µs (kernel ${us(row.kernelMs)}, 1 thread ${us(row.kernel1Ms)}), weighted TS ${us(row.tsWMs)} / native ${us(row.nativeWMs)} µs, floor ${us(row.floorMs)} µs`);
  }
  const sd = rows.find((r) => r.shape.label === 'SD 4×8')!, big = rows.find((r) => r.shape.label === 'SD 4×32')!;
  const tiny = rows.filter((r) => r.shape.label.startsWith('tiny'));
  const ratio = (r: Row) => r.tsMs / r.nativeMs, ratioW = (r: Row) => r.tsWMs / r.nativeWMs;
  return [
    `Threads: up to ${n.threadCount()} (of ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)} at the start of the section; the kernel wakes the pool from 2^22 output floats (16 MiB), so only SD 4×32 runs on more than one). Times are best medians (µs) of ${quick ? 'one round' : 'three interleaved rounds'} per call. **TS** = the TypeScript assembly the kernel replaced (\`Float32Array.set\` per row, \`fill\` for zeros; with weights, a per-element multiply loop); **native** = \`buildEncoderHiddenStates\` as the runner calls it (row mapping + packing of the neighbour sets + validation + kernel); **kernel** = the binding call alone with prepared rows (and with the pool limited to 1 thread); **floor** = one \`Float32Array.set\` of the whole output. Weighted = fractional relevance weights on every neighbour slot. Branches: unconditional and text-only without neighbours, the others with their own neighbour tokens.`,
    '',
    '| shape (branches × batch) | tokens × width | output | TS µs | native µs | kernel µs | kernel, 1 thread µs | TS / native | weighted TS µs | weighted native µs | TS / native (weighted) | floor µs |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.shape.label} | ${r.shape.textLength} + ${r.shape.slots} × ${r.shape.width} | ${r.mib.toFixed(2)} MiB | ${us(r.tsMs)} | ${us(r.nativeMs)} | ${us(r.kernelMs)} | ${us(r.kernel1Ms)} | ${ratio(r).toFixed(1)}× | ${us(r.tsWMs)} | ${us(r.nativeWMs)} | ${ratioW(r).toFixed(1)}× | ${us(r.floorMs)} |`),
    '',
    `Summary: at tiny-emoji size native is ${minMax(tiny.map(ratio))}× the TS assembly unweighted and ${minMax(tiny.map(ratioW))}× weighted (above 1× = native faster); at SD size ${ratio(sd).toFixed(1)}× and ${ratioW(sd).toFixed(1)}×, the kernel taking ${(sd.kernelMs / sd.floorMs).toFixed(2)}× the time of one \`set\` of the output. Both sides are memory-bound copies (the output is rewritten in cache here); the native path's fixed cost (row mapping, packing, validation, one N-API call: about 2 µs) dominates at tiny sizes; the vectorised multiply wins once neighbour slots are weighted. At SD 4×32 (past the pool threshold) the pool ${big.kernelMs < big.kernel1Ms ? 'pays' : 'does not pay'} on this machine: ${us(big.kernelMs)} µs vs ${us(big.kernel1Ms)} µs on one thread.`,
    '',
    'The fusion runs once per generation (the buffer is reused for every step), so against a UNet call it is noise either way; what the kernel buys is one pass with per-slot weights and no per-slot JavaScript, and a bit-identical CUDA twin for device-resident conditioning.',
  ].join('\n');
}

const us = (ms: number) => (ms * 1000).toFixed(ms < 0.01 ? 2 : 1);
const minMax = (v: number[]) => `${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}`;

interface GpuRun { device: string; host: string; rows: { label: string; floats: number; ms: number; gbs: number; copyGbs: number }[] }

function gpuMeasure(): GpuRun | null {
  if (!n.cuda.available()) {
    console.log(`CUDA section skipped: ${n.cuda.reason()}`);
    return null;
  }
  const shapes = [...SHAPES, { label: 'SD 4×64', branches: 4, batch: 64, textLength: 77, slots: 4, width: 768 }];
  const rows = shapes.map((s) => {
    const r = n.cuda.fuseContextBench(s.branches * s.batch, s.textLength, s.slots, s.width, 2, 200);
    const floats = s.branches * s.batch * (s.textLength + s.slots) * s.width;
    console.log(`${s.label}: ${(r.ms * 1000).toFixed(1)} µs, ${r.gbs.toFixed(0)} GB/s (copy ${r.copyGbs.toFixed(0)} GB/s)`);
    return { label: s.label, floats, ms: r.ms, gbs: r.gbs, copyGbs: r.copyGbs };
  });
  return { device: n.cuda.deviceName(), host: machineDescription(), rows };
}

function gpuMarkdown(run: GpuRun): string {
  return [
    `Device: **${run.device}**. Device-resident buffers, every row with its own neighbour set and weights 0.5 (the scaling path); µs per fusion and GB/s (bytes read + written; each output float reads one input float) from CUDA events over 200 launches; copy = \`cudaMemcpyAsync\` device to device of the output's size.`,
    '',
    '| shape (branches × batch) | output floats | µs | GB/s | copy GB/s |',
    '|---|---:|---:|---:|---:|',
    ...run.rows.map((r) => `| ${r.label} | ${r.floats.toLocaleString('en-US')} | ${(r.ms * 1000).toFixed(1)} | ${r.gbs.toFixed(0)} | ${r.copyGbs.toFixed(0)} |`),
    '',
    'Bit-identity with the CPU kernel is tested in test/context-fusion.test.ts (same run when a device is present).',
  ].join('\n');
}

async function main(): Promise<void> {
  const from = arg('gpu-from');
  if (from) {
    const run = JSON.parse(readFileSync(from, 'utf8')) as GpuRun;
    writeResultsSection('Conditioning fusion on CUDA', gpuMarkdown(run), 'node dist/bench/context.bench.js --gpu-only', `${run.device}; host ${run.host}`);
    return;
  }
  if (!gpuOnly) writeResultsSection('Conditioning fusion (CPU)', await cpuSection(), `npm run bench context${quick ? ' -- --quick' : ''}`);
  const run = gpuMeasure();
  if (run) {
    const json = arg('json');
    if (json) writeFileSync(json, JSON.stringify(run, null, 2));
    writeResultsSection('Conditioning fusion on CUDA', gpuMarkdown(run), 'node dist/bench/context.bench.js --gpu-only', `${run.device}; host ${run.host}`);
  }
}

await main();
