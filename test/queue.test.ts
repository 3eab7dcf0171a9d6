/**
 * The BullMQ queue end to end over a loopback redis-server: QueueGenerator in
 * front of an in-process worker running tiny-emoji. Progress and the result
 * arrive through Redis, the images through the blob directory (never Redis);
 * bad jobs fail typed and the worker carries on; cancel reaches the worker.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Queue, QueueEvents } from 'bullmq';
import { LocalGenerator } from '../src/generator/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { BlobDir, openRedis, QueueGenerator, startQueueWorker, type QueueWorker } from '../src/queue/index.js';
import type { ProgressEvent } from '../src/pipeline/index.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';
import { startRedis, type TestRedis } from './fixtures/queue/redis-server.js';

let redis: TestRedis;
let rag: RagPipeline;
let local: LocalGenerator;
let worker: QueueWorker;
let gen: QueueGenerator;
let blobs: BlobDir;
let raw: Queue;
let events: QueueEvents;
const t = tempDir('ragdiff-queue-');

test.before(async () => {
  redis = await startRedis();
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
  local = new LocalGenerator(rag);
  blobs = new BlobDir(`${t.dir}/blobs`);
  worker = await startQueueWorker({ url: redis.url, generator: local, blobs });
  gen = await QueueGenerator.open({ url: redis.url, model: local.info().id, blobs, maxQueued: 4, waitForWorkerMs: 5_000 });
  raw = new Queue('ragdiff', { connection: { url: redis.url } });
  events = new QueueEvents('ragdiff', { connection: { url: redis.url } });
  await events.waitUntilReady();
});

test.after(async () => {
  await gen?.close();
  await worker?.close();
  await events?.close();
  await raw?.close();
  await rag?.close();
  await redis?.stop();
  t.cleanup();
});

test('a queued generation streams progress and returns the same images as in-process, with no image bytes in Redis', async () => {
  const progress: ProgressEvent[] = [];
  const r = await gen.generate({ prompt: 'red apple', seed: 7, steps: 6, batch: 1 }, { onProgress: (e) => progress.push(e) });
  const direct = await local.generate({ prompt: 'red apple', seed: 7, steps: 6, batch: 1 });
  assert.is(r.images.length, 1);
  assert.ok(Buffer.isBuffer(r.images[0]!.png));
  assert.ok(r.images[0]!.png.equals(direct.images[0]!.png), 'the queued PNG is byte-identical to the in-process one');
  assert.ok(progress.some((e) => e.stage === 'denoise' && e.step === 6), `progress reached the last step: ${JSON.stringify(progress.slice(-3))}`);
  // What BullMQ kept: keys, not pictures.
  const done = (await raw.getJobs(['completed']))[0]!;
  const stored = JSON.stringify(done.returnvalue);
  assert.match(String(done.returnvalue.images[0].png), /^[0-9a-f]{64}$/);
  assert.ok(stored.length < 20_000 && !stored.includes('"Buffer"'), `returnvalue holds no image (${stored.length} chars)`);
  assert.ok(!JSON.stringify(done.data).includes('"Buffer"'));
});

test('a malformed payload fails JOB_INVALID and the worker carries on', async () => {
  for (const data of [{ v: 1, model: local.info().id, request: 42 }, { v: 99 }, { v: 1, model: local.info().id, request: { prompt: 'x', retrieval: { references: [{ blob: '../../etc/passwd' }] } } }]) {
    const job = await raw.add('generate', data);
    await rejects(job.waitUntilFinished(events, 20_000), (e) => /^\[JOB_INVALID\] malformed job payload/.test((e as Error).message), JSON.stringify(data));
  }
  // Edited in Redis to something that is not JSON at all (BullMQ itself would choke on it before any processor).
  await raw.pause();
  const edited = await raw.add('generate', { v: 1 });
  const client = await openRedis(redis.url);
  await client.hset(`bull:ragdiff:${edited.id}`, 'data', '{not json');
  client.disconnect();
  await raw.resume();
  await rejects(edited.waitUntilFinished(events, 20_000), (e) => /^\[JOB_INVALID\] malformed job payload: not JSON/.test((e as Error).message));
  await raw.remove(edited.id!); // BullMQ's own getters cannot list a job whose data is not JSON
  const r = await gen.generate({ prompt: 'blue car', seed: 1, steps: 2, batch: 1 });
  assert.is(r.images.length, 1, 'the worker still generates');
});

test('a job for another model is not run by this worker: MODEL_MISMATCH, typed', async () => {
  const job = await raw.add('generate', { v: 1, model: 'other-model@0123456789abcdef', request: { prompt: 'x', steps: 2 } });
  await rejects(job.waitUntilFinished(events, 20_000), (e) => /^\[MODEL_MISMATCH\] the job asks for model other-model/.test((e as Error).message));
});

test('a bad request is the same typed error as in-process', async () => {
  await rejects(gen.generate({ prompt: 'x', steps: 0, batch: 1 }), (e) => hasErrorCode('OUT_OF_RANGE')(e) || hasErrorCode('INVALID_VALUE')(e));
  await rejects(gen.generate({ prompt: 'x', steps: 2, batch: 1, retrieval: {} }), hasErrorCode('NO_STORE'));
});

test('aborting the signal cancels the job on the worker that runs it', async () => {
  const controller = new AbortController();
  let steps = 0;
  const p = gen.generate({ prompt: 'green tree', seed: 2, steps: 200, batch: 1 }, {
    signal: controller.signal,
    onProgress: (e) => {
      if (e.stage === 'denoise' && ++steps === 2) controller.abort(new Error('the client disconnected'));
    },
  });
  await rejects(p, hasErrorCode('ABORTED'));
  const failed = await raw.getJobs(['failed']);
  const mine = failed.find((j) => j.data?.request?.steps === 200)!;
  assert.ok(mine, 'the cancelled job is failed in the queue');
  assert.match(mine.failedReason, /^\[ABORTED\]/);
  const last = mine.progress as unknown as ProgressEvent;
  assert.ok(last.step < 200, `the worker stopped early (last progress ${JSON.stringify(last)})`);
});

test('a full queue answers BUSY at once', async () => {
  const controller = new AbortController();
  const running = [0, 1, 2, 3].map((i) => gen.generate({ prompt: 'sun', seed: i, steps: 200, batch: 1 }, { signal: controller.signal }).catch((e) => e));
  for (;;) {
    const c = await gen.jobCounts();
    if ((c.waiting ?? 0) + (c.active ?? 0) >= 4) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await rejects(gen.generate({ prompt: 'sun', steps: 2, batch: 1 }), hasErrorCode('BUSY'));
  controller.abort(new Error('done'));
  for (const e of await Promise.all(running)) assert.ok(hasErrorCode('ABORTED')(e), String(e));
});

test('a Redis that may evict keys is refused at start (worker and server side)', async () => {
  const lru = await startRedis('allkeys-lru');
  try {
    await rejects(startQueueWorker({ url: lru.url, generator: local, blobs }), hasErrorCode('QUEUE_MISCONFIGURED'));
    await rejects(QueueGenerator.open({ url: lru.url, model: local.info().id, blobs, waitForWorkerMs: 100 }), hasErrorCode('QUEUE_MISCONFIGURED'));
  } finally {
    await lru.stop();
  }
  await rejects(openRedis('http://127.0.0.1:1'), hasErrorCode('URL_SCHEME'));
  await rejects(QueueGenerator.open({ url: `redis://127.0.0.1:${redis.port}`, model: 'nobody@0000000000000000', blobs, waitForWorkerMs: 300 }), hasErrorCode('NO_WORKER'));
});

test.run();
