/**
 * `ragdiff worker`: a stateless queue worker (src/queue/worker.ts). It holds
 * its own ONNX sessions and store (opened read-only: the server or an
 * indexer writes it), takes jobs from the Redis queue, and leaves images in
 * the blob directory the server reads.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { LocalGenerator } from '../generator/index.js';
import { BlobDir, DEFAULT_QUEUE_NAME, startQueueWorker } from '../queue/index.js';
import { RagPipeline } from '../rag/index.js';
import { policyForCli } from '../safety/cli.js';
import { ImageStore, loadClipEncoders } from '../store/index.js';
import { DEFAULT_MODEL_DIR } from './generate.js';
import { intOption } from './options.js';

interface WorkerOptions {
  queue: string;
  queueName: string;
  model: string;
  store?: string;
  policy?: string;
  blobDir: string;
  concurrency: number;
  threads?: number;
  lockDuration?: number;
  stalledInterval?: number;
}

async function workerCommand(o: WorkerOptions): Promise<void> {
  // `--policy FILE`: the same guard and hooks as `serve --policy`; with a queue, every door is the worker's.
  const policy = o.policy ? await policyForCli(resolve(o.policy), o.model) : undefined;
  const rag = await RagPipeline.load(o.model, { ...(policy ? policy.guard.ragOptions() : {}), concurrency: o.concurrency, maxQueue: o.concurrency, threads: o.threads }).catch(async (e) => {
    await policy?.close();
    throw e;
  });
  let encoder: Awaited<ReturnType<typeof loadClipEncoders>> | undefined;
  let store: ImageStore | undefined;
  try {
    if (o.store) {
      encoder = await loadClipEncoders(o.model);
      store = await ImageStore.open(resolve(o.store), { encoder, readOnly: true, ...(policy ? { screen: policy.guard.imageScreen() } : {}) });
    }
    const generator = new LocalGenerator(rag, store);
    const worker = await startQueueWorker({
      url: o.queue, queue: o.queueName, generator, blobs: new BlobDir(resolve(o.blobDir)), concurrency: o.concurrency,
      ...(o.lockDuration !== undefined ? { lockDurationMs: o.lockDuration } : {}),
      ...(o.stalledInterval !== undefined ? { stalledIntervalMs: o.stalledInterval } : {}),
    });
    console.log(`ragdiff worker: ${generator.info().id} on queue "${o.queueName}"${store ? `, ${store.size} references` : ', no store'}, concurrency ${o.concurrency}`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        done();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await worker.close(); // waits for the jobs it runs
  } finally {
    await store?.close();
    await encoder?.close();
    await rag.close();
    await policy?.close();
  }
}

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run generations from a Redis queue (for `ragdiff serve --queue`); any number, on any machine')
    .requiredOption('--queue <url>', 'the Redis URL (redis://host:6379); Redis must have maxmemory-policy noeviction')
    .requiredOption('--blob-dir <dir>', 'directory shared with the server where images are left (a shared volume across machines)')
    .option('--queue-name <name>', 'queue name shared by servers and workers', DEFAULT_QUEUE_NAME)
    .option('-m, --model <dir>', 'model bundle directory (the server must name the same bundle)', DEFAULT_MODEL_DIR)
    .option('--store <dir>', 'reference store directory, opened read-only (without one, jobs that ask for retrieval fail NO_STORE)')
    .option('--policy <file>', 'safety policy file (as for `serve --policy`): this worker enforces it on every job')
    .option('--concurrency <n>', 'jobs this worker runs at once', intOption('concurrency', 1), 1)
    .option('--threads <n>', 'intra-op threads per model', intOption('threads', 1))
    .option('--lock-duration <ms>', 'BullMQ job lock: a dead worker\'s job is handed on after about this long (default 30000)', intOption('lock-duration', 1000))
    .option('--stalled-interval <ms>', 'how often this worker checks for jobs of dead workers (default 15000)', intOption('stalled-interval', 500))
    .addHelpText('after', `
Example:
  ragdiff worker --queue redis://127.0.0.1:6379 --blob-dir /shared/ragdiff-blobs --store refs/
  ragdiff serve  --queue redis://127.0.0.1:6379 --blob-dir /shared/ragdiff-blobs --store refs/`)
    .action(workerCommand);
}
