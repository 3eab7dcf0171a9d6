/**
 * The encoders hosted in worker threads (the default of loadClipEncoders):
 * the same embeddings as in-process, calls split across workers put back in
 * order, concurrent calls, errors that stay typed across the thread hop, close,
 * the loss of a worker, and a process that exits on its own when the encoder
 * is idle.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RagdiffError } from '../src/errors.js';
import { decodeImage } from '../src/image/decode.js';
import { splitSizes } from '../src/models/encoder-pool.js';
import { loadClipEncoders, type ClipEncoders, type RgbImage } from '../src/models/encoders.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const bundle = repoPath('models/tiny-emoji');
const emojiDir = repoPath('node_modules/emoji-datasource-twitter/img/twitter/64');
const texts = ['red apple', 'a dog', 'pizza', 'a rocket', '', 'green heart', 'the sun', 'a cat face', 'blue car', 'snowman', 'ice cream', 'a tree'];

let images: RgbImage[] = [];
let local: ClipEncoders;
let refImages: Float32Array[];
let refTexts: Float32Array[];

interface PoolInternals {
  backend: {
    pool: { slots: { worker: { postMessage(m: unknown, t?: unknown): void } }[] };
    embedImages(images: readonly RgbImage[]): Promise<Float32Array[]>;
  };
}
const slotsOf = (e: ClipEncoders) => (e as unknown as PoolInternals).backend.pool.slots;

const maxAbsDiff = (a: readonly Float32Array[], b: readonly Float32Array[]) => {
  assert.is(a.length, b.length);
  let m = 0;
  a.forEach((v, i) => v.forEach((x, j) => (m = Math.max(m, Math.abs(x - b[i]![j]!)))));
  return m;
};
const identical = (a: readonly Float32Array[], b: readonly Float32Array[], what: string) => {
  assert.is(a.length, b.length, what);
  a.forEach((v, i) => assert.ok(v.length === b[i]!.length && v.every((x, j) => Object.is(x, b[i]![j])), `${what}: row ${i} differs`));
};
const checkType = (cls: ErrorConstructor, code: string) => (e: unknown) => e instanceof cls && hasErrorCode(code)(e);

test.before(async () => {
  const files = readdirSync(emojiDir).filter((f) => f.endsWith('.png')).sort().slice(0, 38);
  images = await Promise.all(files.map(async (f) => decodeImage(readFileSync(join(emojiDir, f)), { width: 64, height: 64 })));
  // Two of another size take the resize path inside the worker.
  images.push(await decodeImage(readFileSync(join(emojiDir, files[0]!)), { width: 96, height: 80 }));
  images.push(await decodeImage(readFileSync(join(emojiDir, files[1]!)), { width: 40, height: 40 }));
  local = await loadClipEncoders(bundle, { workers: 0 });
  refImages = await local.embedImages(images);
  refTexts = await local.embedText(texts);
});

test.after(async () => {
  await local.close();
});

test('calls are cut into whole ONNX batches, or one piece per worker when smaller than a batch', () => {
  assert.equal(splitSizes(130, 1, 64), [64, 64, 2]);
  assert.equal(splitSizes(130, 2, 64), [64, 64, 2]);
  assert.equal(splitSizes(10, 2, 4), [4, 4, 2]);
  assert.equal(splitSizes(32, 2, 64), [16, 16]);
  assert.equal(splitSizes(10, 2, 64), [10], 'too small to be worth splitting');
  assert.equal(splitSizes(1, 4, 64), [1]);
  const big = splitSizes(4096, 2, 64);
  assert.is(big.length, 64);
  assert.ok(big.every((s) => s === 64));
});

test('one worker gives bit-identical embeddings to the in-process encoder', async () => {
  const enc = await loadClipEncoders(bundle);
  try {
    assert.is(enc.workers, 1);
    assert.is(enc.dim, local.dim);
    assert.is(enc.id, local.id);
    assert.equal(enc.imageSize, local.imageSize);
    assert.is(enc.tokenWidth, local.tokenWidth);
    assert.is(enc.tokenizer.maxLength, local.tokenizer.maxLength);
    identical(await enc.embedImages(images), refImages, 'images');
    identical(await enc.embedText(texts), refTexts, 'texts');
    const a = await enc.encodeText(texts.slice(0, 3));
    const b = await local.encodeText(texts.slice(0, 3));
    assert.ok(a.hiddenStates!.length === b.hiddenStates!.length && a.hiddenStates!.every((x, i) => x === b.hiddenStates![i]), 'hidden states');
    assert.equal(await enc.embedImages([]), []);
    assert.equal(await enc.embedText([]), []);
  } finally {
    await enc.close();
  }
});

test('a call split across two workers comes back in input order, within 1e-6 of in-process', async () => {
  const enc = await loadClipEncoders(bundle, { workers: 2, batchSize: 4 });
  try {
    // The reference embeddings are distinct, so a piece put back in the wrong place would show.
    for (let i = 1; i < 10; i++) assert.ok(maxAbsDiff([refImages[i]!], [refImages[i - 1]!]) > 1e-3);
    const served = [0, 0];
    slotsOf(enc).forEach((s, k) => {
      const post = s.worker.postMessage.bind(s.worker);
      s.worker.postMessage = (m: unknown, t?: unknown) => {
        if ((m as { type: string }).type === 'images') served[k]++;
        post(m, t);
      };
    });
    const got = await enc.embedImages(images.slice(0, 10)); // pieces of 4 + 4 + 2
    assert.ok(served[0]! > 0 && served[1]! > 0, `both workers served (${served.join(', ')})`);
    assert.ok(maxAbsDiff(got, refImages.slice(0, 10)) <= 1e-6);
    const all = await enc.embedImages(images);
    assert.ok(maxAbsDiff(all, refImages) <= 1e-6);
    const t = await enc.encodeText(texts);
    assert.ok(maxAbsDiff(t.embeds, refTexts) <= 1e-6);
    const h = (await local.encodeText(texts)).hiddenStates!;
    assert.is(t.hiddenStates!.length, h.length);
    assert.ok(t.hiddenStates!.every((x, i) => Math.abs(x - h[i]!) <= 1e-6), 'hidden states of split text pieces in order');
  } finally {
    await enc.close();
  }
});

test('concurrent calls each get their own results', async () => {
  const enc = await loadClipEncoders(bundle, { workers: 2, batchSize: 8 });
  try {
    const calls: Promise<void>[] = [];
    for (let k = 0; k < 12; k++) {
      const from = (k * 7) % 30;
      const n = 1 + ((k * 5) % 11);
      calls.push(enc.embedImages(images.slice(from, from + n)).then((r) => assert.ok(maxAbsDiff(r, refImages.slice(from, from + n)) <= 1e-6, `image call ${k}`)));
      calls.push(enc.embedText([texts[k]!]).then((r) => assert.ok(maxAbsDiff(r, [refTexts[k]!]) <= 1e-6, `text call ${k}`)));
    }
    await Promise.all(calls);
  } finally {
    await enc.close();
  }
});

test('bad input is the same typed error as in-process, and errors raised in the worker stay typed', async () => {
  const enc = await loadClipEncoders(bundle);
  try {
    const bad: [unknown, ErrorConstructor, string][] = [
      [[{ rgb: new Uint8Array(10), width: 64, height: 64 }], RangeError, 'LENGTH_MISMATCH'],
      [[{ rgb: [1, 2, 3], width: 1, height: 1 }], TypeError, 'INVALID_TYPE'],
      [[{ rgb: new Uint8Array(0), width: 0, height: 64 }], RangeError, 'OUT_OF_RANGE'],
      ['not an array', TypeError, 'INVALID_TYPE'],
    ];
    for (const [input, cls, code] of bad) {
      await rejects(local.embedImages(input as RgbImage[]), checkType(cls, code), `in-process ${code}`);
      await rejects(enc.embedImages(input as RgbImage[]), checkType(cls, code), `worker ${code}`);
    }
    await rejects(enc.embedText([42 as never]), checkType(TypeError, 'INVALID_TYPE'));
    // Past the caller-side checks, straight to the worker: it checks again and its error crosses typed.
    const pool = (enc as unknown as PoolInternals).backend;
    let err: unknown;
    await pool.embedImages([images[0]!, { rgb: new Uint8Array(10), width: 64, height: 64 }]).catch((e) => (err = e));
    assert.ok(err instanceof RangeError, String(err));
    assert.is((err as { code?: string }).code, 'LENGTH_MISMATCH');
    assert.match((err as Error).message, /images\[1\]/);
    assert.ok(typeof (err as { workerStack?: string }).workerStack === 'string', 'the worker stack is kept');
    // The worker is still usable afterwards.
    identical(await enc.embedText(texts.slice(0, 2)), refTexts.slice(0, 2), 'after an error');
  } finally {
    await enc.close();
  }
});

test('load errors raised in the worker are typed and name the file; bad options fail before any worker starts', async () => {
  const t = tempDir();
  try {
    cpSync(bundle, t.dir, { recursive: true, filter: (src) => !src.includes('unet') && !src.includes('vae') });
    rmSync(join(t.dir, 'image_encoder'), { recursive: true });
    let err: unknown;
    await loadClipEncoders(t.dir, { workers: 2 }).catch((e) => (err = e));
    assert.ok(err instanceof RagdiffError, String(err));
    assert.is((err as RagdiffError).code, 'MODEL_FILE_MISSING');
    assert.match((err as Error).message, /image_encoder/);
  } finally {
    t.cleanup();
  }
  for (const workers of [-1, 1.5, 17]) await rejects(loadClipEncoders(bundle, { workers }), checkType(RangeError, 'OUT_OF_RANGE'), `workers ${workers}`);
  await rejects(loadClipEncoders(bundle, { batchSize: 0 }), checkType(RangeError, 'OUT_OF_RANGE'));
  await rejects(loadClipEncoders('', {}), checkType(TypeError, 'INVALID_TYPE'));
});

test('close(): the call being embedded finishes, queued and later calls fail with CLOSED', async () => {
  for (const workers of [1, 0]) {
    const enc = await loadClipEncoders(bundle, { workers });
    const running = enc.embedImages(images.slice(0, 8));
    const queued = enc.embedText(['dog']);
    const closed = enc.close();
    const [r, q] = await Promise.allSettled([running, queued]);
    if (r.status === 'rejected') throw r.reason;
    identical(r.value, refImages.slice(0, 8), `workers ${workers}: in flight at close`);
    if (workers > 0) {
      // In-process, both calls started before close(), so both finish; a worker takes one at a time.
      assert.is(q.status, 'rejected');
      assert.ok(q.status === 'rejected' && q.reason instanceof RagdiffError && q.reason.code === 'CLOSED', 'queued at close');
    }
    await closed;
    await enc.close(); // twice is fine
    await rejects(enc.embedImages(images.slice(0, 1)), (e) => e instanceof RagdiffError && e.code === 'CLOSED', `workers ${workers}: images after close`);
    await rejects(enc.embedText(['dog']), (e) => e instanceof RagdiffError && e.code === 'CLOSED', `workers ${workers}: text after close`);
  }
});

test('a worker lost while a call is pending fails that call with WORKER_FAILED; it is replaced and the next call works', async () => {
  for (const workers of [1, 2]) {
    const enc = await loadClipEncoders(bundle, { workers, batchSize: 8 });
    try {
      // The worker reads this before the piece sent next, so it ends with that piece unanswered;
      // which the caller cannot tell from a crash during the model call.
      slotsOf(enc)[0]!.worker.postMessage({ type: 'exit', code: 3 });
      const p = enc.embedImages(images.slice(0, 24));
      await rejects(p, (e) => e instanceof RagdiffError && e.code === 'WORKER_FAILED', `workers ${workers}`);
      identical(await enc.embedText(texts.slice(0, 4)), refTexts.slice(0, 4), `workers ${workers}: text after the loss`);
      identical(await enc.embedImages(images.slice(0, 24)), refImages.slice(0, 24), `workers ${workers}: images after the loss`);
      // The replacement may still be starting when the survivor has served the calls above.
      for (let i = 0; i < 600 && slotsOf(enc).length < workers; i++) await new Promise((r) => setTimeout(r, 50));
      assert.is(slotsOf(enc).length, workers, 'the pool is back to full size');
    } finally {
      await enc.close();
    }
  }
});

test('a worker that cannot be replaced fails the queued calls typed, and a later call starts one again', async () => {
  const t = tempDir();
  try {
    cpSync(bundle, t.dir, { recursive: true, filter: (src) => !src.includes('unet') && !src.includes('vae') });
    const enc = await loadClipEncoders(t.dir, { workers: 1 });
    try {
      rmSync(join(t.dir, 'image_encoder'), { recursive: true });
      slotsOf(enc)[0]!.worker.postMessage({ type: 'exit', code: 3 });
      const p = enc.embedText(['dog']);
      await rejects(p, hasErrorCode('WORKER_FAILED'));
      // The replacement cannot load: the call waiting for it gets the worker's load error, typed.
      await rejects(enc.embedText(['dog']), (e) => e instanceof RagdiffError && e.code === 'MODEL_FILE_MISSING');
      cpSync(join(bundle, 'image_encoder'), join(t.dir, 'image_encoder'), { recursive: true });
      identical(await enc.embedText(['dog']), await local.embedText(['dog']), 'after the files are back');
    } finally {
      await enc.close();
    }
  } finally {
    t.cleanup();
  }
});

/** Runs node with `args`; resolves with its exit and output. A guard kills it after 90 s. */
function runNode(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  // A guard, not a timing assertion: a process kept alive by its workers would never exit.
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise((r) => child.on('exit', (code, signal) => (clearTimeout(guard), r({ code, signal, out, err }))));
}

test('an idle encoder does not keep the process alive (under --input-type=module, and with a long command line)', async () => {
  const url = pathToFileURL(repoPath('dist/src/models/encoders.js')).href;
  const script = `
    import { loadClipEncoders } from ${JSON.stringify(url)};
    const enc = await loadClipEncoders(${JSON.stringify(bundle)}, { workers: 2 });
    const [t] = await enc.embedText(['a red apple']);
    const [i] = await enc.embedImages([{ rgb: new Uint8Array(64 * 64 * 3).fill(200), width: 64, height: 64 }]);
    console.log(JSON.stringify({ text: t.length, image: i.length, dim: enc.dim }));
    // no close(): the process must still end once the event loop is empty
  `;
  const t = tempDir();
  try {
    const file = join(t.dir, 'idle.mjs');
    writeFileSync(file, script);
    // ~110 KB of arguments: onnxruntime segfaulted in a worker with a fixed 8 MB stack at this length.
    const longArgv = Array.from({ length: 1300 }, (_, i) => `some-app-argument-${i}=${'x'.repeat(64)}`);
    const runs = await Promise.all([runNode(['--input-type=module', '-e', script]), runNode([file, ...longArgv])]);
    for (const [k, r] of runs.entries()) {
      assert.is(r.signal, null, `run ${k}: ended by signal (SIGKILL: the guard, it did not exit on its own; SIGSEGV: the worker stack)\n${r.err}`);
      assert.is(r.code, 0, `run ${k}: ${r.err}`);
      assert.equal(JSON.parse(r.out.trim()), { text: local.dim, image: local.dim, dim: local.dim });
    }
  } finally {
    t.cleanup();
  }
});

test.run();
