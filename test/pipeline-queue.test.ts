// Serving behaviour: bounded queue with an immediate BusyError, concurrency,
// abort (queued and running), callbacks that throw, worker loss, close, and
// load-time failures (bad files, unavailable execution providers).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline, type GenerateRequest } from '../src/pipeline/index.js';
import { AbortError, BusyError } from '../src/errors.js';
import { repoPath, tempDir, rejects, hasErrorCode } from './helpers.js';



const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');
const base: GenerateRequest = { prompt: 'a red cat', seed: 7, steps: 6, guidanceScale: 4 };

function settled<T>(p: Promise<T>): { done: () => boolean; p: Promise<T> } {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  return { done: () => done, p };
}

test('a full queue rejects at once with BusyError; admitted work completes', async () => {
  const pipeline = await Pipeline.load(BUNDLE, { concurrency: 1, maxQueue: 1 });
  try {
    const running = settled(pipeline.generate({ ...base, steps: 300 }));
    const queued = settled(pipeline.generate(base));
    let busy: unknown;
    try {
      await pipeline.generate(base);
    } catch (e) {
      busy = e;
    }
    assert.ok(busy instanceof BusyError, 'third call is refused');
    assert.is((busy as BusyError).code, 'BUSY');
    assert.not.ok(running.done(), 'refused while the first generation is still running');
    assert.equal(pipeline.queueState, { running: 1, queued: 1, capacity: 2 });
    await running.p;
    await queued.p;
    assert.equal(pipeline.queueState, { running: 0, queued: 0, capacity: 2 });
    await pipeline.generate(base); // capacity is back
  } finally {
    await pipeline.close();
  }
});

test('abort while running stops within a step or so, and the pipeline serves the next call identically', async () => {
  const pipeline = await Pipeline.load(BUNDLE);
  try {
    const reference = await pipeline.generate(base);
    const controller = new AbortController();
    let last = 0;
    let seenAtAbort = 0;
    const p = pipeline.generate({
      ...base,
      steps: 500,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.stage !== 'denoise') return;
        last = e.step;
        if (e.step === 5) {
          seenAtAbort = e.step;
          controller.abort();
        }
      },
    });
    await rejects(p, (e: unknown) => e instanceof AbortError && (e as AbortError).code === 'ABORTED');
    assert.ok(seenAtAbort === 5);
    assert.ok(last < 500, `stopped early (last step reported ${last})`);
    assert.equal(pipeline.queueState.running, 0);
    const after = await pipeline.generate(base);
    assert.ok(after.images[0]!.png.equals(reference.images[0]!.png));
  } finally {
    await pipeline.close();
  }
});

test('an already-aborted signal rejects at once: nothing is queued, no callback runs', async () => {
  const pipeline = await Pipeline.load(BUNDLE);
  try {
    const c = new AbortController();
    c.abort();
    const events: string[] = [];
    await rejects(pipeline.generate({ ...base, signal: c.signal, onProgress: (e) => events.push(e.stage) }), (e: unknown) => e instanceof AbortError);
    assert.equal(events, []);
    assert.equal(pipeline.queueState, { running: 0, queued: 0, capacity: 17 });
  } finally {
    await pipeline.close();
  }
});

test('abort while queued leaves the queue at once without touching the running job', async () => {
  const pipeline = await Pipeline.load(BUNDLE);
  try {
    const running = settled(pipeline.generate({ ...base, steps: 300 }));
    const controller = new AbortController();
    const started: string[] = [];
    const queued = pipeline.generate({ ...base, signal: controller.signal, onProgress: (e) => {
      started.push(e.stage);
      if (e.stage === 'queued') controller.abort();
    } });
    await rejects(queued, (e: unknown) => e instanceof AbortError);
    assert.not.ok(running.done());
    assert.equal(started, ['queued'], 'never reached a worker');
    await running.p;
  } finally {
    await pipeline.close();
  }
});

test('an error thrown by onProgress aborts the generation and is what it rejects with', async () => {
  const pipeline = await Pipeline.load(BUNDLE);
  try {
    const boom = new Error('progress callback failed');
    await rejects(pipeline.generate({ ...base, steps: 200, onProgress: (e) => { if (e.step === 3) throw boom; } }), (e: unknown) => e === boom);
    await pipeline.generate(base);
  } finally {
    await pipeline.close();
  }
});

test('two workers run two generations at once with the same results as one worker', async () => {
  const pipeline = await Pipeline.load(BUNDLE, { concurrency: 2, threads: 1 });
  try {
    const a = pipeline.generate({ ...base, steps: 100 });
    const b = pipeline.generate({ ...base, steps: 100, seed: 9 });
    await new Promise((r) => setImmediate(r));
    assert.is(pipeline.queueState.running, 2);
    const [ra, rb] = await Promise.all([a, b]);
    const one = await Pipeline.load(BUNDLE);
    try {
      assert.ok((await one.generate({ ...base, steps: 100 })).images[0]!.png.equals(ra.images[0]!.png));
      assert.ok((await one.generate({ ...base, steps: 100, seed: 9 })).images[0]!.png.equals(rb.images[0]!.png));
    } finally {
      await one.close();
    }
  } finally {
    await pipeline.close();
  }
});

test('a lost worker fails its generation with WORKER_FAILED and is replaced', async () => {
  const pipeline = await Pipeline.load(BUNDLE);
  try {
    const p = pipeline.generate({ ...base, steps: 500, onProgress: (e) => {
      // Not worker.terminate(): it can land inside onnxruntime's run, which then aborts the process.
      if (e.stage === 'denoise' && e.step === 2) (pipeline as unknown as { pool: { slots: { worker: { postMessage(m: unknown): void } }[] } }).pool.slots[0]!.worker.postMessage({ type: 'exit', code: 1 });
    } });
    await rejects(p, hasErrorCode('WORKER_FAILED'));
    const r = await pipeline.generate(base); // served by the replacement worker
    assert.is(r.images.length, 1);
  } finally {
    await pipeline.close();
  }
});

test('close rejects queued work with CLOSED, aborts running work, then refuses new calls', async () => {
  const pipeline = await Pipeline.load(BUNDLE);
  let isRunning!: () => void;
  const runningNow = new Promise<void>((r) => (isRunning = r));
  let isQueued!: () => void;
  const queuedNow = new Promise<void>((r) => (isQueued = r));
  const running = pipeline.generate({ ...base, steps: 500, onProgress: (e) => e.stage === 'denoise' && e.step === 1 && isRunning() });
  await runningNow;
  const queued = pipeline.generate({ ...base, onProgress: (e) => e.stage === 'queued' && isQueued() });
  await queuedNow;
  const closing = pipeline.close();
  await rejects(queued, hasErrorCode('CLOSED'));
  await rejects(running, (e: unknown) => e instanceof AbortError);
  await closing;
  await rejects(pipeline.generate(base), hasErrorCode('CLOSED'));
  await pipeline.close(); // idempotent
});

test('load errors name the file: corrupt model, wrong inputs', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const corrupt = join(dir, 'corrupt');
    cpSync(BUNDLE, corrupt, { recursive: true });
    writeFileSync(join(corrupt, 'unet', 'model.onnx'), 'this is not an onnx file');
    await rejects(Pipeline.load(corrupt), (e: unknown) => hasErrorCode('MODEL_FILE_INVALID')(e) && (e as Error).message.includes(join('unet', 'model.onnx')));
    const swapped = join(dir, 'swapped');
    cpSync(BUNDLE, swapped, { recursive: true });
    cpSync(join(BUNDLE, 'vae_decoder', 'model.onnx'), join(swapped, 'unet', 'model.onnx'));
    await rejects(Pipeline.load(swapped), (e: unknown) => hasErrorCode('MODEL_IO_MISMATCH')(e) && /missing inputs .*timestep/.test((e as Error).message));
    const badSchedule = join(dir, 'bad-schedule');
    cpSync(BUNDLE, badSchedule, { recursive: true });
    writeFileSync(join(badSchedule, 'scheduler', 'scheduler_config.json'), JSON.stringify({ _class_name: 'DDIMScheduler', beta_schedule: 'cosine-ish' }));
    await rejects(Pipeline.load(badSchedule), (e: unknown) => hasErrorCode('MODEL_FILE_INVALID')(e) && (e as Error).message.includes('scheduler_config.json'));
  } finally {
    cleanup();
  }
});

test('an execution provider that cannot load falls back to CPU with a warning', async () => {
  const warnings: string[] = [];
  const pipeline = await Pipeline.load(BUNDLE, { executionProviders: ['cuda'], onWarning: (m) => warnings.push(m) });
  try {
    if (pipeline.info.providers.includes('cuda')) return; // a machine with CUDA libraries: nothing to fall back from
    assert.equal(pipeline.info.providers, ['cpu']);
    assert.ok(warnings.some((w) => w.includes('cuda')), warnings.join('\n'));
    assert.is((await pipeline.generate(base)).images.length, 1);
  } finally {
    await pipeline.close();
  }
});

test('options are validated', async () => {
  await rejects(Pipeline.load(BUNDLE, { concurrency: 0 }), hasErrorCode('OUT_OF_RANGE'));
  await rejects(Pipeline.load(BUNDLE, { maxQueue: -1 }), hasErrorCode('OUT_OF_RANGE'));
  await rejects(Pipeline.load(repoPath('test/fixtures/pipeline/nope')), hasErrorCode('MODEL_FILE_MISSING'));
});

test.run();
