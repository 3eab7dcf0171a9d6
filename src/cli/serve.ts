/**
 * `ragdiff serve`: the HTTP service and its page (src/server/).
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { modelIdOf } from '../generator/index.js';
import { hashBundle } from '../pipeline/runner.js';
import { readBundle } from '../pipeline/index.js';
import { BlobDir, QueueGenerator } from '../queue/index.js';
import { RagPipeline } from '../rag/index.js';
import { policyForCli } from '../safety/cli.js';
import { createServer, DEFAULT_CONNECTION_LIMITS } from '../server/index.js';
import { ImageStore, loadClipEncoders, openDemoStore } from '../store/index.js';
import { DEFAULT_MODEL_DIR } from './generate.js';
import { intOption, repeatOption, runAction } from './options.js';
import { createSources, STORE_SOURCE } from '../sources/index.js';
import { checkInputFile } from './input-file.js';
import { MAX_POLICY_BYTES } from '../safety/load.js';
import { RagdiffError } from '../errors.js';

interface ServeOptions {
  /** Sources requests may use: store plus online ones and 'url' (default: the store only). */
  sources?: string;
  allowHost?: string[];
  sourcesConfig?: string;
  host: string;
  port: number;
  model: string;
  store?: string;
  demoStore?: boolean;
  withoutStore?: boolean;
  policy?: string;
  concurrency: number;
  /** Generations that may wait (a number), or the Redis URL of a worker queue. */
  queue: number | string;
  blobDir?: string;
  queueName?: string;
  apiKey?: string[];
  writeKey?: string[];
  threads?: number;
  providers?: string;
  grace: number;
  requestTimeout: number;
  headersTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  readOnly?: boolean;
  json?: boolean;
}

/**
 * The server reads only (no writer lock, uploads and removals answer 409
 * STORE_READ_ONLY) with --read-only, or when API keys are configured and none
 * is a write key (nobody could upload, so there is nothing to lock for).
 */
export function acceptsNoUploads(o: Pick<ServeOptions, 'readOnly' | 'apiKey' | 'writeKey'>, env: NodeJS.ProcessEnv = process.env): boolean {
  if (o.readOnly) return true;
  const keys = keyList(o.apiKey, env.RAGDIFF_API_KEYS);
  const writeKeys = keyList(o.writeKey, env.RAGDIFF_WRITE_KEYS);
  return keys.length > 0 && writeKeys.length === 0;
}

const keyList = (flag: string[] | undefined, env: string | undefined) => [...(flag ?? []), ...(env ? env.split(',').map((s) => s.trim()).filter(Boolean) : [])];

/** `--queue <n>` (waiting generations) or `--queue redis://…` (a queue of `ragdiff worker`s). */
function queueOption(v: string): number | string {
  if (/^(redis|rediss):\/\//.test(v.trim())) return v.trim();
  return intOption('queue', 0)(v);
}

async function serveCommand(o: ServeOptions): Promise<void> {
  if (typeof o.queue === 'string') return serveQueue(o, o.queue);
  if ([o.store, o.demoStore, o.withoutStore].filter(Boolean).length > 1) throw new RagdiffError('INVALID_ARGUMENT', 'give one of --store <dir>, --demo-store, --without-store');
  // A new user's `npx ragdiff serve` gets references to choose from: the demo store unless told otherwise.
  const demo = o.demoStore || (!o.store && !o.withoutStore);
  if (o.policy !== undefined) checkInputFile(o.policy, '--policy', MAX_POLICY_BYTES); // a FIFO or directory fails before any model loads
  // Online sources are the operator's choice, off by default; 'url' lets requests name image URLs. Checked before any model loads.
  const online = (o.sources ?? '').split(',').map((s) => s.trim()).filter((s) => s && s !== STORE_SOURCE);
  const sources = online.length
    ? createSources({ enable: online.filter((s) => s !== 'url'), allowHosts: o.allowHost ?? [], ...(o.sourcesConfig ? { config: o.sourcesConfig } : {}) })
    : undefined;
  // `--policy FILE`: the same guard and hooks as `generate --policy` (policyForCli): every door, the source cap, the stamp.
  const policy = o.policy ? await policyForCli(resolve(o.policy), o.model) : undefined;
  const storeScreen = policy ? { screen: policy.guard.imageScreen() } : {};
  const rag = await RagPipeline.load(o.model, {
    ...(policy ? policy.guard.ragOptions() : {}),
    concurrency: o.concurrency,
    maxQueue: o.queue as number,
    threads: o.threads,
    executionProviders: o.providers ? o.providers.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
  }).catch(async (e) => {
    await policy?.close();
    throw e;
  });
  let store: ImageStore | undefined;
  let encoder: Awaited<ReturnType<typeof loadClipEncoders>> | undefined;
  // The writer lock only when uploads can happen: not with --read-only, nor when keys are set and none may write.
  const readOnly = acceptsNoUploads(o);
  try {
    if (demo) {
      console.error('opening the demo store (built on first use, which takes a minute)…');
      store = await openDemoStore({ encoderDir: o.model, store: { readOnly, ...storeScreen } });
    } else if (o.store) {
      encoder = await loadClipEncoders(o.model);
      store = await ImageStore.open(resolve(o.store), { encoder, readOnly, ...(readOnly ? { create: false } : {}), ...storeScreen });
    }
  } catch (e) {
    await rag.close();
    await encoder?.close();
    await policy?.close();
    throw e;
  }
  const server = await createServer({
    rag, store, ...(sources ? { sources } : {}),
    apiKeys: { keys: keyList(o.apiKey, process.env.RAGDIFF_API_KEYS), writeKeys: keyList(o.writeKey, process.env.RAGDIFF_WRITE_KEYS) },
    logger: { level: 'warn' },
    connections: {
      requestTimeoutMs: o.requestTimeout * 1000, headersTimeoutMs: o.headersTimeout * 1000, keepAliveTimeoutMs: o.keepAliveTimeout * 1000,
      maxConnections: o.maxConnections, maxConnectionsPerAddress: o.maxConnectionsPerAddress,
    },
  });
  const url = await server.listen({ host: o.host, port: o.port });
  if (!['127.0.0.1', '::1', 'localhost'].includes(o.host) && !o.apiKey?.length && !process.env.RAGDIFF_API_KEYS && !o.writeKey?.length && !process.env.RAGDIFF_WRITE_KEYS) {
    console.error(`warning: listening on ${o.host} without API keys: anyone who can reach it may generate, upload and remove references (see --api-key, --write-key)`);
  }
  if (o.json) {
    console.log(JSON.stringify({ url, model: rag.info.name, store: store ? { dir: store.dir, size: store.size, writable: !store.readOnly } : null }));
  } else {
    console.log(`ragdiff serve: ${rag.info.name}${store ? `, ${store.size} references in ${store.dir}${store.readOnly ? ' (read-only: no uploads)' : ''}` : ', no reference store'}`);
    console.log(`  page: ${url}/   API: ${url}/v1/images/generations   metrics: ${url}/metrics`);
  }
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      console.error(`shutting down (in-flight generations get ${o.grace} s)…`);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close({ graceMs: o.grace * 1000 });
  await store?.close();
  await encoder?.close();
  await rag.close();
  await policy?.close();
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the HTTP service and its web page (generation with chosen references)')
    .option('--host <addr>', 'address to bind (loopback by default; use 0.0.0.0 to expose it, with API keys)', '127.0.0.1')
    .option('-p, --port <n>', 'port (0: any free port)', intOption('port'), 8787)
    .option('-m, --model <dir>', 'model bundle directory', DEFAULT_MODEL_DIR)
    .option('--store <dir>', 'reference store directory (built with `ragdiff index`)')
    .option('--demo-store', 'use the Twemoji demo store (the default without --store; built and cached on first use)')
    .option('--without-store', 'no reference store: generation without retrieval')
    .option('--policy <file>', 'safety policy file, passed to the safety module\'s loadPolicy')
    .option('--concurrency <n>', 'generations running at once (1..16)', intOption('concurrency'), 1)
    .option('--queue <n|url>', 'generations that may wait (beyond that: 429 with Retry-After); or redis://host:port to hand generations to `ragdiff worker`s', queueOption, 8)
    .option('--blob-dir <dir>', 'with --queue redis://…: the directory shared with the workers where images are left')
    .option('--queue-name <name>', 'with --queue redis://…: the queue name the workers use', 'ragdiff')
    .option('--api-key <key...>', 'bearer keys that may generate and search (also $RAGDIFF_API_KEYS, comma-separated)')
    .option('--write-key <key...>', 'bearer keys that may also upload and remove references (also $RAGDIFF_WRITE_KEYS)')
    .option('--threads <n>', 'intra-op threads per model', intOption('threads'))
    .option('--providers <list>', 'ONNX Runtime execution providers, e.g. cuda,cpu')
    .option('--sources <list>', 'sources requests may search: store and online ones (openverse, commons, configured), url for image URLs; off by default (e.g. store,openverse,url)')
    .option('--allow-host <host>', 'let fetches reach this host even on a private or loopback address (a mirror; repeatable)', repeatOption)
    .option('--sources-config <file>', 'live-source endpoints and generic JSON connectors (JSON; docs/sources.md)')
    .option('--grace <seconds>', 'on SIGINT/SIGTERM, time in-flight generations get before they are cancelled', intOption('grace'), 10)
    .option('--request-timeout <seconds>', 'a request (headers and body) must arrive within this, else 408 and the connection closes', intOption('request-timeout', 1), DEFAULT_CONNECTION_LIMITS.requestTimeoutMs / 1000)
    .option('--headers-timeout <seconds>', 'request headers must arrive within this', intOption('headers-timeout', 1), DEFAULT_CONNECTION_LIMITS.headersTimeoutMs / 1000)
    .option('--keep-alive-timeout <seconds>', 'an idle keep-alive connection is closed after this', intOption('keep-alive-timeout', 1), DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs / 1000)
    .option('--max-connections <n>', 'connections open at once, all clients (0: no cap)', intOption('max-connections', 0), DEFAULT_CONNECTION_LIMITS.maxConnections)
    .option('--max-connections-per-address <n>', 'connections open at once from one address (0: no cap; raise it behind a reverse proxy)', intOption('max-connections-per-address', 0), DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress)
    .option('--read-only', 'open the store as a reader: no uploads or removals (409), no writer lock, so `ragdiff index add` and other writers can run beside it; implied when API keys are set and none is a write key')
    .option('--json', 'print the listening address as one JSON line (errors as {"error": {code, name, message}})')
    .addHelpText('after', `
The page: open http://127.0.0.1:8787/ in a browser (or the host and port you
chose). Type a prompt, pick, drop or upload references, and generate; the
result is shown beside a no-retrieval result for the same seed.

Examples:
  ragdiff serve                                 # the demo store; the page at http://127.0.0.1:8787/
  ragdiff serve --store refs/ --port 9000
  ragdiff serve --store refs/ --read-only        # serve beside \`ragdiff index add\` on the same store
  RAGDIFF_API_KEYS=k1-xxxxxxxx RAGDIFF_WRITE_KEYS=admin-xxxxxxxx ragdiff serve --store refs/ --host 0.0.0.0

API: POST /v1/images/generations (OpenAI images shape + "retrieval"), GET /v1/generations/:id/events (SSE),
     GET|POST /v1/references, GET /v1/references/:id/image, DELETE /v1/references/:id, GET /v1/models,
     GET /healthz, GET /metrics, GET /openapi.json (the whole API, OpenAPI 3.1)`)
    .action((o: ServeOptions) => runAction(o, () => serveCommand(o)));
}

/**
 * `serve --queue redis://…`: the same server over a QueueGenerator. The
 * workers load the model and enforce the policy; this process only reads the
 * bundle's name and hash (the model id its jobs ask for) and keeps the store
 * for the reference routes.
 */
async function serveQueue(o: ServeOptions, url: string): Promise<void> {
  if (!o.blobDir) throw new RagdiffError('INVALID_ARGUMENT', '--queue redis://… needs --blob-dir <dir>, a directory the workers share (they leave images there)');
  if (o.policy) throw new RagdiffError('INVALID_ARGUMENT', 'with --queue redis://… give --policy to each `ragdiff worker` (the workers run every safety door)');
  const manifest = readBundle(resolve(o.model));
  const model = modelIdOf({ name: manifest.name, hash: hashBundle(manifest) });
  const blobs = new BlobDir(resolve(o.blobDir));
  const generator = await QueueGenerator.open({ url, queue: o.queueName ?? 'ragdiff', model, blobs, maxQueued: o.concurrency * 64 });
  const sweep = setInterval(() => void blobs.sweep().catch(() => {}), blobs.ttlMs / 4);
  sweep.unref();
  let store: ImageStore | undefined;
  let encoder: Awaited<ReturnType<typeof loadClipEncoders>> | undefined;
  try {
    if (o.store) {
      encoder = await loadClipEncoders(o.model);
      store = await ImageStore.open(resolve(o.store), { encoder });
    }
    const server = await createServer({
      generator, store,
      apiKeys: { keys: keyList(o.apiKey, process.env.RAGDIFF_API_KEYS), writeKeys: keyList(o.writeKey, process.env.RAGDIFF_WRITE_KEYS) },
      logger: { level: 'warn' },
    });
    const listening = await server.listen({ host: o.host, port: o.port });
    console.log(`ragdiff serve: ${model} on queue "${o.queueName ?? 'ragdiff'}"${store ? `, ${store.size} references in ${store.dir}` : ', no reference store'}`);
    console.log(`  page: ${listening}/   API: ${listening}/v1/images/generations   metrics: ${listening}/metrics`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        done();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close({ graceMs: o.grace * 1000 });
  } finally {
    clearInterval(sweep);
    await generator.close();
    await store?.close();
    await encoder?.close();
  }
}
