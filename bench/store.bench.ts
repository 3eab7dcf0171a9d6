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
 *   npm run bench store                 # 10k and 100k
 *   npm run bench store -- --quick      # 10k only, fewer images
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { decodeImage } from '../src/image/decode.js';
import { loadClipEncoders, type ImageTextEncoder, type RgbImage } from '../src/models/encoders.js';
import { demoInputs, openDemoStore } from '../src/store/demo.js';
import { ImageStore } from '../src/store/store.js';
import { DEFAULT_HNSW, VectorIndex, type Hit } from '../src/store/vectors.js';
import { seededRandom } from '../test/helpers.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const quick = process.argv.includes('--quick');
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

async function ingestSection(encoderDim: number): Promise<string> {
  const inputs = demoInputs('twemoji').slice(0, quick ? 300 : 1000);
  const rows: string[] = [];
  const clip = await loadClipEncoders(join(root, 'models', 'tiny-emoji'));
  for (const [label, encoder] of [['tiny-emoji encoders', clip], ['trivial encoder (store overhead)', cheapEncoder()]] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'ragdiff-bench-'));
    try {
      const store = await ImageStore.open(dir, { encoder });
      const t0 = performance.now();
      const report = await store.add(inputs);
      const ms = performance.now() - t0;
      await store.close();
      rows.push(`| ${label} | ${report.added + report.skipped} | ${f1(ms)} | **${f1(((report.added + report.skipped) * 1000) / ms)}** |`);
      console.log(`ingest ${label}: ${f1(((report.added + report.skipped) * 1000) / ms)} images/s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // Where the time goes, per image: the two decodes (encoder size + 32×32 hash) and the embedding.
  const bytes = readFileSync((inputs[0] as { path: string }).path);
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    await decodeImage(bytes, { width: 64, height: 64 });
    await decodeImage(bytes, { width: 32, height: 32, fit: 'fill' });
  }
  const decodeMs = (performance.now() - t0) / 100;
  const img = await decodeImage(bytes, { width: 64, height: 64 });
  const batch = Array.from({ length: 32 }, () => img);
  const t1 = performance.now();
  for (let i = 0; i < 5; i++) await clip.embedImages(batch);
  const embedMs = (performance.now() - t1) / (5 * 32);
  await clip.close();
  return [
    `Ingest of ${inputs.length} Twemoji PNGs (64×64, from emoji-datasource-twitter) into an empty store: read, decode twice (encoder size + 32×32 for the perceptual hash), SHA-256, near-duplicate scan, embed in batches of 32, bytes + rows + vectors committed per batch, index saved at the end. Embedding width ${encoderDim}.`,
    '',
    '| encoder | images | ms | images/s |',
    '|---|---|---|---|',
    ...rows,
    '',
    `Per image: decode + hash ${f2(decodeMs)} ms (sequential; the store decodes 4 at a time), tiny-emoji image embedding ${f2(embedMs)} ms (batch 32).`,
  ].join('\n');
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
      table.push(`| ${n.toLocaleString('en')} | ${kind} | exact (brute force, JS) | 1.000 | ${f3(exactLat.p50)} | ${f3(exactLat.p99)} | ${f3(exactLat.cpuP99)} | ${f3(exactLat.mean)} |`);

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
  const ingest = await ingestSection(dim);
  const { text: e2e, real } = await endToEndSection();
  const scale = await scaleSection(dim, real);
  writeResultsSection(
    'Image store',
    [ingest, '', scale, '', e2e].join('\n'),
    `npm run bench store${quick ? ' -- --quick' : ''}`,
  );
  console.log('written to bench/RESULTS.md');
}

await main();
