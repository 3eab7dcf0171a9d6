/**
 * The worker pool the pipeline and the encoders share (src/worker-pool.ts):
 * a model that fails to load in one of two workers is a typed rejection, the
 * other worker is never terminated inside InferenceSession.create (that
 * aborts the process) but closed once it has loaded; a pool whose lost worker
 * cannot be replaced fails its waiting work typed and starts again later.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { cpSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Pipeline, type GenerateRequest } from '../src/pipeline/index.js';
import { RagdiffError } from '../src/errors.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const url = (rel: string) => pathToFileURL(repoPath(rel)).href;

/** Runs node with `args`; resolves with its exit and output. A guard kills it after 120 s. */
function runNode(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  // A guard, not a timing assertion: a process kept alive by a worker that was never closed would not exit.
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((r) => child.on('exit', (code, signal) => (clearTimeout(guard), r({ code, signal, out, err }))));
}

test('a model that fails to load in one of two workers: typed rejection, no abort, the loaded worker closed', async () => {
  const t = tempDir();
  try {
    const corrupt = join(t.dir, 'text_encoder.onnx');
    writeFileSync(corrupt, 'this is not an onnx file');
    // Worker 0 opens the whole tiny-emoji bundle (its sessions take a while to open); worker 1's
    // first session is a corrupt file, so it fails while worker 0 is still inside InferenceSession.create.
    const script = `
      import { WorkerPool } from ${JSON.stringify(url('dist/src/worker-pool.js'))};
      import { readBundle } from ${JSON.stringify(url('dist/src/pipeline/bundle.js'))};
      import { RagdiffError } from ${JSON.stringify(url('dist/src/errors.js'))};
      const good = readBundle(${JSON.stringify(repoPath('models/tiny-emoji'))});
      const bad = { ...good, files: { ...good.files, textEncoder: ${JSON.stringify(corrupt)} } };
      const ready = [];
      try {
        await WorkerPool.start({
          url: new URL(${JSON.stringify(url('dist/src/pipeline/worker.js'))}),
          workerData: (i) => ({ manifest: i === 1 ? bad : good, options: { threads: 1 } }),
          size: 2,
          what: 'inference worker',
          onWarning: (m) => console.error(m),
        });
        console.log(JSON.stringify({ started: true }));
      } catch (e) {
        console.log(JSON.stringify({ name: e.name, code: e.code, typed: e instanceof RagdiffError, message: e.message }));
      }
      // Nothing else runs: the process ends by itself only if no worker is left.
    `;
    const r = await runNode(['--input-type=module', '-e', script]);
    assert.is(r.signal, null, `the process was killed by ${r.signal} (a worker terminated inside InferenceSession.create aborts it): ${r.err}`);
    assert.is(r.code, 0, r.err);
    const got = JSON.parse(r.out.trim().split('\n').at(-1)!) as { name?: string; code?: string; typed?: boolean; message?: string; started?: boolean };
    assert.not.ok(got.started, 'the pool must not start with a worker that failed');
    assert.is(got.code, 'MODEL_FILE_INVALID', JSON.stringify(got));
    assert.ok(got.typed, 'rebuilt as a RagdiffError');
    assert.ok(got.message!.includes(corrupt), `the message names the file: ${got.message}`);
  } finally {
    t.cleanup();
  }
});

test('Pipeline.load with two workers that both fail: the same typed error, no abort', async () => {
  const t = tempDir();
  try {
    cpSync(repoPath('test/fixtures/pipeline/tiny-bundle'), t.dir, { recursive: true });
    writeFileSync(join(t.dir, 'vae_decoder', 'model.onnx'), 'this is not an onnx file');
    await rejects(Pipeline.load(t.dir, { concurrency: 2 }), (e) => e instanceof RagdiffError && e.code === 'MODEL_FILE_INVALID' && e.message.includes(join('vae_decoder', 'model.onnx')));
  } finally {
    t.cleanup();
  }
});

test('a pipeline whose lost worker cannot be replaced fails waiting work typed, and a later call starts one again', async () => {
  const t = tempDir();
  const base: GenerateRequest = { prompt: 'a red cat', seed: 7, steps: 3, guidanceScale: 4 };
  try {
    cpSync(repoPath('test/fixtures/pipeline/tiny-bundle'), t.dir, { recursive: true });
    const pipeline = await Pipeline.load(t.dir);
    try {
      const before = await pipeline.generate(base);
      const unet = join(t.dir, 'unet', 'model.onnx');
      renameSync(unet, `${unet}.away`);
      const pool = (pipeline as unknown as { pool: { slots: { worker: { postMessage(m: unknown): void } }[]; starting: Set<unknown> } }).pool;
      pool.slots[0]!.worker.postMessage({ type: 'exit', code: 3 });
      // Lost with the job (WORKER_FAILED) or before it (the replacement's load error): typed either way.
      await rejects(pipeline.generate(base), (e) => e instanceof RagdiffError && (e.code === 'WORKER_FAILED' || e.code === 'MODEL_FILE_MISSING'));
      // Until the replacement has failed too, so that no worker is left, loaded or loading.
      for (let i = 0; i < 1200 && pool.starting.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.is(pool.slots.length + pool.starting.size, 0, 'no worker left');
      // The next call starts one, whose load error it gets (it used to wait forever).
      // A guard, not a timing assertion (and it keeps the process alive while the call waits).
      let timer: NodeJS.Timeout | undefined;
      const guard = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('generate() is still waiting for a worker after 60 s')), 60_000)));
      try {
        await rejects(Promise.race([pipeline.generate(base), guard]), (e) => e instanceof RagdiffError && e.code === 'MODEL_FILE_MISSING');
      } finally {
        clearTimeout(timer);
      }
      renameSync(`${unet}.away`, unet);
      const after = await pipeline.generate(base);
      assert.ok(Buffer.compare(after.images[0]!.png, before.images[0]!.png) === 0, 'the replacement generates the same PNG');
    } finally {
      await pipeline.close();
    }
  } finally {
    t.cleanup();
  }
});

test('close() while a replacement is loading waits for it and closes it: nothing is left loading or loaded', async () => {
  const script = `
    import { Pipeline } from ${JSON.stringify(url('dist/src/pipeline/index.js'))};
    const pipeline = await Pipeline.load(${JSON.stringify(repoPath('models/tiny-emoji'))});
    const pool = pipeline.pool;
    pool.slots[0].worker.postMessage({ type: 'exit', code: 3 });
    while (pool.starting.size === 0) await new Promise((r) => setTimeout(r, 1));
    await pipeline.close();
    console.log(JSON.stringify({ loading: pool.starting.size, loaded: pool.slots.length }));
    process.exit(0); // ends every worker at once, which must not find one inside InferenceSession.create
  `;
  const r = await runNode(['--input-type=module', '-e', script]);
  assert.is(r.signal, null, `the process was killed by ${r.signal}: ${r.err}`);
  assert.is(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out.trim().split('\n').at(-1)!), { loading: 0, loaded: 0 });
});

test.run();
