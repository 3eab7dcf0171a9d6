/**
 * `createServer({ rag, store, ... })`: ragdiff as an HTTP service (fastify).
 * Routes live by concept in generations.ts and references.ts; this file joins
 * them with the cross-cutting parts: limits, API keys, metrics, health, the
 * static page, the error mapping, and graceful shutdown.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import { LocalGenerator, type Generator } from '../generator/index.js';
import { RagPipeline } from '../rag/index.js';
import type { ImageStore } from '../store/index.js';
import { Admission } from './admission.js';
import { capConnections, clientErrorHandler, connectionLimits, fastifyTimeoutOptions, type ConnectionLimits } from './connections.js';
import { KeyCheck, type Access, type ApiKeys } from './auth.js';
import type { ServerContext } from './context.js';
import { errorHandler, HttpError, MAX_PARAM_LENGTH } from './errors.js';
import { pathRedactor } from './redact.js';
import { registerGenerationRoutes } from './generations.js';
import { MemoryJobStore, type JobStore } from './jobs.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { registerModelRoutes } from './models.js';
import { registerOpenApi } from './openapi.js';
import { registerReferenceRoutes } from './references.js';
import { countedSafety, safetyOf, type RagSafety } from './safety.js';
import { registerSourceRoutes } from './live-sources.js';
import type { SourceRegistry } from '../sources/index.js';
import { DEFAULT_LIMITS, type Limits } from './schemas.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The page's static files. */
export const WEB_DIR = join(packageRoot, 'web');

export interface ServerOptions {
  /** The generator. The server enforces its safety hooks (or `safety`), counted, through a RagPipeline over the same workers. */
  rag?: RagPipeline;
  /**
   * Instead of `rag`: any Generator, e.g. a QueueGenerator in front of workers
   * (which enforce their own safety hooks: `safety` is then only what /v1/info
   * reports and the search route previews).
   */
  generator?: Generator;
  /** Where streamed jobs live (default: this process's memory). */
  jobs?: JobStore;
  /**
   * The safety hooks, e.g. `guard.ragOptions()`: reference, prompt (and text
   * query) and output screens, the per-source cap and the policy stamp. Give
   * them here or in `rag`, not both.
   */
  safety?: RagSafety;
  /** The reference store; without one, generation runs without retrieval and the reference routes answer 409. */
  store?: ImageStore;
  /** Online sources requests may name in retrieval.from, and URL references (default: none; see src/sources). */
  sources?: SourceRegistry;
  apiKeys?: ApiKeys;
  limits?: Partial<Limits>;
  /** Request, header and keep-alive timeouts and connection caps (defaults: DEFAULT_CONNECTION_LIMITS). */
  connections?: Partial<ConnectionLimits>;
  /** Serve the page at `/` (default true). */
  page?: boolean;
  /** Fastify's logger option (default off). */
  logger?: boolean | object;
  /** Finished streamed jobs are kept this long for late readers (default 60 s). */
  keepJobsMs?: number;
  /** A streamed job nobody subscribes to within this time is cancelled (default 30 s). */
  orphanJobMs?: number;
}

export interface RagServer {
  app: FastifyInstance;
  metrics: ServerMetrics;
  /** Generation requests admitted and not yet answered. */
  readonly inflight: number;
  listen(options?: { host?: string; port?: number }): Promise<string>;
  /**
   * Graceful shutdown: refuse new generations (503), let in-flight ones finish
   * for up to `graceMs` (default 10 s), cancel the rest, then close. The rag
   * pipeline and the store stay open (their owner closes them).
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

export async function createServer(options: ServerOptions): Promise<RagServer> {
  if (options?.rag !== undefined && !(options.rag instanceof RagPipeline)) throw new TypeError('createServer: options.rag must be a loaded RagPipeline');
  if ((options?.rag === undefined) === (options?.generator === undefined)) throw new TypeError('createServer needs one of options.rag (a loaded RagPipeline) or options.generator');
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const keys = new KeyCheck(options.apiKeys);
  // Client-facing messages name no server path (the store's, the bundle's, or any other).
  const redact = pathRedactor({ store: options.store?.dir, model: options.rag?.info.dir ?? options.generator?.info().dir });
  const handleError = errorHandler(redact);
  let appClosing = false;
  const connections = connectionLimits(options.connections);
  const app = Fastify({
    logger: options.logger ?? false,
    // Every error fastify or Node's parser raises answers in the one error shape (errors.ts), never fastify's own.
    frameworkErrors: handleError,
    ...fastifyTimeoutOptions(connections),
    clientErrorHandler: clientErrorHandler(() => metrics.rejected.inc({ reason: 'request-timeout' })),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    bodyLimit: limits.bodyBytes,
    // Show every schema error at once, and never coerce a wrong JSON type into a right one.
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    return503OnClosing: false, // answered by the onRequest hook below, in the one error shape
    forceCloseConnections: 'idle',
  });
  let admission!: Admission;
  let generator!: Generator;
  const metrics = createMetrics(() => ({ ...generator.capacity(), inflight: admission.inflight }));
  admission = new Admission(() => generator.capacity().capacity);
  capConnections(app.server, connections, (reason) => metrics.rejected.inc({ reason }));
  // One wiring: the hooks go, each counted and otherwise unchanged, into a RagPipeline of the server's own over the same workers.
  const safety = options.rag ? safetyOf(options.rag, options.safety) : (options.safety ?? {});
  generator = options.rag ? new LocalGenerator(new RagPipeline(options.rag.pipeline, { ...countedSafety(safety, metrics), ...(options.sources ? { sources: options.sources } : {}) }), options.store) : options.generator!;
  const info = generator.info();
  const policy = () => safety.policyStamp?.() ?? null;
  const { width, height } = info.image;
  const ctx: ServerContext = {
    generator, store: options.store, sources: options.sources, limits, metrics, admission, keys, safety,
    jobs: options.jobs ?? new MemoryJobStore({ keepMs: options.keepJobsMs ?? 60_000, orphanMs: options.orphanJobMs ?? 30_000 }),
    size: `${width}x${height}`,
    log: app.log,
    redact,
  };

  // JSON and multipart only: a text body is 415, not a string the schema then refuses.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });
  // Schema errors name the field: "body/n must be <= 4".
  app.setSchemaErrorFormatter((errors, dataVar) => {
    // Inside anyOf, every branch reports; the deepest path names the field the client got wrong,
    // and at that path a branch of the right shape (a misspelt key, a bound) says more than "must be boolean".
    const depth = Math.max(...errors.map((x) => x.instancePath.length));
    const deepest = errors.filter((x) => x.instancePath.length === depth);
    const SHAPE = ['type', 'const', 'anyOf'];
    const e = deepest.find((x) => !SHAPE.includes(x.keyword)) ?? deepest[0]!;
    const where = `${dataVar}${e.instancePath}`;
    if (SHAPE.includes(e.keyword)) {
      const kinds = deepest.flatMap((x) => (x.keyword === 'type' ? [String((x.params as { type: unknown }).type)] : x.keyword === 'const' ? [JSON.stringify((x.params as { allowedValue: unknown }).allowedValue)] : []));
      return new Error(`${where} must be ${[...new Set(kinds)].join(' or ') || 'of another shape'}`);
    }
    const extra = e.keyword === 'additionalProperties' ? ` ("${(e.params as { additionalProperty: string }).additionalProperty}")` : e.keyword === 'enum' ? `: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}` : '';
    return new Error(`${where} ${e.message}${extra}`);
  });

  app.addHook('onRequest', async (request) => {
    if (appClosing) throw new HttpError('SHUTTING_DOWN', 'the server is shutting down');
    // Every /v1 route needs a key when keys are configured: a route that does not say otherwise needs a read key.
    const route = request.routeOptions.url;
    const need = request.routeOptions.config?.access ?? (route?.startsWith('/v1/') ? 'read' : undefined);
    if (need) keys.check(request.headers.authorization, need);
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.http.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  await app.register(multipart, { limits: { fileSize: limits.uploadBytes, files: 1, fields: 10 } });
  // Before the routes: it collects their schemas as they are added.
  await registerOpenApi(app, { packageRoot, keys: keys.enabled, model: info.name });

  app.get('/healthz', async (_request, reply) => {
    const q = generator.capacity();
    const body = {
      status: admission.closing ? 'shutting-down' : 'ok',
      model: info.name,
      queue: { ...q, inflight: admission.inflight },
      // writable: false when the store was opened read-only (serve --read-only): uploads and removals answer 409.
      store: ctx.store ? { size: ctx.store.size, encoder: ctx.store.stats().encoderId, writable: !ctx.store.readOnly } : null,
      policy: policy()?.hash ?? null,
    };
    return reply.code(admission.closing ? 503 : 200).send(body);
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // What the page needs to draw itself.
  app.get('/v1/info', { config: { access: 'read' } }, async () => ({
    model: info.name,
    size: ctx.size,
    modes: generator.modes,
    // Token modes use up to one reference per neighbour slot (the default k).
    retrieval: { slots: info.neighbourSlots },
    defaults: { steps: info.defaults.steps, guidance_scale: info.defaults.guidanceScale },
    store: ctx.store ? { size: ctx.store.size, name: ctx.store.stats().encoderId, writable: !ctx.store.readOnly } : null,
    auth: keys.enabled,
    policy: policy()?.hash ?? null,
    policy_version: policy()?.version ?? null,
    screens: { references: safety.screen !== undefined, prompt: safety.promptScreen !== undefined, output: safety.outputScreen !== undefined },
    max_per_source: (typeof safety.maxPerSource === 'function' ? safety.maxPerSource() : safety.maxPerSource) ?? null,
    limits,
  }));

  registerGenerationRoutes(app, ctx);
  registerModelRoutes(app, ctx);
  registerReferenceRoutes(app, ctx);
  registerSourceRoutes(app, ctx);

  if (options.page !== false) {
    await app.register(fastifyStatic, { root: WEB_DIR, prefix: '/', index: 'index.html', wildcard: false, cacheControl: false });
  }

  let closed: Promise<void> | undefined;
  return {
    app,
    metrics,
    get inflight() {
      return admission.inflight;
    },
    async listen(o = {}) {
      return app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 0 });
    },
    close(o = {}) {
      closed ??= (async () => {
        admission.closing = true;
        if (!(await admission.waitIdle(o.graceMs ?? 10_000))) {
          admission.abortAll('the server is shutting down');
          ctx.jobs.cancelAll('the server is shutting down');
          await admission.waitIdle(30_000);
        }
        appClosing = true;
        await app.close();
      })();
      return closed;
    },
  };
}

export { HttpError };
