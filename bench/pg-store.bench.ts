/**
 * PostgreSQL + pgvector store against the local hnswlib store (issue 22):
 * query p50/p99 and recall@10 at N vectors of the store's real embedding
 * width (tiny-emoji: 128), embedding-like data (mixtures of two real
 * tiny-emoji image embeddings plus a little noise, as in store.bench.ts),
 * unfiltered and with source filters passing 10% and 1%.
 *
 * pgvector runs in PGlite (PostgreSQL 18 compiled to WASM, single-threaded)
 * behind pglite-socket on 127.0.0.1, queried through the production `pg`
 * driver and PgReferenceStore.query (one transaction per query: SET LOCAL
 * hnsw.ef_search, iterative scan when filtered, rows fetched). The local side
 * is VectorIndex.search, the code ImageStore.search uses. Same HNSW shape on
 * both: M=16, efConstruction=64, efSearch=64.
 *
 *   npm run bench pg-store                # 100k
 *   npm run bench pg-store -- --n=20000
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadClipEncoders, type ImageTextEncoder } from '../src/models/encoders.js';
import { demoInputs } from '../src/store/demo.js';
import { decodeCandidate, embedCandidates } from '../src/store/gate.js';
import { PgReferenceStore } from '../src/store/pg/store.js';
import { vectorParam } from '../src/store/pg/rows.js';
import { VectorIndex } from '../src/store/vectors.js';
import { seededRandom } from '../test/helpers.js';
import { startTestPg } from '../test/fixtures/pg/server.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const N = Number(process.argv.find((a) => a.startsWith('--n='))?.slice(4) ?? 100_000);
const QUERIES = 300;
const PARAMS = { M: 16, efConstruction: 64, efSearch: 64, seed: 100 };
const f3 = (x: number) => x.toFixed(3);

async function realEmbeddings(n: number): Promise<Float32Array[]> {
  const clip = await loadClipEncoders(join(root, 'models', 'tiny-emoji'));
  const inputs = demoInputs('twemoji').slice(0, n) as { path: string }[];
  const pixels = [];
  for (const i of inputs) pixels.push((await decodeCandidate(new Uint8Array(readFileSync(i.path)), clip)).pixels);
  const out = await embedCandidates(clip, pixels);
  await clip.close?.();
  return out;
}

function makeVectors(n: number, real: Float32Array[], seed: number): Float32Array[] {
  const u = seededRandom(seed);
  const g = () => Math.sqrt(-2 * Math.log(u() || 1e-12)) * Math.cos(2 * Math.PI * u());
  const dim = real[0]!.length;
  return Array.from({ length: n }, () => {
    const a = real[Math.floor(u() * real.length)]!;
    const b = real[Math.floor(u() * real.length)]!;
    const w = u();
    const v = Float32Array.from(a, (x, j) => w * x + (1 - w) * b[j]! + (0.1 / Math.sqrt(dim)) * g());
    let s = 0;
    for (const x of v) s += x * x;
    return v.map((x) => x / Math.sqrt(s));
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const real = await realEmbeddings(400);
  const dim = real[0]!.length;
  const data = makeVectors(N, real, 1234);
  const queries = makeVectors(QUERIES, real, 99);
  // Source s<i % 100>: "s0".."s9" pass 10%, "s0" 1%.
  const filters: { name: string; sources?: string[]; pass: (i: number) => boolean }[] = [
    { name: 'unfiltered', pass: () => true },
    { name: 'filter passing 10%', sources: Array.from({ length: 10 }, (_, i) => `s${i}`), pass: (i) => i % 100 < 10 },
    { name: 'filter passing 1%', sources: ['s0'], pass: (i) => i % 100 === 0 },
  ];

  // Local: the store's VectorIndex.
  const tl = performance.now();
  const index = new VectorIndex(dim, PARAMS, N + 16);
  data.forEach((v, i) => index.setVector(i + 1, v, false));
  index.buildGraph();
  const localBuild = (performance.now() - tl) / 1000;

  // PostgreSQL: rows bulk-loaded, then the store's HNSW index built once.
  const srv = await startTestPg({ timeoutMs: 120_000 });
  const encoder: ImageTextEncoder = { dim, id: 'bench-128', imageSize: { width: 16, height: 16 }, embedImages: async () => [], embedText: async () => [] };
  const store = await PgReferenceStore.open(srv.url, { encoder, hnsw: PARAMS, poolSize: 1 });
  const c = new pg.Client({ connectionString: srv.url });
  await c.connect();
  const tp = performance.now();
  await c.query('DROP INDEX ragdiff_images_hnsw');
  for (let s = 0; s < N; s += 2000) {
    const idx = Array.from({ length: Math.min(2000, N - s) }, (_, j) => s + j);
    await c.query(
      `INSERT INTO ragdiff_images (id, sha256, phash, colour, source, width, height, format, bytes, status, embedding)
       SELECT 'v' || i, lpad(to_hex(i), 64, '0'), '0000000000000000', 0, 's' || (i % 100), 1, 1, 'png', 0, 'active', e::vector
       FROM unnest($1::int[], $2::text[]) AS t(i, e)`,
      [idx, idx.map((i) => vectorParam(data[i]!))],
    );
  }
  const pgLoad = (performance.now() - tp) / 1000;
  const tb = performance.now();
  await c.query(`CREATE INDEX ragdiff_images_hnsw ON ragdiff_images USING hnsw (embedding vector_cosine_ops) WITH (m = ${PARAMS.M}, ef_construction = ${PARAMS.efConstruction}) WHERE status = 'active'`);
  await c.query('ANALYZE ragdiff_images');
  const pgBuild = (performance.now() - tb) / 1000;
  await c.end();
  console.log(`built: local ${localBuild.toFixed(1)} s, pg load ${pgLoad.toFixed(1)} s + index ${pgBuild.toFixed(1)} s`);

  const rows: string[] = [];
  for (const f of filters) {
    const labels = Int32Array.from(Array.from({ length: N }, (_, i) => i).filter(f.pass).map((i) => i + 1));
    const mask = new Uint8Array(N + 2);
    for (const l of labels) mask[l] = 1;
    const filter = f.sources ? { mask, labels } : undefined;
    const truth = queries.map((q) => new Set(index.exact(q, 10, f.sources ? labels : undefined).map((h) => h.label)));
    // local
    const lt: number[] = [];
    let lr = 0;
    for (let r = 0; r < 2; r++) {
      queries.forEach((q, i) => {
        const s = performance.now();
        const hits = index.search(q, 10, filter, 2048);
        if (r === 1) {
          lt.push(performance.now() - s);
          lr += hits.filter((h) => truth[i]!.has(h.label)).length / 10;
        }
      });
    }
    // pgvector
    const pt: number[] = [];
    let pr = 0;
    for (let r = 0; r < 2; r++) {
      for (let i = 0; i < QUERIES; i++) {
        const s = performance.now();
        const hits = await store.query({ embedding: queries[i]!, k: 10, sources: f.sources });
        if (r === 1) {
          pt.push(performance.now() - s);
          pr += hits.filter((h) => truth[i]!.has(Number(h.id.slice(1)) + 1)).length / 10;
        }
      }
    }
    rows.push(`| ${f.name} (${labels.length.toLocaleString('en')}) | local hnswlib (VectorIndex.search) | ${f3(lr / QUERIES)} | ${f3(pct(lt, 0.5))} | ${f3(pct(lt, 0.99))} |`);
    rows.push(`| ${f.name} (${labels.length.toLocaleString('en')}) | pgvector ${store.vectorVersion} on PGlite (store.query via pg) | ${f3(pr / QUERIES)} | ${f3(pct(pt, 0.5))} | ${f3(pct(pt, 0.99))} |`);
    console.log(rows.slice(-2).join('\n'));
  }
  await store.close();
  await srv.stop();
  const md = [
    `${N.toLocaleString('en')} embedding-like vectors of width ${dim} (mixtures of two of 400 real tiny-emoji image embeddings + noise), ${QUERIES} held-out queries, k = 10, recall@10 against exact search over the same (filtered) set. HNSW M=${PARAMS.M}, efConstruction=${PARAMS.efConstruction}, efSearch=${PARAMS.efSearch} on both sides. Latency: wall ms per query after one warm-up pass; the pgvector side includes the round trip through the \`pg\` driver, the transaction with SET LOCAL, the filter and the row fetch; the local side is the vector search alone (the store adds a SQLite row lookup per hit, see "Image store").`,
    '',
    '| set | backend | recall@10 | p50 ms | p99 ms |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `Build: local graph ${localBuild.toFixed(1)} s; PostgreSQL bulk load ${pgLoad.toFixed(1)} s + HNSW index ${pgBuild.toFixed(1)} s. Load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (2 shared cores). PGlite is PostgreSQL compiled to WASM, one backend, no parallel workers: a native PostgreSQL server is expected to be faster; these figures are an upper bound for the pgvector side. Total bench time ${((performance.now() - t0) / 1000).toFixed(0)} s.`,
  ].join('\n');
  writeResultsSection('Reference store: pgvector (PGlite) against local hnswlib', md, `npm run bench pg-store${N !== 100_000 ? ` -- --n=${N}` : ''}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
