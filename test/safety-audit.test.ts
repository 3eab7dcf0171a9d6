/**
 * The audit log: every safety decision is one JSON line (time, door, item,
 * rule, score, action, policy hash), rotated by size, never holding image
 * bytes or more of a prompt than configured, intact under concurrent writes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { AuditLog, SafetyGuard } from '../src/safety/index.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-safety-audit-');
let enc: ClipEncoders;

const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []);
const inputs = (names: string[]): AddInput[] => demoInputs('twemoji').filter((i) => names.includes((i as { meta?: { name?: string } }).meta?.name ?? ''));

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
});
test.after(async () => {
  await enc.close();
  t.cleanup();
});

test('rotation: audit.log → .1 → … → .keep by size; no line is split or lost among the files kept', () => {
  const path = `${t.dir}/rot/audit.log`;
  const log = new AuditLog({ path, maxBytes: 1000, keep: 3 });
  for (let i = 0; i < 60; i++) log.record({ door: 'retrieval', item: `img-${i}`, rule: 'concept:x', score: 0.1, action: 'block', policy: 'h'.repeat(64) });
  log.close();
  assert.ok(existsSync(path) && existsSync(`${path}.1`) && existsSync(`${path}.2`) && existsSync(`${path}.3`));
  assert.not.ok(existsSync(`${path}.4`), 'only `keep` rotated files are kept');
  for (const f of [path, `${path}.1`, `${path}.2`, `${path}.3`]) assert.ok(statSync(f).size <= 1000, f);
  const all = [`${path}.3`, `${path}.2`, `${path}.1`, path].flatMap(lines);
  const ids = all.map((l) => Number(String(l.item).slice(4)));
  assert.is(ids[ids.length - 1], 59, 'the newest line is in audit.log');
  ids.forEach((id, i) => i > 0 && assert.is(id, ids[i - 1]! + 1, 'contiguous, oldest first'));
  for (const l of all) {
    assert.type(l.time, 'string');
    assert.is(l.door, 'retrieval');
    assert.is(l.action, 'block');
  }
  assert.is(log.written, 60);
});

test('concurrent decisions from one process never interleave; prompts are truncated and hashed, never logged whole', async () => {
  const path = `${t.dir}/conc/audit.log`;
  const audit = new AuditLog({ path, maxPromptChars: 8, maxBytes: 4096, keep: 50 });
  const guard = await SafetyGuard.create({ version: 'c1', concepts: [{ id: 'pistol', text: ['pistol'], threshold: 0.55, promptThreshold: 0.62 }] }, { encoder: enc, audit });
  const prompts = Array.from({ length: 40 }, (_, i) => (i % 2 ? `water pistol number ${i}` : `a banana in a bowl number ${i}`));
  const decisions = await Promise.all(prompts.map((p) => guard.checkPrompt(p)));
  guard.close();
  const files = [path, ...Array.from({ length: 50 }, (_, i) => `${path}.${i + 1}`)];
  const all = files.flatMap(lines).filter((l) => l.door === 'prompt');
  assert.is(all.length, prompts.length, 'one line per decision');
  assert.is(all.filter((l) => l.action === 'block').length, decisions.filter((d) => d.action === 'block').length);
  for (const l of all) {
    assert.ok((l.prompt as string).length <= 8);
    assert.match(String(l.item), /^prompt:[0-9a-f]{16}$/);
    assert.is(l.policy, guard.policy.hash);
    assert.is(l.version, 'c1');
  }
  const text = files.filter(existsSync).map((f) => readFileSync(f, 'utf8')).join('');
  assert.not.ok(text.includes('water pistol number'), 'no whole prompt in the log');
  assert.ok(text.includes('"water pi"'));
});

test('every decision of an ingest and a generation is recorded (door, item, rule, score, action, policy hash), with no image bytes', async () => {
  const path = `${t.dir}/flow/audit.log`;
  const guard = await SafetyGuard.create(repoPath('policies/default.json'), { encoder: enc, audit: { path } });
  const store = await ImageStore.open(`${t.dir}/flow/store`, { encoder: enc, screen: guard.imageScreen() });
  const rag = await RagPipeline.load(repoPath('models/tiny-emoji'), guard.ragOptions());
  try {
    const names = ['red apple', 'banana', 'cat face', 'automobile', 'pistol'];
    const report = await store.add(inputs(names), { source: 'twemoji', licence: 'CC-BY-4.0' });
    let log = lines(path);
    const ingest = log.filter((l) => l.door === 'ingest');
    assert.is(ingest.length, names.length, 'one decision per ingested image');
    assert.is(ingest.filter((l) => l.action === 'block').length, report.items.filter((i) => i.status === 'blocked').length);
    assert.ok(ingest.some((l) => l.action === 'block' && l.rule === 'concept:pistol' && (l.score as number) > 0));
    for (const l of ingest) assert.match(String(l.item), /^sha256:[0-9a-f]{64}$/);

    const before = log.length;
    const r = await rag.generate({ prompt: 'banana', seed: 1, steps: 4, batch: 2, retrieval: { store, k: 2 } });
    log = lines(path).slice(before);
    assert.is(log.filter((l) => l.door === 'prompt').length, 1);
    assert.is(log.filter((l) => l.door === 'retrieval').length, r.stats.retrieval!.candidates, 'every retrieved candidate screened and logged');
    assert.is(log.filter((l) => l.door === 'output').length, 2, 'every generated image');
    await rejects(rag.generate({ prompt: 'water pistol', steps: 4 }), hasErrorCode('PROMPT_BLOCKED'));
    const last = lines(path).at(-1)!;
    assert.equal([last.door, last.action, last.rule], ['prompt', 'block', 'concept:pistol']);
    for (const l of lines(path)) {
      assert.is(l.policy, guard.policy.hash);
      assert.ok(JSON.stringify(l).length < 600, 'no image bytes');
    }
    // A rejected policy update is logged and leaves the old hash on later lines.
    await rejects(guard.update({ version: 'broken', concepts: [{ id: 'x' }] }), hasErrorCode('POLICY_INVALID'));
    const rejected = lines(path).at(-1)!;
    assert.equal([rejected.door, rejected.action, rejected.policy], ['policy', 'reject', guard.policy.hash]);
  } finally {
    await rag.close();
    await store.close();
    guard.close();
  }
});

test.run();
