/**
 * The HTTP server over the queue: `ragdiff serve --queue redis://…` (the CLI,
 * as a child) hands generations to a worker; the answer, the SSE progress,
 * DELETE reaching the worker, and 429 + Retry-After from the queue depth.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { LocalGenerator, modelIdOf } from '../src/generator/index.js';
import { readBundle } from '../src/pipeline/index.js';
import { hashBundle } from '../src/pipeline/runner.js';
import { RagPipeline } from '../src/rag/index.js';
import { BlobDir, startQueueWorker, type QueueWorker } from '../src/queue/index.js';
import { repoPath, tempDir } from './helpers.js';
import { startRedis, type TestRedis } from './fixtures/queue/redis-server.js';

let redis: TestRedis;
let serve: ChildProcess | undefined;
let worker: QueueWorker;
let rag: RagPipeline;
let local: LocalGenerator;
let base: string;
const t = tempDir('ragdiff-queue-server-');
const post = (body: unknown) => fetch(`${base}/v1/images/generations`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

test.before(async () => {
  redis = await startRedis();
  const blobDir = join(t.dir, 'blobs');
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
  local = new LocalGenerator(rag);
  worker = await startQueueWorker({ url: redis.url, generator: local, blobs: new BlobDir(blobDir) });
  serve = spawn(process.execPath, [repoPath('dist/src/cli/main.js'), 'serve', '--queue', redis.url, '--blob-dir', blobDir, '--port', '0', '--without-store'], { stdio: ['ignore', 'pipe', 'pipe'] });
  base = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 60_000);
    serve!.stdout!.on('data', (d) => {
      out += d;
      const m = /page: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    serve!.stderr!.on('data', (d) => (out += d));
    serve!.once('exit', (code) => reject(new Error(`serve exited (${code}): ${out}`)));
  });
});

test.after(async () => {
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve!.once('exit', r));
    serve.kill('SIGTERM');
    await exited;
  }
  await worker?.close();
  await rag?.close();
  await redis?.stop();
  t.cleanup();
});

test('the server names the model the workers run (id from the bundle, without loading it)', async () => {
  const m = readBundle(repoPath('models/tiny-emoji'));
  assert.is(modelIdOf({ name: m.name, hash: hashBundle(m) }), local.info().id);
  const info = (await (await fetch(`${base}/v1/info`)).json()) as { model: string; size: string; modes: string[] };
  assert.is(info.model, local.info().name);
  assert.equal(info.modes, local.modes);
});

test('POST answers the images a worker made, byte-identical to in-process', async () => {
  const res = await post({ prompt: 'red apple', seed: 5, steps: 4, n: 1, retrieval: false });
  assert.is(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { data: { b64_json: string; seed: number }[] };
  const direct = await local.generate({ prompt: 'red apple', seed: 5, steps: 4, batch: 1 });
  assert.ok(Buffer.from(body.data[0]!.b64_json, 'base64').equals(direct.images[0]!.png));
});

test('streamed: progress as SSE from the worker, then the result', async () => {
  const res = await post({ prompt: 'blue car', seed: 1, steps: 5, n: 1, retrieval: false, stream: true });
  assert.is(res.status, 202);
  const job = (await res.json()) as { events_url: string };
  const text = await (await fetch(`${base}${job.events_url}`)).text();
  assert.match(text, /event: progress\ndata: \{"step":\d+,"total":5,"stage":"denoise"\}/);
  assert.match(text, /event: result\ndata: \{"id":"gen_/);
});

test('DELETE cancels the job on the worker; a full queue answers 429 with Retry-After', async () => {
  const res = await post({ prompt: 'green tree', seed: 2, steps: 100, n: 4, retrieval: false, stream: true });
  assert.is(res.status, 202, await res.clone().text());
  const job = (await res.json()) as { id: string; events_url: string };
  // DELETE once a worker is denoising (its first progress event), so the cancel must reach a running job.
  const stream = await fetch(`${base}${job.events_url}`);
  const reader = stream.body!.getReader();
  let text = '';
  while (!/"stage":"denoise"/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  const events = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += Buffer.from(value).toString();
    }
  })();
  const del = await fetch(`${base}/v1/generations/${job.id}`, { method: 'DELETE' });
  assert.equal(await del.json(), { id: job.id, cancelled: true });
  assert.match(await events, /event: error\ndata: \{"status":499/);
  const q = new Queue('ragdiff', { connection: { url: redis.url } });
  try {
    const failed = (await q.getJobs(['failed'])).find((j) => j.data?.request?.steps === 100)!;
    assert.match(failed.failedReason, /^\[ABORTED\]/, 'the worker aborted it');
    // Fill the queue past its depth (64 per --concurrency) with delayed jobs: counted by the admission,
    // never picked up. (Waiting jobs for another model raced the worker, which fails them MODEL_MISMATCH
    // before a pause could land, so the depth sometimes never reached 64 and the POST hung.)
    await q.addBulk(Array.from({ length: 64 }, () => ({ name: 'generate', data: { v: 1, model: 'parked@0000000000000000', request: { prompt: 'x' } }, opts: { delay: 3_600_000 } })));
    const busy = await post({ prompt: 'sun', steps: 2, n: 1, retrieval: false });
    assert.is(busy.status, 429);
    assert.ok(Number(busy.headers.get('retry-after')) >= 1);
    await q.obliterate({ force: true });
  } finally {
    await q.close();
  }
});

test.run();
