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
import { RagPipeline } from '../rag/index.js';
import type { ImageStore } from '../store/index.js';
import { Admission } from './admission.js';
import { KeyCheck, type Access, type ApiKeys } from './auth.js';
import type { ServerContext } from './context.js';
import { handleError, HttpError } from './errors.js';
import { registerGenerationRoutes } from './generations.js';
import { JobRegistry } from './jobs.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { registerReferenceRoutes } from './references.js';
import { countedScreen, type SafetyHooks } from './safety.js';
import { DEFAULT_LIMITS, type Limits } from './schemas.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The page's static files. */
export const WEB_DIR = join(packageRoot, 'web');

export interface ServerOptions extends SafetyHooks {
  /** The generator. Its own screen is replaced when `screen` is given here (so decisions are counted). */
  rag: RagPipeline;
  /** The reference store; without one, generation runs without retrieval and the reference routes answer 409. */
  store?: ImageStore;
  apiKeys?: ApiKeys;
  limits?: Partial<Limits>;
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
  if (!(options?.rag instanceof RagPipeline)) throw new TypeError('createServer needs options.rag, a loaded RagPipeline');
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const keys = new KeyCheck(options.apiKeys);
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.bodyBytes,
    // Show every schema error at once, and never coerce a wrong JSON type into a right one.
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  let admission!: Admission;
  const metrics = createMetrics(() => ({ ...options.rag.pipeline.queueState, inflight: admission.inflight }));
  admission = new Admission(() => options.rag.pipeline.queueState.capacity);
  const safety: SafetyHooks = { screen: options.screen, promptScreen: options.promptScreen, policyHash: options.policyHash };
  // The screen goes into a RagPipeline of its own over the same workers, counted.
  const rag = options.screen ? new RagPipeline(options.rag.pipeline, { screen: countedScreen(options.screen, metrics) }) : options.rag;
  const { width, height } = rag.info.image;
  const ctx: ServerContext = {
    rag, store: options.store, limits, metrics, admission, keys, safety,
    jobs: new JobRegistry({ keepMs: options.keepJobsMs ?? 60_000, orphanMs: options.orphanJobMs ?? 30_000 }),
    size: `${width}x${height}`,
    log: app.log,
  };

  // JSON and multipart only: a text body is 415, not a string the schema then refuses.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });
  // Schema errors name the field: "body/n must be <= 4".
  app.setSchemaErrorFormatter((errors, dataVar) => {
    // Inside anyOf, every branch reports; the deepest path names the field the client got wrong.
    const e = errors.reduce((a, b) => (b.instancePath.length > a.instancePath.length ? b : a));
    const where = `${dataVar}${e.instancePath}`;
    const extra = e.keyword === 'additionalProperties' ? ` ("${(e.params as { additionalProperty: string }).additionalProperty}")` : e.keyword === 'enum' ? `: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}` : '';
    return new Error(`${where} ${e.message}${extra}`);
  });

  app.addHook('onRequest', async (request) => {
    const need = request.routeOptions.config?.access;
    if (need) keys.check(request.headers.authorization, need);
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.http.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  await app.register(multipart, { limits: { fileSize: limits.uploadBytes, files: 1, fields: 10 } });

  app.get('/healthz', async (_request, reply) => {
    const q = rag.pipeline.queueState;
    const body = {
      status: admission.closing ? 'shutting-down' : 'ok',
      model: rag.info.name,
      queue: { ...q, inflight: admission.inflight },
      // writable: false when the store was opened read-only (serve --read-only): uploads and removals answer 409.
      store: ctx.store ? { size: ctx.store.size, encoder: ctx.store.stats().encoderId, writable: !ctx.store.readOnly } : null,
      policy: safety.policyHash ?? null,
    };
    return reply.code(admission.closing ? 503 : 200).send(body);
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // What the page needs to draw itself.
  app.get('/v1/info', async () => ({
    model: rag.info.name,
    size: ctx.size,
    modes: rag.modes,
    // Token modes use up to one reference per neighbour slot (the default k).
    retrieval: { slots: rag.info.neighbourSlots },
    defaults: { steps: rag.info.defaults.steps, guidance_scale: rag.info.defaults.guidanceScale },
    store: ctx.store ? { size: ctx.store.size, name: ctx.store.stats().encoderId, writable: !ctx.store.readOnly } : null,
    auth: keys.enabled,
    policy: safety.policyHash ?? null,
    screens: { references: safety.screen !== undefined, prompt: safety.promptScreen !== undefined },
    limits,
  }));

  registerGenerationRoutes(app, ctx);
  registerReferenceRoutes(app, ctx);

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
        await app.close();
      })();
      return closed;
    },
  };
}

export { HttpError };
