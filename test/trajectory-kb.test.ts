// The trajectory knowledge-base file: round trip through chunks and windows,
// appends, and every bad input as a typed error (checksums, truncation, a
// base for another model / sampler / steps / guidance / shape with the field
// named, not-a-base files, empty bases, a concurrent appender).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendTrajectories, checkBinding, createKnowledgeBase, KnowledgeBase, type KbBinding, type TrajectoryRecord,
} from '../src/trajectory/kb-file.js';
import { repoRoot, seededRandom, tempDir } from './helpers.js';

const SHAPE: [number, number, number] = [4, 3, 2];
const D = 24;
const BINDING: KbBinding = {
  modelHash: 'abc123', sampler: 'dpmpp-2m', scheduler: { _class_name: 'DPMSolverMultistepScheduler', steps_offset: 1, lambda_min_clipped: -Infinity },
  steps: 20, guidance: { mode: 'cfg', scale: 7.5, negativePrompt: '' }, width: 16, height: 12, latentShape: SHAPE,
};
const HEADER = { ...BINDING, keyStep: 5, valueSteps: [10, 12], history: true, embeddingDim: 3 };

function records(n: number, seed: number): TrajectoryRecord[] {
  const r = seededRandom(seed);
  const v = () => Float32Array.from({ length: D }, () => r() * 2 - 1);
  return Array.from({ length: n }, (_, i) => ({
    key: v(), values: [v(), v()], histories: [v(), v()], embedding: Float32Array.of(i, r(), -1), seed: seed * 1000 + i, prompt: `prompt ${seed}/${i} ✓`,
  }));
}
function code(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return (e as { code?: string }).code; }
  return 'no error';
}
function field(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return (e as { field?: string }).field; }
  return 'no error';
}

test('round trip: header, appended chunks, key windows, values with history, metadata', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    createKnowledgeBase(p, HEADER);
    const a = records(5, 1), b = records(3, 2);
    assert.is(appendTrajectories(p, a), 5);
    assert.is(appendTrajectories(p, b), 8);
    const kb = KnowledgeBase.open(p, { expect: BINDING });
    assert.is(kb.count, 8);
    assert.is(kb.chunks.length, 2);
    assert.equal(kb.header.valueSteps, [10, 12]);
    assert.is(kb.header.scheduler.lambda_min_clipped, '-Infinity'); // JSON has no -Infinity: stored as a string, compared the same way
    const all = [...a, ...b];
    const keys = kb.readAllKeys();
    all.forEach((rec, i) => assert.equal(keys.subarray(i * D, (i + 1) * D), rec.key));
    const windows = [...kb.keyWindows(5)];
    assert.equal(windows.map((w) => [w.first, w.count]), [[0, 5], [5, 3]]);
    const v = kb.readValue(6, 12);
    assert.equal(v.latent, b[1]!.values[1]);
    assert.equal(v.history, b[1]!.histories![1]);
    const m = kb.readMeta(6);
    assert.is(m.seed, 2001);
    assert.is(m.prompt, 'prompt 2/1 ✓');
    assert.equal([...m.embedding], [...b[1]!.embedding!]);
    kb.verify();
    kb.close();
    assert.is(code(() => kb.readAllKeys()), 'KB_CLOSED');
  } finally {
    cleanup();
  }
});

test('a base for another model / sampler / scheduler / steps / guidance / resolution / shape names the field', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    createKnowledgeBase(p, HEADER);
    appendTrajectories(p, records(2, 3));
    const cases: [Partial<KbBinding>, string][] = [
      [{ modelHash: 'other' }, 'modelHash'],
      [{ sampler: 'ddim' }, 'sampler'],
      [{ scheduler: { ...BINDING.scheduler, steps_offset: 0 } }, 'scheduler'],
      [{ steps: 25 }, 'steps'],
      [{ guidance: { mode: 'cfg', scale: 5, negativePrompt: '' } }, 'guidance.scale'],
      [{ guidance: { mode: 'cfg', scale: 7.5, negativePrompt: 'blurry' } }, 'guidance.negativePrompt'],
      [{ width: 32 }, 'width'],
      [{ latentShape: [4, 2, 3] }, 'latentShape'],
    ];
    for (const [change, name] of cases) {
      const expect = { ...BINDING, ...change };
      assert.is(code(() => KnowledgeBase.open(p, { expect })), 'KB_MISMATCH', name);
      assert.is(field(() => KnowledgeBase.open(p, { expect })), name);
    }
    const kb = KnowledgeBase.open(p);
    assert.is(field(() => checkBinding(kb.header, { ...BINDING, steps: 21 })), 'steps');
    assert.is(field(() => kb.readValue(0, 11)), 'valueStep');
    kb.close();
  } finally {
    cleanup();
  }
});

test('corrupted, truncated, empty and not-a-base files are typed errors', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    createKnowledgeBase(p, HEADER);
    const empty = KnowledgeBase.open(p);
    assert.is(empty.count, 0);
    assert.equal([...empty.keyWindows()], []);
    empty.close();
    appendTrajectories(p, records(4, 4));
    const good = readFileSync(p);
    const kb = KnowledgeBase.open(p);
    const ch = kb.chunks[0]!;
    kb.close();
    // a flipped bit in the keys: caught when the keys are read
    const bad = Buffer.from(good);
    bad[ch.offset + 32 + 5]! ^= 0x10;
    writeFileSync(p, bad);
    const k2 = KnowledgeBase.open(p);
    assert.is(code(() => k2.readAllKeys()), 'KB_CORRUPT');
    k2.close();
    // a flipped bit in a value: caught for that record
    const bad2 = Buffer.from(good);
    bad2[ch.offset + 32 + 4 * 4 * D + 4 * 4 + 3]! ^= 0x01;
    writeFileSync(p, bad2);
    const k3 = KnowledgeBase.open(p);
    assert.is(code(() => k3.readValue(0, 10)), 'KB_CORRUPT');
    k3.readValue(1, 10); // other records are intact
    k3.close();
    // a flipped bit in the header JSON / the chunk header
    const bad3 = Buffer.from(good);
    bad3[20]! ^= 0x02;
    writeFileSync(p, bad3);
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_CORRUPT');
    const bad4 = Buffer.from(good);
    bad4[ch.offset + 5]! ^= 0x01; // record count
    writeFileSync(p, bad4);
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_CORRUPT');
    // truncated inside the chunk; inside the header
    writeFileSync(p, good);
    truncateSync(p, good.length - 9);
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_TRUNCATED');
    truncateSync(p, 30);
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_TRUNCATED');
    // not a base at all; another format version; missing
    writeFileSync(p, 'name,prompt\nx,y\n');
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_NOT_A_BASE');
    writeFileSync(p, '');
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_NOT_A_BASE');
    const v2 = Buffer.from(good);
    v2.writeUInt32LE(2, 4);
    writeFileSync(p, v2);
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_VERSION');
    assert.is(code(() => KnowledgeBase.open(join(dir, 'missing'))), 'KB_NOT_FOUND');
  } finally {
    cleanup();
  }
});

test('bad records and headers are refused before anything is written', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    assert.is(code(() => createKnowledgeBase(p, { ...HEADER, valueSteps: [5] })), 'KB_INVALID'); // value step not after key step
    assert.is(existsSync(p), false);
    createKnowledgeBase(p, HEADER);
    assert.is(code(() => createKnowledgeBase(p, HEADER)), 'KB_EXISTS');
    const size = statSync(p).size;
    const r = records(2, 5);
    assert.is(code(() => appendTrajectories(p, [{ ...r[0]!, key: new Float32Array(3) }])), 'KB_INVALID');
    assert.is(code(() => appendTrajectories(p, [{ ...r[0]!, histories: undefined }])), 'KB_INVALID');
    const nan = r[1]!.values[0]!.slice();
    nan[2] = NaN;
    assert.is(code(() => appendTrajectories(p, [{ ...r[1]!, values: [nan, nan] }])), 'KB_INVALID');
    assert.is(code(() => appendTrajectories(p, [])), 'KB_INVALID');
    assert.is(statSync(p).size, size);
    assert.is(existsSync(`${p}.lock`), false);
  } finally {
    cleanup();
  }
});

test('an interrupted append (zeroed tail, no lock holder) is cut by the next appender', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    createKnowledgeBase(p, HEADER);
    appendTrajectories(p, records(2, 6));
    const size = statSync(p).size;
    writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.alloc(100)]));
    // While a live appender holds the lock (here: another thread of this process), the tail is an append in progress.
    writeFileSync(`${p}.lock`, String(process.pid));
    const during = KnowledgeBase.open(p);
    assert.is(during.count, 2);
    assert.is(during.appendInProgress, true);
    during.close();
    rmSync(`${p}.lock`);
    assert.is(code(() => KnowledgeBase.open(p)), 'KB_TRUNCATED');
    appendTrajectories(p, records(1, 7));
    const kb = KnowledgeBase.open(p);
    assert.is(kb.count, 3);
    assert.ok(statSync(p).size > size);
    kb.verify();
    kb.close();
  } finally {
    cleanup();
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a concurrent appender in another process: readers see only complete chunks, a second appender gets KB_LOCKED', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    createKnowledgeBase(p, HEADER);
    appendTrajectories(p, records(2, 8));
    const size = statSync(p).size;
    const mod = join(repoRoot, 'dist', 'src', 'trajectory', 'kb-file.js');
    // The child writes a 3-record chunk, then holds the lock for 1.5 s before committing it.
    const script = `
      const { appendTrajectories } = await import(${JSON.stringify(mod)});
      const v = () => new Float32Array(${D}).fill(0.5);
      const recs = [0, 1, 2].map((i) => ({ key: v(), values: [v(), v()], histories: [v(), v()], embedding: new Float32Array(3), seed: i, prompt: 'child' }));
      appendTrajectories(${JSON.stringify(p)}, recs, { beforeCommit: () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500) });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    for (let i = 0; i < 200 && !(existsSync(`${p}.lock`) && statSync(p).size > size); i++) await sleep(10);
    assert.ok(statSync(p).size > size, 'the child wrote its chunk body');
    const kb = KnowledgeBase.open(p);
    assert.is(kb.count, 2, 'the uncommitted chunk is not visible');
    assert.is(kb.appendInProgress, true);
    kb.readAllKeys();
    assert.is(code(() => appendTrajectories(p, records(1, 9))), 'KB_LOCKED');
    assert.is(await exited, 0);
    kb.refresh();
    assert.is(kb.count, 5);
    assert.is(kb.appendInProgress, false);
    kb.verify();
    kb.close();
    assert.is(appendTrajectories(p, records(1, 10)), 6);
  } finally {
    cleanup();
  }
});

test.run();
