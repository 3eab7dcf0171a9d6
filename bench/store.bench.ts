/**
 * Image store benchmark (issue 5):
 * - ingest images/second (Twemoji PNGs: read, decode, hash, near-duplicate scan,
 *   embed, commit) with the tiny-emoji encoders and with a trivial encoder (the
 *   store's own overhead);
 * - query latency p50/p99 and recall@10 against exact search at 10k and 100k
 *   synthetic vectors of the encoder's width, unfiltered and filtered (10%, 1%),
 *   through the store's search strategy (VectorIndex.search), against the
 *   alternative: exact (brute-force) search;
 * - memory per vector;
 * - end-to-end store.search()/query() on the demo store.
 * Target: p99 ≤ 2 ms at 100k with recall@10 ≥ 0.95.
 *
 * - (issue 9) ingest with decode once and decode/embed overlapped, CPU per
 *   image; search latency in a reader process while another process ingests;
 *   open time of a 100k-image store (writer and reader).
 *
 *   npm run bench store                 # 10k and 100k
 *   npm run bench store -- --quick      # 10k only, fewer images
 *   npm run bench store -- --only=ingest   # only the ingest / concurrency / open section
 *   npm run bench store -- --only=exact    # only exact search 100k × 128: the JavaScript reference vs the native top-k
 *
 * - (issue 11) exact search moved from JavaScript to the native top-k the
 *   trajectory lookup uses (native/core/topk.cc): both in one run, as ratios.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { decodeImage } from '../src/image/decode.js';
import { loadClipEncoders, type ImageTextEncoder, type RgbImage } from '../src/models/encoders.js';
import { demoInputs, openDemoStore } from '../src/store/demo.js';
import { SqliteCatalogue, type NewImageRow } from '../src/store/catalogue.js';
import { embeddingToBlob } from '../src/store/schema.js';
import { ImageStore } from '../src/store/store.js';
import { native } from '../src/native.js';
import { DEFAULT_HNSW, VectorIndex, type Hit } from '../src/store/vectors.js';
import { referenceStoreExact } from '../test/reference/topk.js';
import { seededRandom } from '../test/helpers.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
const SIZES = quick ? [10_000] : [10_000, 100_000];
const QUERIES = 500;
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);
const gc = () => (globalThis as { gc?: () => void }).gc?.();

/** Deterministic normal samples (xorshift + Box–Muller). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i]! *= inv;
  return v;
}

type DataKind = 'embedding-like' | 'clustered' | 'uniform';

/**
 * Synthetic embeddings of width `dim`:
 * - 'embedding-like': mixtures of two real tiny-emoji image embeddings from
 *   the demo store plus a little noise (real embeddings occupy few directions:
 *   ~10 principal components hold 94% of their variance);
 * - 'clustered': unit vectors around 1,000 random centres with full-rank noise;
 * - 'uniform': isotropic Gaussian directions (the hardest case for a graph index).
 */
function makeVectors(n: number, dim: number, kind: DataKind, seed: number, real: Float32Array[]): Float32Array[] {
  const g = rng(seed);
  const u = seededRandom(seed + 1);
  const centres = Array.from({ length: 1000 }, () => normalise(Float32Array.from({ length: dim }, g)));
  const sigma = 0.8 / Math.sqrt(dim);
  return Array.from({ length: n }, (_, i) => {
    if (kind === 'uniform') return normalise(Float32Array.from({ length: dim }, g));
    if (kind === 'embedding-like') {
      const a = real[Math.floor(u() * real.length)]!;
      const b = real[Math.floor(u() * real.length)]!;
      const w = u();
      return normalise(Float32Array.from(a, (x, j) => w * x + (1 - w) * b[j]! + (0.1 / Math.sqrt(dim)) * g()));
    }
    const c = centres[(i * 7919) % centres.length]!;
    return normalise(Float32Array.from(c, (x) => x + sigma * g()));
  });
}

function recall(approx: Hit[], exact: Hit[]): number {
  const truth = new Set(exact.map((h) => h.label));
  return approx.filter((h) => truth.has(h.label)).length / Math.max(1, exact.length);
}

interface Latency {
  p50: number;
  p99: number;
  cpuP99: number;
  /** tinybench's mean, ms */
  mean: number;
}

/**
 * Per-call latency: p50/p99 of wall time over 3,000 timed calls after 300
 * warm-up calls, the p99 of per-call CPU time (process.cpuUsage: separates
 * preemption on a shared machine from work), and tinybench's mean.
 */
async function latency(name: string, fn: () => void, calls = 3000): Promise<Latency> {
  const bench = new Bench({ time: 1000, warmupTime: 200 });
  bench.add(name, fn);
  await bench.run();
  const r = bench.tasks[0]!.result as unknown as { latency: { mean: number } };
  for (let i = 0; i < 300; i++) fn();
  const wall = new Float64Array(calls);
  const cpu = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wall[i] = performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpu[i] = (c.user + c.system) / 1000;
  }
  wall.sort();
  cpu.sort();
  const at = (a: Float64Array, q: number) => a[Math.min(a.length - 1, Math.floor(q * a.length))]!;
  return { p50: at(wall, 0.5), p99: at(wall, 0.99), cpuP99: at(cpu, 0.99), mean: r.latency.mean };
}

/** A trivial encoder (4×4 mean colours) to measure the store without a model. */
function cheapEncoder(): ImageTextEncoder {
  return {
    dim: 48,
    id: 'bench-cheap',
    imageSize: { width: 16, height: 16 },
    async embedImages(images: readonly RgbImage[]) {
      return images.map((im) => {
        const v = new Float32Array(48);
        for (let i = 0; i < 256; i++) {
          const cell = (Math.floor(Math.floor(i / 16) / 4) * 4 + Math.floor((i % 16) / 4)) * 3;
          for (let c = 0; c < 3; c++) v[cell + c]! += im.rgb[i * 3 + c]! / 255 - 0.4;
        }
        return normalise(v.map((x) => x + 1e-3));
      });
    },
    async embedText(texts: readonly string[]) {
      return texts.map(() => normalise(new Float32Array(48).fill(1)));
    },
  };
}

const load = () => loadavg()[0]!.toFixed(1);

/** One timed ingest into an empty store; wall images/s and CPU ms per image (this process: JS, sharp's and ONNX's threads). */
async function timedIngest(encoder: ImageTextEncoder, inputs: ReturnType<typeof demoInputs>, extra: Record<string, number> = {}): Promise<{ n: number; ms: number; perSecond: number; cpuPerImage: number; load: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ragdiff-bench-'));
  try {
    const store = await ImageStore.open(dir, { encoder, ...extra });
    const before = load();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const report = await store.add(inputs);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    await store.close();
    const n = report.added + report.skipped;
    return { n, ms, perSecond: (n * 1000) / ms, cpuPerImage: (c.user + c.system) / 1000 / n, load: `${before}→${load()}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function ingestSection(clip: ImageTextEncoder): Promise<string> {
  const inputs = demoInputs('twemoji').slice(0, quick ? 300 : 1000);
  const rows: string[] = [];
  const configs: [string, ImageTextEncoder, Record<string, number>][] = [
    ['tiny-emoji encoders, defaults (batch 64, 2 embed calls in flight, 4 decodes)', clip, {}],
    ['tiny-emoji encoders, batch 256', clip, { batchSize: 256 }],
    ['tiny-emoji encoders, no overlap (1 embed call, 1 decode at a time)', clip, { embedInFlight: 1, decodeConcurrency: 1 }],
    ['trivial encoder (store overhead)', cheapEncoder(), {}],
  ];
  let best = 0;
  for (const [label, encoder, extra] of configs) {
    const r = await timedIngest(encoder, inputs, extra);
    if (encoder === clip) best = Math.max(best, r.perSecond);
    rows.push(`| ${label} | ${r.n} | ${f1(r.ms)} | **${f1(r.perSecond)}** | ${f2(r.cpuPerImage)} | ${f1(2000 / r.cpuPerImage)} | ${r.load} |`);
    console.log(`ingest ${label}: ${f1(r.perSecond)} images/s, ${f2(r.cpuPerImage)} CPU ms/image`);
  }
  // Where the time goes, per image: the one decode and the embedding.
  const bytes = readFileSync((inputs[0] as { path: string }).path);
  const size = clip.imageSize ?? { width: 64, height: 64 };
  let c0 = process.cpuUsage();
  for (let i = 0; i < 100; i++) await decodeImage(bytes, { width: size.width, height: size.height });
  let c = process.cpuUsage(c0);
  const decodeCpu = (c.user + c.system) / 1000 / 100;
  const img = await decodeImage(bytes, { width: size.width, height: size.height });
  const batch = Array.from({ length: 64 }, () => img);
  await clip.embedImages(batch);
  c0 = process.cpuUsage();
  for (let i = 0; i < 5; i++) await clip.embedImages(batch);
  c = process.cpuUsage(c0);
  const embedCpu = (c.user + c.system) / 1000 / (5 * 64);
  return [
    `Ingest of ${inputs.length} Twemoji PNGs (64×64, from emoji-datasource-twitter) into an empty store: read (regular-file checked), one decode per image (the perceptual hash is computed from the same pixels), SHA-256, near-duplicate scan, bytes written, embedded in batches with decode of the next batch overlapping the embedding, rows + vectors committed per batch, index saved at the end. Before issue 9: 213 images/s (two decodes per image, decode then embed then commit in strict turn, batches of 32).`,
    '',
    '| configuration | images | ms | images/s (wall) | CPU ms / image | images/s if 2 cores were free (2000 / CPU ms) | load average (1 min) before→after |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Per image, measured alone: decode ${f2(decodeCpu)} CPU ms (sharp: header, then one decode + resize), tiny-emoji image embedding ${f2(embedCpu)} CPU ms (batch 64). ` +
      `**Target ≥ 1,000 images/s: ${best >= 1000 ? 'met' : 'not met'}** (best ${f1(best)}/s wall). The machine's 2 cores are shared: the load average column says how many runnable processes competed; the CPU column is the work per image, and 2000 / CPU ms is what two free cores would give at most. ` +
      'The embedding alone costs about as much CPU as the 1 ms per image the target allows on two cores, so the target needs a cheaper image encoder call or more cores (the encoders move into worker threads in another change; the store keeps 2 calls in flight for them).',
  ].join('\n');
}

/** Child mode: a writer process that ingests while the bench process reads. */
async function writerChild(dir: string, count: number): Promise<void> {
  const clip = await loadClipEncoders(join(root, 'models', 'tiny-emoji'));
  const store = await ImageStore.open(dir, { encoder: clip, nearDuplicates: false, batchSize: 16 });
  const report = await store.add(demoInputs('twemoji').slice(100, 100 + count));
  await store.close();
  await clip.close();
  process.stdout.write(`done ${report.added}\n`);
}

async function concurrentSection(clip: ImageTextEncoder): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ragdiff-bench-'));
  try {
    const seed = await ImageStore.open(dir, { encoder: clip, nearDuplicates: false });
    await seed.add(demoInputs('twemoji').slice(0, 100));
    await seed.close();
    const reader = await ImageStore.open(dir, { encoder: clip, readOnly: true });
    const q = await reader.embedText('red apple');
    const count = quick ? 400 : 1000;
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--writer-child', dir, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    let running = true;
    const exited = new Promise<void>((r) => child.on('close', () => ((running = false), r())));
    const search: number[] = [];
    const text: number[] = [];
    const sizes = new Set<number>();
    while (running) {
      const t0 = performance.now();
      reader.search(q, { k: 10 }); // includes catching up with the writer's commits
      search.push(performance.now() - t0);
      sizes.add(reader.size);
      if (search.length % 10 === 0) {
        const t1 = performance.now();
        await reader.query({ text: 'dog face', k: 10 });
        text.push(performance.now() - t1);
      }
      await new Promise((r) => setImmediate(r));
    }
    await exited;
    const finalSize = reader.size;
    // A no-op refresh (nothing committed since): the cost every search pays to stay current.
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) reader.refresh();
    const refreshUs = ((performance.now() - t0) / 10_000) * 1000;
    await reader.close();
    const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p * a.length))]!;
    console.log(`reader during ingest: ${search.length} searches, p50 ${f3(pct(search, 0.5))} p99 ${f3(pct(search, 0.99))} ms`);
    return [
      `A reader process (this one, \`readOnly: true\`) searching while a second process ingests ${count} Twemoji into the same store (tiny-emoji encoders, commits every 16 images). Each search first catches up with the writer's newer commits (replaying their rows into the in-memory index), so the latencies include that replay. The reader saw ${sizes.size} distinct store sizes, from 100 to ${finalSize}; writer: ${out.trim()}.`,
      '',
      '| call (reader, during the ingest) | calls | p50 ms | p99 ms | max ms |',
      '|---|---|---|---|---|',
      `| store.search(embedding, k 10) | ${search.length} | ${f3(pct(search, 0.5))} | **${f3(pct(search, 0.99))}** | ${f3(pct(search, 1))} |`,
      `| store.query({ text }), k 10 | ${text.length} | ${f3(pct(text, 0.5))} | **${f3(pct(text, 0.99))}** | ${f3(pct(text, 1))} |`,
      '',
      `A refresh with nothing new to replay (one indexed SQLite read): ${f1(refreshUs)} µs.`,
    ].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function openSection(dim: number): Promise<string> {
  const n = quick ? 10_000 : 100_000;
  const dir = mkdtempSync(join(tmpdir(), 'ragdiff-bench-'));
  try {
    const encoder = { ...cheapEncoder(), dim, id: `bench-synthetic-${dim}` };
    // efConstruction 40 only shortens the one-off build; the saved graph's size and the open path are the same.
    const params = { ...DEFAULT_HNSW, efConstruction: 40 };
    await (await ImageStore.open(dir, { encoder, hnsw: params })).close();
    // Synthetic rows and vectors written straight through the catalogue and the index (no images to decode).
    const cat = new SqliteCatalogue(join(dir, 'store.sqlite'), false);
    const vectors = makeVectors(n, dim, 'clustered', 4321, []);
    const at = new Date().toISOString();
    const rows: NewImageRow[] = vectors.map((v, i) => {
      const sha = createHash('sha256').update(`image ${i}`).digest('hex');
      return {
        id: sha.slice(0, 16), sha256: sha, phash: sha.slice(0, 16), colour: i & 0xffffff, source: `source-${i % 10}`, licence: 'CC0-1.0',
        attribution: '', name: `synthetic ${i}`, tags: JSON.stringify([`tag-${i % 100}`]), width: 64, height: 64, format: 'png', bytes: 1000,
        origin: 'bench', path: '/nonexistent/by-reference', added_at: at, status: 'active', reason: null, status_at: null, embedding: embeddingToBlob(v),
      };
    });
    const inserted = cat.insert(rows);
    const index = new VectorIndex(dim, params, n);
    inserted.forEach((r, i) => index.setVector(r.label, vectors[i]!, false));
    const t0 = performance.now();
    index.buildGraph();
    const buildS = (performance.now() - t0) / 1000;
    index.save(join(dir, 'index'), cat.currentSeq());
    cat.close();
    const timeOpen = async (readOnly: boolean) => {
      gc();
      const c0 = process.cpuUsage();
      const t = performance.now();
      const store = await ImageStore.open(dir, { encoder, readOnly });
      const ms = performance.now() - t;
      const c = process.cpuUsage(c0);
      if (store.size !== n) throw new Error(`opened ${store.size} of ${n}`);
      await store.close();
      return `${f1(ms)} (${f1((c.user + c.system) / 1000)} CPU)`;
    };
    const writer = [await timeOpen(false), await timeOpen(false)];
    const reader = [await timeOpen(true), await timeOpen(true)];
    console.log(`open ${n}: writer ${writer.join(', ')} ms, reader ${reader.join(', ')} ms`);
    return [
      `Open time of a store of ${n.toLocaleString('en')} images (synthetic rows with ${dim}-wide clustered vectors, added by reference so no bytes; graph built once in ${f1(buildS)} s with efConstruction 40 and saved): reading every row (ids, hashes, filter codes, embeddings), loading and verifying (SHA-256) the saved HNSW graph, replaying rows newer than it (none here). The writer also takes the lock, runs SQLite's quick_check and sweeps the blob directory. Two opens each (the second with a warm page cache); wall ms with the process's CPU ms in brackets (the machine is shared).`,
      '',
      '| open | first: ms (CPU ms) | second: ms (CPU ms) |',
      '|---|---|---|',
      `| writer (\`ImageStore.open(dir, { encoder })\`) | ${writer[0]} | **${writer[1]}** |`,
      `| reader (\`readOnly: true\`) | ${reader[0]} | **${reader[1]}** |`,
    ].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function scaleSection(dim: number, real: Float32Array[]): Promise<string> {
  const lines: string[] = [];
  const table: string[] = [
    '| vectors | data | search | recall@10 | p50 ms | p99 ms | p99 CPU ms | mean ms (tinybench) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const memory: string[] = [];
  const verdicts: string[] = [];
  for (const n of SIZES) {
    for (const kind of ['embedding-like', 'clustered', 'uniform'] as const) {
      const data = makeVectors(n, dim, kind, 1234 + n, real);
      const queries = makeVectors(QUERIES, dim, kind, 99 + n, real);
      const index = new VectorIndex(dim, { ...DEFAULT_HNSW }, n);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) index.setVector(i, data[i]!, false);
      index.buildGraph();
      const buildS = (performance.now() - t0) / 1000;
      // hnswlib saves its in-memory layout (vectors, links, levels); the store adds a dense float32 copy and a mask byte.
      const tmp = mkdtempSync(join(tmpdir(), 'ragdiff-bench-'));
      index.save(tmp, 1);
      const graphBytes = statSync(join(tmp, 'vectors-1.hnsw')).size / n;
      rmSync(tmp, { recursive: true, force: true });
      const perVector = graphBytes + dim * 4 + 1 + 48; // + label map entry in hnswlib (~48 B)
      memory.push(`| ${n.toLocaleString('en')} | ${kind} | ${f1(buildS)} s | ${Math.round(graphBytes)} B | **${Math.round(perVector)} B** |`);
      console.log(`${n} ${kind}: built in ${f1(buildS)} s, graph ${Math.round(graphBytes)} B/vector, total ${Math.round(perVector)} B/vector`);

      const truth = queries.map((q) => index.exact(q, 10));
      const exactLat = await latency('exact', (() => {
        let i = 0;
        return () => void index.exact(queries[i++ % QUERIES]!, 10);
      })(), n > 50_000 ? 200 : 1000);
      table.push(`| ${n.toLocaleString('en')} | ${kind} | exact (brute force, native top-k) | 1.000 | ${f3(exactLat.p50)} | ${f3(exactLat.p99)} | ${f3(exactLat.cpuP99)} | ${f3(exactLat.mean)} |`);

      for (const ef of [32, 64, 128, 256]) {
        const idx = index as unknown as { params: { efSearch: number } };
        idx.params.efSearch = ef;
        const r = queries.reduce((s, q, i) => s + recall(index.search(q, 10, undefined, 0), truth[i]!), 0) / QUERIES;
        const lat = await latency(`hnsw ef${ef}`, (() => {
          let i = 0;
          return () => void index.search(queries[i++ % QUERIES]!, 10, undefined, 0);
        })());
        const mark = (x: string) => (ef === DEFAULT_HNSW.efSearch ? `**${x}**` : x);
        if (n === Math.max(...SIZES) && ef === DEFAULT_HNSW.efSearch) {
          const ok = (b: boolean) => (b ? 'met' : '**not met**');
          verdicts.push(
            `${kind}: recall@10 ${f3(r)} (${ok(r >= 0.95)}), p99 ${f3(lat.p99)} ms wall (${ok(lat.p99 <= 2)}) / ${f3(lat.cpuP99)} ms CPU (${ok(lat.cpuP99 <= 2)})`,
          );
        }
        table.push(`| ${n.toLocaleString('en')} | ${kind} | HNSW M=16 efSearch=${ef}${ef === DEFAULT_HNSW.efSearch ? ' (default)' : ''} | ${mark(f3(r))} | ${f3(lat.p50)} | ${mark(f3(lat.p99))} | ${f3(lat.cpuP99)} | ${f3(lat.mean)} |`);
        console.log(`  ef ${ef}: recall ${f3(r)} p50 ${f3(lat.p50)} p99 ${f3(lat.p99)} cpu p99 ${f3(lat.cpuP99)}`);
      }
      (index as unknown as { params: { efSearch: number } }).params.efSearch = DEFAULT_HNSW.efSearch;

      // Filtered: a random 10% / 1% of the vectors pass (what sources/tags filters produce).
      for (const share of [0.1, 0.01]) {
        const mask = new Uint8Array(index.labelBound);
        const labels: number[] = [];
        const g = rng(7);
        for (let l = 0; l < n; l++) if (Math.abs(g()) < share * 1.2533) (mask[l] = 1), labels.push(l);
        const filter = { mask, labels: Int32Array.from(labels) };
        const ft = queries.map((q) => index.exact(q, 10, filter.labels));
        const r = queries.reduce((s, q, i) => s + recall(index.search(q, 10, filter, 2048), ft[i]!), 0) / QUERIES;
        const lat = await latency(`filtered ${share}`, (() => {
          let i = 0;
          return () => void index.search(queries[i++ % QUERIES]!, 10, filter, 2048);
        })());
        const how = labels.length <= 2048 ? 'exact over the filtered set' : Math.ceil(20 / (labels.length / n)) + 10 <= 1024 ? 'HNSW top-(2k/share), then filtered' : 'exact over the filtered set';
        table.push(`| ${n.toLocaleString('en')} | ${kind} | filter passing ${share * 100}% (${labels.length.toLocaleString('en')}): ${how} | ${f3(r)} | ${f3(lat.p50)} | ${f3(lat.p99)} | ${f3(lat.cpuP99)} | ${f3(lat.mean)} |`);
        console.log(`  filter ${share}: recall ${f3(r)} p50 ${f3(lat.p50)} p99 ${f3(lat.p99)}`);
      }
    }
  }
  lines.push(
    `**Target** (p99 ≤ 2 ms and recall@10 ≥ 0.95 at ${Math.max(...SIZES).toLocaleString('en')} vectors, default M=16, efSearch=${DEFAULT_HNSW.efSearch}): ${verdicts.join('; ')}. Wall-time p99 on this machine includes preemption by other processes (2 shared cores, model training running); the CPU-time p99 is the work itself. Real embeddings occupy few directions, as the embedding-like set does; on the full-rank synthetic sets HNSW needs a larger efSearch (persisted per store: \`hnsw: { efSearch }\`) or M to reach the recall, at the latencies in the table.`,
    '',
    `Synthetic unit vectors of the encoder's width (${dim}), cosine similarity; ${QUERIES} held-out queries; recall@10 against exact search over the same (filtered) set. The store searches through \`VectorIndex.search\` — the code measured here — and adds a SQLite row lookup per result (see the end-to-end table). p50/p99: wall time of 3,000 timed calls (1,000 / 200 for exact search) after 300 warm-up calls; p99 CPU: per-call CPU time, which excludes preemption (this machine's 2 cores are shared with model training); mean: tinybench.`,
    '',
    ...table,
    '',
    'Build time (single thread, M=16, efConstruction=200) and memory per vector: *graph* = hnswlib\'s saved index (its in-memory layout: vector, level-0 links, upper levels) per vector; *total* adds the dense float32 copy the store keeps for exact and filtered search, a mask byte and hnswlib\'s label-map entry (~48 B). Not included: the store\'s per-image maps (id, SHA-256, perceptual hash, filter codes; metadata itself stays in SQLite).',
    '',
    '| vectors | data | build | graph / vector | total / vector |',
    '|---|---|---|---|---|',
    ...memory,
  );
  return lines.join('\n');
}

/**
 * Exact search at 100k × 128 (uniform unit vectors, k 10): the JavaScript loop the store used
 * (test/reference/topk.ts) against VectorIndex.exact (the native top-k, with the thread pool and with
 * one thread), unfiltered and over a 10% label subset. Results are checked identical first.
 */
async function exactSection(): Promise<string> {
  const n = 100_000, dim = 128, k = 10, Q = 64;
  const data = makeVectors(n, dim, 'uniform', 4321, []);
  const queries = makeVectors(Q, dim, 'uniform', 8765, []);
  const index = new VectorIndex(dim, { ...DEFAULT_HNSW }, n);
  data.forEach((v, i) => index.setVector(i, v, false)); // no graph: exact search only
  const bound = index.labelBound;
  const matrix = new Float32Array(bound * dim), mask = new Uint8Array(bound);
  data.forEach((v, i) => (matrix.set(v, i * dim), (mask[i] = 1)));
  const g = rng(11);
  const labels = Int32Array.from(Array.from({ length: n }, (_, i) => i).filter(() => Math.abs(g()) < 0.1 * 1.2533));
  const cases: [string, Int32Array | undefined][] = [['all 100,000', undefined], [`10% subset (${labels.length.toLocaleString('en')})`, labels]];
  for (const [what, l] of cases) {
    for (const q of queries) {
      const a = index.exact(q, k, l), b = referenceStoreExact(matrix, dim, mask, q, k, l);
      if (a.length !== b.length || a.some((h, i) => h.label !== b[i]!.row || !Object.is(h.score, b[i]!.score))) throw new Error(`exact search differs from the JavaScript reference (${what})`);
    }
  }
  const threads = native().threadCount();
  const rows: string[] = [];
  for (const [what, l] of cases) {
    let i = 0;
    const bench = new Bench({ time: 1500, warmupTime: 300 });
    bench.add('js', () => void referenceStoreExact(matrix, dim, mask, queries[i++ % Q]!, k, l));
    bench.add('native', () => void index.exact(queries[i++ % Q]!, k, l));
    bench.add('native 1 thread', () => void index.exact(queries[i++ % Q]!, k, l), {
      beforeAll: () => native().setThreadCount(1),
      afterAll: () => native().setThreadCount(threads),
    });
    await bench.run();
    const mean = (t: number) => (bench.tasks[t]!.result as unknown as { latency: { mean: number } }).latency.mean;
    const [js, nat, one] = [mean(0), mean(1), mean(2)];
    console.log(`exact ${what}: js ${f3(js)} ms, native ${f3(nat)} ms (${threads} threads), native 1 thread ${f3(one)} ms`);
    rows.push(`| ${what} | 1.00 | **${f2(js / nat)}×** (${threads} threads) | ${f2(js / one)}× |`);
  }
  return [
    `Exact search, ${n.toLocaleString('en')} × ${dim} (uniform unit vectors, k ${k}, ${Q} queries in turn): the JavaScript loop the store used before issue 11 (\`test/reference/topk.ts\`) against \`VectorIndex.exact\` on the shared native top-k (\`native/core/topk.cc\`, inner product in double, the same results to the bit — checked before timing). Speed-up over JavaScript in one run (tinybench means); compare ratios, the machine is shared.`,
    '',
    '| candidates | JavaScript | native (pool) | native (1 thread) |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

async function endToEndSection(): Promise<{ text: string; real: Float32Array[] }> {
  const clip = await loadClipEncoders(join(root, 'models', 'tiny-emoji'));
  const rows: string[] = [];
  const demo = await openDemoStore({ encoder: clip });
  const size = demo.size;
  const q = await demo.embedText('red apple');
  const real = demo.search(q, { k: size, withEmbeddings: true }).map((h) => h.embedding!);
  const a = await latency('search exact', () => void demo.search(q, { k: 10 }));
  rows.push(`| store.search(embedding, k 10), ${size} images (exact path) | ${f3(a.p50)} | ${f3(a.p99)} | ${f3(a.cpuP99)} |`);
  const b = await latency('search filtered', () => void demo.search(q, { k: 10, tags: ['subcategory:food-fruit'] }));
  rows.push(`| … with a tag filter (35 images) | ${f3(b.p50)} | ${f3(b.p99)} | ${f3(b.cpuP99)} |`);
  const texts = ['red apple', 'dog face', 'rocket', 'red heart', 'pizza', 'grinning face'];
  // query() is async (text encoder): timed with awaits.
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await demo.query({ text: texts[i % texts.length]!, k: 10 });
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  rows.push(`| store.query({ text }), k 10 (tiny-emoji text encoder + search) | ${f3(times[100]!)} | ${f3(times[198]!)} | – |`);
  await demo.close();
  const dir = mkdtempSync(join(tmpdir(), 'ragdiff-bench-'));
  try {
    const hnswStore = await ImageStore.open(dir, { encoder: clip, exactSearchBelow: 0, nearDuplicates: false });
    await hnswStore.add(demoInputs('twemoji'));
    const d = await latency('search hnsw', () => void hnswStore.search(q, { k: 10 }));
    rows.push(`| store.search(embedding, k 10), ${hnswStore.size} images, HNSW path forced | ${f3(d.p50)} | ${f3(d.p99)} | ${f3(d.cpuP99)} |`);
    await hnswStore.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await clip.close();
  }
  return {
    text: ['End to end on the Twemoji demo store (real tiny-emoji embeddings; includes filter building, SQLite row lookup and result objects):', '', '| call | p50 ms | p99 ms | p99 CPU ms |', '|---|---|---|---|', ...rows].join('\n'),
    real,
  };
}

async function main(): Promise<void> {
  const dim = 128;
  if (only === 'exact') {
    writeResultsSection('Image store: exact search, JavaScript vs native top-k', await exactSection(), 'npm run bench store -- --only=exact');
    console.log('written to bench/RESULTS.md');
    return;
  }
  const clip = await loadClipEncoders(join(root, 'models', 'tiny-emoji'));
  const ingest = await ingestSection(clip);
  const concurrent = await concurrentSection(clip);
  await clip.close();
  const open = await openSection(dim);
  writeResultsSection(
    'Image store: ingest, a reader beside a writer, open time',
    [ingest, '', concurrent, '', open].join('\n'),
    `npm run bench store${quick ? ' -- --quick' : ''}${only ? ` -- --only=${only}` : ''}`,
  );
  if (only === 'ingest') {
    console.log('written to bench/RESULTS.md');
    return;
  }
  const { text: e2e, real } = await endToEndSection();
  const scale = await scaleSection(dim, real);
  writeResultsSection('Image store', [scale, '', e2e].join('\n'), `npm run bench store${quick ? ' -- --quick' : ''}`);
  writeResultsSection('Image store: exact search, JavaScript vs native top-k', await exactSection(), `npm run bench store${quick ? ' -- --quick' : ''}`);
  console.log('written to bench/RESULTS.md');
}

if (process.argv[2] === '--writer-child') await writerChild(process.argv[3]!, Number(process.argv[4]));
else await main();
