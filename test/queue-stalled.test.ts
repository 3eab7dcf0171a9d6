/**
 * A worker killed with SIGKILL mid-generation: BullMQ's stalled-job check
 * (short lock and interval here) hands the job to another worker, which
 * completes it exactly once — one completion, one image, byte-identical to an
 * uninterrupted run. The dead worker is the real CLI (`ragdiff worker`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { LocalGenerator } from '../src/generator/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { BlobDir, QueueGenerator, startQueueWorker, type QueueWorker } from '../src/queue/index.js';
import { repoPath, tempDir } from './helpers.js';
import { startRedis, type TestRedis } from './fixtures/queue/redis-server.js';

let redis: TestRedis;
let child: ChildProcess | undefined;
let rescuer: QueueWorker | undefined;
let gen: QueueGenerator | undefined;
let rag: RagPipeline | undefined;
let events: QueueEvents | undefined;
const t = tempDir('ragdiff-queue-stalled-');

test.after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await gen?.close();
  await rescuer?.close();
  await events?.close();
  await rag?.close();
  await redis?.stop();
  t.cleanup();
});

function startChildWorker(url: string, blobDir: string): Promise<ChildProcess> {
  const c = spawn(process.execPath, [repoPath('dist/src/cli/main.js'), 'worker', '--queue', url, '--blob-dir', blobDir, '--lock-duration', '2000', '--stalled-interval', '1000', '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the worker did not start: ${out}`)), 60_000);
    c.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ragdiff worker:')) {
        clearTimeout(timer);
        resolve(c);
      }
    });
    c.stderr!.on('data', (d) => (out += d));
    c.once('exit', (code) => reject(new Error(`the worker exited (${code}): ${out}`)));
  });
}

test('kill -9 a worker mid-generation: another worker completes the job exactly once', async () => {
  redis = await startRedis();
  const blobDir = join(t.dir, 'blobs');
  const blobs = new BlobDir(blobDir);
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { threads: 1 });
  const local = new LocalGenerator(rag);
  child = await startChildWorker(redis.url, blobDir);
  gen = await QueueGenerator.open({ url: redis.url, model: local.info().id, blobs, waitForWorkerMs: 10_000 });
  events = new QueueEvents('ragdiff', { connection: { url: redis.url } });
  await events.waitUntilReady();
  const completions: string[] = [];
  const stalls: string[] = [];
  events.on('completed', ({ jobId }) => completions.push(jobId));
  events.on('stalled', ({ jobId }) => stalls.push(jobId));

  const request = { prompt: 'yellow star', seed: 11, steps: 60, batch: 1 };
  let killed = false;
  const result = gen.generate(request, {
    onProgress: (e) => {
      if (!killed && e.stage === 'denoise' && e.step >= 2) {
        killed = true;
        child!.kill('SIGKILL');
        // The rescuer starts only now, so the dead worker is the one that held the job.
        void startQueueWorker({ url: redis.url, generator: local, blobs, lockDurationMs: 2000, stalledIntervalMs: 1000 }).then((w) => (rescuer = w));
      }
    },
  });
  const r = await result;
  assert.ok(killed, 'the child worker was killed mid-generation');
  await new Promise((res) => setTimeout(res, 500)); // late duplicate events would arrive by now
  assert.is(completions.length, 1, `one completion: ${JSON.stringify(completions)}`);
  assert.equal(stalls, completions, 'the completed job is the one that stalled');
  assert.is(rescuer!.completed, 1);
  assert.is(r.images.length, 1);
  const direct = await local.generate(request);
  assert.ok(r.images[0]!.png.equals(direct.images[0]!.png), 'the rescued result is the uninterrupted one');
  const pngs = readdirSync(blobDir).flatMap((d) => readdirSync(join(blobDir, d)));
  assert.equal(pngs, [`${createHash('sha256').update(r.images[0]!.png).digest('hex')}.png`], 'one image in the blob directory');
});

test.run();
