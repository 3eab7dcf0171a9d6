/**
 * Retrieval-augmented generation benchmark (issue 10), on the Twemoji demo
 * store with the tiny-emoji bundle, k = 4, 25 steps:
 *
 *  (a) each mode's time per image relative to plain CFG (RagPipeline without retrieval), batch 1 and 4;
 *  (b) retrieval + re-ranking cost per image (stats.retrieval.totalMs, reflective's draft excluded and
 *      reported apart) relative to generation — target ≤ 5%;
 *  (c) the main thread's event-loop p99 (monitorEventLoopDelay, 1 ms resolution) during a burst of
 *      8 concurrent retrieval-augmented generations — target ≤ 20 ms — beside a burst of 8 plain
 *      generations and a burst of 8 text queries to the store;
 *  (d) reflective re-ranking's extra cost.
 *
 * Arms are interleaved within each round (the order rotates per round) and every figure is the median
 * over rounds: the machine is shared and noisy, so compare ratios, not absolute times.
 *
 *   npm run bench rag               # 5 rounds
 *   npm run bench rag -- --quick    # 2 rounds
 *   npm run bench rag -- --rounds 8
 */
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RagPipeline, type RagRequest, type RagResult, type RetrievalMode } from '../src/rag/index.js';
import { openDemoStore } from '../src/store/demo.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const roundsArg = args.indexOf('--rounds');
const ROUNDS = roundsArg >= 0 ? Number(args[roundsArg + 1]) : quick ? 2 : 5;
const BURST_ROUNDS = quick ? 2 : 5;
const STEPS = 25;
const K = 4;
const TEXT_SCALE = 3; // the bundle's s_t: plain CFG runs at the same text scale
const BATCHES = [1, 4] as const;
/** Held-out and training concepts alike (retrieval cost does not depend on which). */
const PROMPTS = ['red apple', 'tulip', 'penguin', 'grinning face', 'rocket', 'cat face', 'banana', 'red heart'];

/** Each mode alone (the bundle's default reference attention off), plus the tiny-emoji default with it. */
type Arm = { name: string; retrieval?: { mode: RetrievalMode; reflective?: boolean; attention?: boolean; branches?: 'prompt' | 'retrieval' } };
const ARMS: Arm[] = [
  { name: 'plain CFG (no retrieval)' },
  { name: 'tokens', retrieval: { mode: 'tokens' } },
  { name: 'mixture', retrieval: { mode: 'mixture' } },
  { name: 'interleaved', retrieval: { mode: 'interleaved' } },
  { name: 'reference-init', retrieval: { mode: 'reference-init' } },
  { name: 'tokens + reflective', retrieval: { mode: 'tokens', reflective: true } },
  { name: 'tokens + reference attention on both prompt branches', retrieval: { mode: 'tokens', attention: true, branches: 'prompt' } },
  { name: 'tokens + reference attention on the retrieval branch (tiny-emoji default)', retrieval: { mode: 'tokens', attention: true } },
];

const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

interface Sample {
  /** generate() wall time per image, retrieval included. */
  perImageMs: number;
  /** Process CPU time (all threads: main, pipeline worker, ONNX Runtime pools) per image — less sensitive to other processes on a shared machine. */
  cpuPerImageMs: number;
  /** The pipeline's own wall time for the request (generation only). */
  genMs: number;
  stepsRun: number;
  branches: number;
  retrievalMs: number;
  draftMs: number;
  rerankMs: number;
  queryMs: number;
  searchMs: number;
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  let t0 = performance.now();
  const store = await openDemoStore({ dataset: 'twemoji' });
  const storeMs = performance.now() - t0;
  t0 = performance.now();
  const rag = await RagPipeline.load(join(root, 'models', 'tiny-emoji'));
  const loadMs = performance.now() - t0;
  console.log(`store: ${store.size} images (${f1(storeMs)} ms to open); bundle loaded in ${f1(loadMs)} ms; ${ROUNDS} rounds`);

  let n = 0;
  const request = (arm: Arm, batch: number, seed: number): RagRequest => ({
    prompt: PROMPTS[seed % PROMPTS.length]!, seed, steps: STEPS, batch, guidanceScale: TEXT_SCALE,
    ...(arm.retrieval ? { retrieval: { store, k: K, mode: arm.retrieval.mode, ...(arm.retrieval.reflective ? { reflective: true } : {}), ...(arm.retrieval.attention ? (arm.retrieval.branches ? { referenceAttention: { branches: arm.retrieval.branches } } : {}) : { referenceAttention: false as const }) } } : {}),
  });
  const once = async (arm: Arm, batch: number): Promise<Sample> => {
    const c0 = process.cpuUsage();
    const t = performance.now();
    const r: RagResult = await rag.generate(request(arm, batch, n++));
    const wall = performance.now() - t;
    const cpu = process.cpuUsage(c0);
    const rs = r.stats.retrieval;
    return {
      perImageMs: wall / batch, cpuPerImageMs: (cpu.user + cpu.system) / 1000 / batch, genMs: r.stats.timings!.wallMs, stepsRun: r.stats.stepsRun!, branches: r.stats.branches!,
      retrievalMs: rs ? rs.totalMs - rs.draftMs : 0, draftMs: rs?.draftMs ?? 0, rerankMs: rs?.rerankMs ?? 0, queryMs: rs?.queryMs ?? 0, searchMs: rs?.searchMs ?? 0,
    };
  };

  // Warm-up: every arm once at each batch size (sessions, the store's index pages, the encoders).
  for (const arm of ARMS) for (const b of BATCHES) await once(arm, b);

  // (a, b, d) Interleaved rounds; the arm order rotates each round.
  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < ARMS.length; i++) {
      const arm = ARMS[(i + round) % ARMS.length]!;
      for (const b of round % 2 ? [...BATCHES].reverse() : BATCHES) {
        const key = `${arm.name}|${b}`;
        const s = await once(arm, b);
        samples.set(key, [...(samples.get(key) ?? []), s]);
      }
    }
    console.log(`round ${round + 1}/${ROUNDS} done`);
  }
  const med = (arm: Arm, b: number, f: (s: Sample) => number) => median((samples.get(`${arm.name}|${b}`) ?? []).map(f));

  const modeRows: string[] = [];
  const costRows: string[] = [];
  for (const arm of ARMS) {
    const cells = BATCHES.map((b) => {
      const per = med(arm, b, (s) => s.perImageMs);
      const base = med(ARMS[0]!, b, (s) => s.perImageMs);
      const cpu = med(arm, b, (s) => s.cpuPerImageMs);
      const cpuBase = med(ARMS[0]!, b, (s) => s.cpuPerImageMs);
      return `${f1(per)} | **${f2(per / base)}×** | ${f1(cpu)} | **${f2(cpu / cpuBase)}×**`;
    });
    const first = samples.get(`${arm.name}|1`)![0]!;
    modeRows.push(`| ${arm.name} | ${first.branches} | ${first.stepsRun} | ${cells.join(' | ')} |`);
    if (!arm.retrieval) continue;
    const cost = BATCHES.map((b) => {
      const ret = med(arm, b, (s) => s.retrievalMs);
      const ratio = med(arm, b, (s) => s.retrievalMs / s.genMs);
      const best = Math.min(...samples.get(`${arm.name}|${b}`)!.map((s) => s.retrievalMs / s.genMs));
      return `${f1(ret / b)} | **${pct(ratio)}** | ${pct(best)}`;
    });
    costRows.push(`| ${arm.name} | ${f1(med(arm, 1, (s) => s.queryMs))} | ${f1(med(arm, 1, (s) => s.searchMs))} | ${f2(med(arm, 1, (s) => s.rerankMs))} | ${cost.join(' | ')} |`);
  }
  const tokens = ARMS[1]!;
  const reflective = ARMS[5]!;
  const reflectiveRows = BATCHES.map((b) => {
    const extra = med(reflective, b, (s) => s.perImageMs) - med(tokens, b, (s) => s.perImageMs);
    const extraCpu = med(reflective, b, (s) => s.cpuPerImageMs) - med(tokens, b, (s) => s.cpuPerImageMs);
    const draft = med(reflective, b, (s) => s.draftMs);
    return `| batch ${b} | ${f1(draft)} | ${f2(med(reflective, b, (s) => s.rerankMs))} | ${f1(extra)} | **${pct(extra / med(tokens, b, (s) => s.perImageMs))}** | ${f1(extraCpu)} | **${pct(extraCpu / med(tokens, b, (s) => s.cpuPerImageMs))}** | ${pct(draft / med(reflective, b, (s) => s.genMs))} |`;
  });

  // (c) Bursts of 8 concurrent calls: event-loop delay on the main thread, median over rounds.
  const burst = async (label: string, one: (i: number) => Promise<unknown>) => {
    const p50: number[] = [];
    const p99: number[] = [];
    const max: number[] = [];
    const wall: number[] = [];
    for (let round = 0; round < BURST_ROUNDS; round++) {
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const t = performance.now();
      await Promise.all(Array.from({ length: 8 }, (_, i) => one(round * 8 + i)));
      wall.push(performance.now() - t);
      h.disable();
      p50.push(h.percentile(50) / 1e6);
      p99.push(h.percentile(99) / 1e6);
      max.push(h.max / 1e6);
    }
    return `| ${label} | ${f1(median(p50))} | **${f1(median(p99))}** | ${f1(median(max))} | ${f1(median(wall))} |`;
  };
  const burstRows: string[] = [];
  burstRows.push(await burst('8 concurrent rag.generate, tokens k = 4 (queued on 1 worker)', (i) => rag.generate(request(tokens, 1, 1000 + i))));
  burstRows.push(await burst('8 concurrent rag.generate, reference-init k = 4', (i) => rag.generate(request(ARMS[4]!, 1, 2000 + i))));
  burstRows.push(await burst('8 concurrent plain generations (no retrieval)', (i) => rag.generate(request(ARMS[0]!, 1, 3000 + i))));
  // A query burst alone lasts a few ms, too short for the histogram: 16 bursts of 8 back to back in one window.
  burstRows.push(await burst('16 × 8 concurrent store text queries, k = 4 (no generation)', async (i) => {
    if (i % 8 !== 0) return;
    for (let j = 0; j < 16; j++) await Promise.all(Array.from({ length: 8 }, (_, q) => store.query({ text: PROMPTS[(i + j + q) % PROMPTS.length]!, k: K })));
  }));
  await rag.close();
  await store.close();
  const load1 = loadavg()[0]!;
  const busy = Math.max(load0, load1) > 2 * cpus().length;
  const busyNote = busy
    ? ` **The load average was well above the ${cpus().length} cores: wall-clock medians are dominated by scheduling (they can even rank a cheaper arm slower), so the CPU-time ratios are the figures to read in (a) and (d).**`
    : '';

  const md = `Bundle \`models/tiny-emoji\` (64×64, ${STEPS} steps DDIM, 1 worker, ONNX Runtime CPU), Twemoji demo store (${store.size} images, tiny-emoji CLIP, exact search below 2048 vectors), k = ${K}, s_t = ${TEXT_SCALE}, s_r = 4 (the bundle's). Plain CFG runs at guidance ${TEXT_SCALE} with no retrieval. Medians over ${ROUNDS} interleaved rounds (arm order rotated each round, prompts cycling through ${PROMPTS.length} held-out and training names). Load average (1 min) ${f2(load0)} at the start, ${f2(load1)} at the end: other work shared the machine, so read ratios, not absolute times.${busyNote}

**(a) Time per image by mode** (generate() wall time / batch, retrieval included; and the process's CPU time over all its threads / batch, which other processes on the machine disturb less than wall time). *Branches* = UNet conditions batched into one call per step; reference-init at strength 0.7 runs 70% of the steps.

| arm | branches | steps run | batch 1 wall ms/image | vs CFG | CPU ms/image | vs CFG | batch 4 wall ms/image | vs CFG | CPU ms/image | vs CFG |
|---|---|---|---|---|---|---|---|---|---|---|
${modeRows.join('\n')}

**(b) Retrieval + re-ranking cost** = \`stats.retrieval.totalMs\` minus reflective's draft (query embedding, search, pinned/uploads, screen, re-rank, plan), per image, and relative to the generation it precedes (per request: retrieval ms / pipeline wall ms; the median over rounds, and the round least disturbed by other processes). Target ≤ 5%. Both are wall-clock times on the main thread, so they carry the machine's scheduling noise (a search that takes under 1 ms can read 15 ms in a busy round).

| arm | query embed ms | search ms | re-rank ms | batch 1 ms/image | vs generation | (least disturbed round) | batch 4 ms/image | vs generation | (least disturbed round) |
|---|---|---|---|---|---|---|---|---|---|
${costRows.join('\n')}

**(d) Reflective re-ranking** (RealRAG: a ${6}-step draft without retrieval, embedded, candidates re-ranked by sim(query, ref) − λ·sim(draft, ref)) on top of tokens mode:

| | draft ms (per request) | re-rank ms | extra wall ms/image vs tokens | extra vs tokens | extra CPU ms/image | extra vs tokens (CPU) | draft vs its generation (wall) |
|---|---|---|---|---|---|---|---|
${reflectiveRows.join('\n')}

**(c) Main-thread event-loop delay** (\`monitorEventLoopDelay\`, resolution 1 ms) during bursts of 8 calls submitted at once; medians over ${BURST_ROUNDS} bursts each. Target ≤ 20 ms for the retrieval-augmented burst.

| burst | p50 ms | p99 ms | max ms | burst wall ms |
|---|---|---|---|---|
${burstRows.join('\n')}

The store's text and image encoders run in worker threads (\`src/models/encoder-pool.ts\`): a request's query embedding is dispatched, not run, on the main thread. The token-mode burst runs tokens without the default reference attention.`;
  writeResultsSection('Retrieval-augmented generation', md, `npm run bench rag${quick ? ' -- --quick' : roundsArg >= 0 ? ` -- --rounds ${ROUNDS}` : ''}`);
  console.log(md);
}

await main();
