/**
 * Live-source retrieval overhead (issue 21): the retrieval stage of a tiny-emoji generation
 * (k = 4, 25 steps) from the store only, and with one (Openverse) and two (Openverse + Commons)
 * online sources served by the loopback fakes of test/fixtures/sources at 50 ms and 200 ms answer
 * latency (search answers and image fetches alike). Each online source is asked for 4 candidates,
 * so 4–8 images are fetched per generation: with fetches in parallel the stage should cost about
 * one search round trip + one fetch round trip + decode/screen/embed, not k round trips.
 *
 * Arms interleave within each round; figures are medians over rounds.
 *
 *   npm run bench live-sources               # 5 rounds
 *   npm run bench live-sources -- --quick    # 2 rounds
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RagPipeline } from '../src/rag/index.js';
import { createSources, HostLimiter } from '../src/sources/index.js';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput } from '../src/store/index.js';
import { startFakeApis } from '../test/fixtures/sources/fake-apis.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 2 : 5;
const LATENCIES = [50, 200];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'ragdiff-bench-live-'));
const fake = await startFakeApis();
const enc = await loadClipEncoders(join(root, 'models/tiny-emoji'));
const store = await ImageStore.open(join(dir, 'store'), { encoder: enc });
const names = ['red apple', 'banana', 'automobile', 'snowman', 'rocket', 'grinning face', 'cat face', 'tomato'];
await store.add(demoInputs('twemoji').filter((i) => names.includes((i as AddInput & { meta?: { name?: string } }).meta?.name ?? '')), { source: 'twemoji', licence: 'CC-BY-4.0', attribution: 'Twemoji' });
const sources = createSources({ env: { RAGDIFF_OPENVERSE_URL: fake.base, RAGDIFF_COMMONS_URL: `${fake.base}/w/api.php` }, allowHosts: [fake.host], limiter: new HostLimiter({ concurrency: 16 }) });
const rag = await RagPipeline.load(join(root, 'models/tiny-emoji'), { sources });

type Arm = { name: string; from: string[] };
const ARMS: Arm[] = [
  { name: 'store only', from: ['store'] },
  { name: 'store + openverse', from: ['store', 'openverse'] },
  { name: 'store + openverse + commons', from: ['store', 'openverse', 'commons'] },
];
const prompt = 'red blue green yellow';
const rows: string[] = [];
// Warm-up (model sessions, first decode).
await rag.generate({ prompt, seed: 0, retrieval: { store, k: 4, from: ['store', 'openverse'] } });
for (const latency of LATENCIES) {
  fake.latencyMs = latency;
  const stage = new Map<string, number[]>();
  const total = new Map<string, number[]>();
  const fetched = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (let a = 0; a < ARMS.length; a++) {
      const arm = ARMS[(a + round) % ARMS.length]!;
      const t0 = performance.now();
      const r = await rag.generate({ prompt, seed: round, retrieval: { store, k: 4, from: arm.from.map((s) => (s === 'store' ? s : { source: s, k: 4 })) } });
      const wall = performance.now() - t0;
      (stage.get(arm.name) ?? stage.set(arm.name, []).get(arm.name)!).push(r.stats.retrieval!.totalMs);
      (total.get(arm.name) ?? total.set(arm.name, []).get(arm.name)!).push(wall);
      fetched.set(arm.name, (r.stats.retrieval!.sources ?? []).reduce((s, x) => s + x.fetched, 0));
    }
  }
  const base = median(stage.get('store only')!);
  for (const arm of ARMS) {
    const s = median(stage.get(arm.name)!);
    const w = median(total.get(arm.name)!);
    rows.push(`| ${latency} ms | ${arm.name} | ${fetched.get(arm.name)} | ${s.toFixed(0)} | ${(s - base).toFixed(0)} | ${w.toFixed(0)} | ${((100 * (s - base)) / (w - s + base)).toFixed(1)}% |`);
  }
}
await rag.close();
await store.close();
await enc.close();
await fake.close();
rmSync(dir, { recursive: true, force: true });

const table = [
  '| latency | sources | images fetched | retrieval stage (ms) | over store-only (ms) | whole generation (ms) | overhead vs a store-only generation |',
  '|---|---|---|---|---|---|---|',
  ...rows,
].join('\n');
console.log(table);
writeResultsSection(
  'Live sources: retrieval overhead (issue 21)',
  `tiny-emoji, k = 4, 25 steps, batch 1; loopback fakes of Openverse and Commons answering searches and image fetches after the stated latency; each online source asked for 4 candidates; median of ${ROUNDS} interleaved rounds. "Overhead" is the live stage's extra wall time over the store-only stage, relative to a store-only generation. The target is ≈ one search round trip + one fetch round trip + decode/screen/embed (fetches run in parallel), ≤ 10% of a generation at 50 ms.\n\n${table}`,
  `npm run bench live-sources${quick ? ' -- --quick' : ''}`,
);
