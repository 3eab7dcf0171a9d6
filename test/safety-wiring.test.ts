/**
 * One safety wiring: the same hostile requests through the library
 * (`RagPipeline.load(dir, guard.ragOptions())`), the CLI (`generate --policy`)
 * and the HTTP service (`ragdiff serve --policy`, a child process as a user
 * runs it) get the same verdicts — a blocked prompt, a blocked text query
 * (`retrieval.query`), a blocked pinned reference, a blocked output, the
 * per-source cap, the policy stamp in the PNG — and the audit log gets its
 * output lines from the server too.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore, loadClipEncoders, type AddInput, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline, readProvenance, type RagResult } from '../src/rag/index.js';
import { SafetyGuard } from '../src/safety/index.js';
import { createServer } from '../src/server/index.js';
import { buildSmallStore, META, twemojiInputs } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const MODEL = repoPath('models/tiny-emoji');
const t = tempDir('ragdiff-safety-wiring-');
const STORE = join(t.dir, 'store');
const POLICY = join(t.dir, 'policy.json');
const MAX_PER_SOURCE = 2;
let bombId = '';
let appleId = '';
let policyHash = '';

/** A hostile (or plain) request, as each surface spells it. */
interface Case {
  name: string;
  prompt: string;
  store: boolean;
  /** A text query other than the prompt (the CLI has no such flag: it retrieves by the prompt). */
  query?: string;
  pinBomb?: boolean;
}
const CASES: Case[] = [
  { name: 'blocked prompt', prompt: 'bomb', store: false },
  { name: 'blocked text query', prompt: 'red apple', store: true, query: 'bomb' },
  { name: 'blocked pinned reference', prompt: 'red apple', store: true, pinBomb: true },
  { name: 'blocked output', prompt: 'penguin', store: false },
  { name: 'allowed, capped per source', prompt: 'automobile', store: true },
];

/** What every surface must agree on. */
interface Verdict {
  verdict: 'PROMPT_BLOCKED' | 'REFERENCE_BLOCKED' | 'OUTPUT_BLOCKED' | 'ALLOWED';
  rule: string | null;
  /** Images returned (written). */
  images: number;
  /** Retrieved references dropped by the source cap. */
  capped: number;
  /** The largest number of used references from one source. */
  perSource: number;
  /** The policy hash stamped into the returned PNG. */
  stamp: string | null;
}

const ruleIn = (s: string) => /rule (concept:[a-z-]+)/.exec(s)?.[1] ?? null;

function fromResult(images: Buffer[], screened: { reason: string }[], sources: string[], blockedRule: string | null): Verdict {
  const perSource = Math.max(0, ...[...new Set(sources)].map((s) => sources.filter((x) => x === s).length));
  return {
    verdict: images.length === 0 && blockedRule ? 'OUTPUT_BLOCKED' : 'ALLOWED',
    rule: images.length === 0 ? blockedRule : null,
    images: images.length,
    capped: screened.filter((s) => /source cap/.test(s.reason)).length,
    perSource,
    stamp: images[0] ? (readProvenance(images[0]).policy?.hash ?? null) : null,
  };
}

const refused = (code: string, message: string): Verdict => ({ verdict: code as Verdict['verdict'], rule: ruleIn(message), images: 0, capped: 0, perSource: 0, stamp: null });

const results = new Map<string, Map<string, Verdict>>();
const record = (surface: string, c: Case, v: Verdict) => {
  if (!results.has(surface)) results.set(surface, new Map());
  results.get(surface)!.set(c.name, v);
};

test.before(async () => {
  // The default policy's bomb concept at every door, plus an output-only rule that
  // tiny-emoji's penguins trip (measured: penguin outputs score 0.65–0.72 against the
  // penguin anchor, other prompts ≤ 0.39) and the source cap.
  const def = JSON.parse(readFileSync(repoPath('policies/default.json'), 'utf8')) as { concepts: { id: string; images: string[] }[] };
  const bomb = def.concepts.find((c) => c.id === 'bomb')!;
  writeFileSync(POLICY, JSON.stringify({
    version: 'wiring-test-1',
    concepts: [
      { ...bomb, images: bomb.images.map((p) => repoPath(`policies/${p}`)) },
      { id: 'penguin', text: ['penguin'], images: [twemojiInputs(['penguin'])[0]!.path], threshold: 0.5, doors: ['output'], action: 'block' },
    ],
    retrieval: { maxPerSource: MAX_PER_SOURCE },
  }));
  // A store built without a screen: the bomb is active, only the doors at generation can stop it.
  const enc = await loadClipEncoders(MODEL);
  try {
    const store = await buildSmallStore(STORE, enc);
    await store.add(twemojiInputs(['bomb']) as AddInput[], META);
    bombId = store.list({ limit: 1000 }).find((r) => r.name === 'bomb')!.id;
    appleId = store.list({ limit: 1000 }).find((r) => r.name === 'red apple')!.id;
    await store.close();
    const guard = await SafetyGuard.create(POLICY, { encoder: enc });
    policyHash = guard.stamp.hash;
    guard.close();
  } finally {
    await enc.close();
  }
});

test.after(() => t.cleanup());

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.') }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('CLI: generate --policy', async () => {
  for (const [i, c] of CASES.entries()) {
    if (c.query) continue; // no CLI spelling: the CLI's query is its prompt
    const out = join(t.dir, `cli-${i}.png`);
    const args = ['generate', c.prompt, '-o', out, '-m', MODEL, '--steps', '4', '--seed', '1', '--policy', POLICY, '--json'];
    if (c.store) args.push('--store', STORE, '-k', '4');
    if (c.pinBomb) args.push('--ref', bombId);
    const r = await ragdiff(args);
    const doc = JSON.parse(r.stdout) as { error?: { code: string; message: string }; files: string[]; references: { source: string }[]; blocked?: { rule: string }[]; stats: { retrieval?: { screened: { reason: string }[] } } };
    if (doc.error) {
      assert.is.not(r.code, 0);
      assert.match(r.stderr, `[${doc.error.code}]`);
      assert.not.ok(existsSync(out), `${c.name}: nothing written`);
      record('cli', c, refused(doc.error.code, doc.error.message));
      continue;
    }
    if (doc.blocked?.length) {
      assert.is(r.code, 1, `${c.name}: every image blocked exits 1`);
      assert.match(r.stderr, new RegExp(`blocked: image 1 \\(seed 1\\) by rule ${doc.blocked[0]!.rule}`));
    } else assert.is(r.code, 0, r.stderr);
    const images = doc.files.map((f) => readFileSync(f));
    record('cli', c, fromResult(images, doc.stats.retrieval?.screened ?? [], doc.references.map((x) => x.source), doc.blocked?.[0]?.rule ?? null));
  }
});

test('library: RagPipeline.load(dir, guard.ragOptions())', async () => {
  const audit = join(t.dir, 'library-audit.log');
  const enc = await loadClipEncoders(MODEL);
  const guard = await SafetyGuard.create(POLICY, { encoder: enc, audit: { path: audit } });
  const rag = await RagPipeline.load(MODEL, guard.ragOptions());
  const store = await ImageStore.open(STORE, { encoder: enc, create: false });
  try {
    for (const c of CASES) {
      let r: RagResult;
      try {
        r = await rag.generate({
          prompt: c.prompt, seed: 1, steps: 4,
          ...(c.store ? { retrieval: { store, k: 4, ...(c.query ? { query: c.query } : {}), ...(c.pinBomb ? { references: [{ id: bombId }] } : {}) } } : {}),
        });
      } catch (e) {
        const err = e as { code: string; message: string };
        record('library', c, refused(err.code, err.message));
        continue;
      }
      record('library', c, fromResult(r.images.map((im) => im.png), r.stats.retrieval?.screened ?? [], r.references.map((x) => x.source), r.blocked?.[0]?.rule ?? null));
    }
    assert.match(readFileSync(audit, 'utf8'), /"door":"output"/);
  } finally {
    await store.close();
    await rag.close();
    guard.close();
    await enc.close();
  }
});

/** Starts `ragdiff serve` and returns its base URL (parsed from what it prints). */
function serve(args: string[], env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [MAIN, 'serve', ...args], { cwd: repoPath('.'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`serve did not start: ${out} ${err}`));
    }, 120_000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /page: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}): ${err}`));
    });
  });
}

test('HTTP: ragdiff serve --policy enforces every door, counts each, and logs the outputs', async () => {
  const audit = join(t.dir, 'serve-audit.log');
  const { child, url } = await serve(['--policy', POLICY, '--store', STORE, '--port', '0', '-m', MODEL], { RAGDIFF_AUDIT_LOG: audit });
  try {
    for (const c of CASES) {
      const retrieval = c.store ? { k: 4, ...(c.query ? { query: c.query } : {}), ...(c.pinBomb ? { references: [bombId] } : {}) } : false;
      const res = await fetch(`${url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: c.prompt, seed: 1, steps: 4, retrieval }) });
      const body = (await res.json()) as {
        error?: { code: string; message: string };
        data: { b64_json: string }[];
        references: { source: string }[];
        safety: { policy: string; screened: { reason: string }[]; blocked: { rule: string; seed: number; index: number }[] };
      };
      if (body.error) {
        assert.is(res.status, 403, JSON.stringify(body));
        record('http', c, refused(body.error.code, body.error.message));
        continue;
      }
      assert.is(res.status, 200);
      assert.is(body.safety.policy, policyHash);
      record('http', c, fromResult(body.data.map((d) => Buffer.from(d.b64_json, 'base64')), body.safety.screened, body.references.map((x) => x.source), body.safety.blocked[0]?.rule ?? null));
    }
    // The stored bomb's pixels are refused too (the store predates the policy): the image route is not a way around the retrieval door.
    const refusedImage = await fetch(`${url}/v1/references/${bombId}/image`);
    assert.is(refusedImage.status, 403);
    assert.match(((await refusedImage.json()) as { error: { code: string; message: string } }).error.message, /concept:bomb/);
    assert.is((await fetch(`${url}/v1/references/${appleId}/image?size=32`)).status, 200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /ragdiff_screening_decisions_total\{stage="output",decision="refuse"\} 1/);
    assert.match(metrics, /ragdiff_screening_decisions_total\{stage="prompt",decision="refuse"\} 2/);
    const info = (await (await fetch(`${url}/v1/info`)).json()) as { policy: string; screens: Record<string, boolean>; max_per_source: number };
    assert.equal([info.policy, info.screens, info.max_per_source], [policyHash, { references: true, prompt: true, output: true }, MAX_PER_SOURCE]);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  const lines = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { door: string; action: string; rule?: string });
  assert.ok(lines.some((l) => l.door === 'output' && l.action === 'block' && l.rule === 'concept:penguin'), 'the blocked output is in the audit log');
  assert.ok(lines.some((l) => l.door === 'output' && l.action === 'allow'), 'allowed outputs are in the audit log');
});

test('createServer takes the hooks once: from the rag or as options.safety, not both', async () => {
  const enc = await loadClipEncoders(MODEL);
  const guard = await SafetyGuard.create(POLICY, { encoder: enc });
  const guarded = await RagPipeline.load(MODEL, guard.ragOptions());
  const plain = new RagPipeline(guarded.pipeline);
  try {
    await createServer({ rag: guarded, safety: guard.ragOptions(), page: false }).then(() => assert.unreachable('accepted two sets of hooks'), (e: { code: string }) => assert.is(e.code, 'INVALID_ARGUMENT'));
    for (const rag of [guarded, plain]) {
      const s = await createServer({ rag, ...(rag === plain ? { safety: guard.ragOptions() } : {}), page: false });
      try {
        const r = await s.app.inject({ method: 'POST', url: '/v1/images/generations', payload: { prompt: 'bomb', steps: 1 } });
        assert.is(r.statusCode, 403);
        assert.match(await (await s.app.inject({ method: 'GET', url: '/metrics' })).body, /stage="prompt",decision="refuse"\} 1/);
      } finally {
        await s.close({ graceMs: 0 });
      }
    }
  } finally {
    await guarded.close();
    guard.close();
    await enc.close();
  }
});

test('the same verdicts on every surface', () => {
  const lib = results.get('library')!;
  const expected: Record<string, Pick<Verdict, 'verdict' | 'rule'>> = {
    'blocked prompt': { verdict: 'PROMPT_BLOCKED', rule: 'concept:bomb' },
    'blocked text query': { verdict: 'PROMPT_BLOCKED', rule: 'concept:bomb' },
    'blocked pinned reference': { verdict: 'REFERENCE_BLOCKED', rule: 'concept:bomb' },
    'blocked output': { verdict: 'OUTPUT_BLOCKED', rule: 'concept:penguin' },
    'allowed, capped per source': { verdict: 'ALLOWED', rule: null },
  };
  for (const c of CASES) assert.equal({ verdict: lib.get(c.name)!.verdict, rule: lib.get(c.name)!.rule }, expected[c.name], c.name);
  const allowed = lib.get('allowed, capped per source')!;
  assert.is(allowed.images, 1);
  assert.is(allowed.perSource, MAX_PER_SOURCE, 'k = 4 from one source: the cap keeps 2');
  assert.ok(allowed.capped >= 1, 'the cap is reported');
  assert.is(allowed.stamp, policyHash, 'the policy is stamped into the PNG');
  for (const surface of ['cli', 'http']) {
    for (const c of CASES) {
      if (surface === 'cli' && c.query) continue;
      assert.equal(results.get(surface)!.get(c.name), lib.get(c.name), `${surface}: ${c.name}`);
    }
  }
});

test.run();
