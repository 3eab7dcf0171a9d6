/**
 * Generation routes:
 * - `POST /v1/images/generations` — the OpenAI images shape where it fits
 *   (prompt, n, size, response_format b64_json, seed) plus ragdiff's
 *   retrieval, steps and guidance. Answers the images, or with `stream: true`
 *   202 and a job id to follow.
 * - `GET /v1/generations/:id/events` — the job's progress as server-sent events.
 * - `GET /v1/generations/:id` — a finished job's result (kept a minute).
 *
 * Whoever asked owns the work: a client that disconnects (the POST's socket,
 * or the last event stream) aborts its generation, which frees its queue slot.
 */
import { liveRetrieval, urlReference } from './live-sources.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationRequest } from '../generator/index.js';
import type { RagResult, RetrievalOptions, ReferenceChoice } from '../rag/index.js';
import type { ProgressEvent } from '../pipeline/params.js';
import type { ServerContext } from './context.js';
import { errorReply, HttpError, httpStatusOf } from './errors.js';
import { checkImageHeader } from './image-header.js';
import type { Job, JobEvent } from './jobs.js';
import type { FromSchema } from './from-schema.js';
import { checkModel } from './models.js';
import { generationBody, idParams, retrievalOptions, type IdParams } from './schemas.js';
import { useView } from './references-view.js';

/** The body, as the schema (the one source) accepts it. */
export type GenerationBody = FromSchema<ReturnType<typeof generationBody>>;
type WireRetrieval = FromSchema<ReturnType<typeof retrievalOptions>>;

/**
 * Each of the library's retrieval options and its name over HTTP. Typed so that
 * an option added to RetrievalOptions does not compile until it is reachable here.
 */
// `cache` (writing fetched references into the store) is the operator's choice, not a client's: not on the wire.
export const RETRIEVAL_WIRE_NAMES: { readonly [K in Exclude<keyof RetrievalOptions, 'store' | 'cache'>]-?: keyof WireRetrieval } = {
  k: 'k', query: 'query', sources: 'sources', licences: 'licences', tags: 'tags', excludeIds: 'exclude', minScore: 'min_score',
  references: 'references', mode: 'mode', scales: 'scales', queryInFirstSlot: 'query_in_first_slot', neighbourWeighting: 'neighbour_weighting',
  mixture: 'mixture', interleave: 'interleave', referenceInit: 'reference_init', referenceAttention: 'reference_attention',
  reflective: 'reflective', retrieveOnly: 'retrieve_only', from: 'from', budget: 'budget',
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function imageOf(ctx: ServerContext, field: string, b64: string): Buffer {
  const s = b64.replace(/\s+/g, '');
  if (!BASE64.test(s) || s.length % 4 !== 0) throw new HttpError('INVALID_REQUEST', `${field}.b64_json is not base64`);
  const image = Buffer.from(s, 'base64');
  if (image.length > ctx.limits.uploadBytes) throw new HttpError('PAYLOAD_TOO_LARGE', `${field} is ${image.length} bytes; the limit is ${ctx.limits.uploadBytes}`);
  return image;
}

function queryOf(ctx: ServerContext, q: NonNullable<WireRetrieval['query']>): NonNullable<RetrievalOptions['query']> {
  if (typeof q === 'string') return q;
  if ('b64_json' in q) return imageOf(ctx, 'retrieval.query', q.b64_json);
  return Float32Array.from(q.embedding);
}

/** The wire's snake_case retrieval object as the library's RetrievalOptions (values are the library's to check). */
function retrievalOf(ctx: ServerContext, store: NonNullable<ServerContext['store']>, o: WireRetrieval): RetrievalOptions {
  const references: ReferenceChoice[] | undefined = o.references?.map((r, i) => {
    if (typeof r === 'string') return { id: r };
    if ('id' in r) return { id: r.id };
    if ('url' in r) return urlReference(r);
    return { image: imageOf(ctx, `retrieval.references[${i}]`, r.b64_json), name: r.name, source: r.source ?? 'upload', licence: r.licence, attribution: r.attribution };
  });
  const ra = o.reference_attention;
  const rf = o.reflective;
  return {
    store,
    ...(o.k !== undefined ? { k: o.k } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
    ...(o.query !== undefined ? { query: queryOf(ctx, o.query) } : {}),
    ...(references ? { references } : {}),
    ...(o.exclude ? { excludeIds: o.exclude } : {}),
    ...(o.sources ? { sources: o.sources } : {}),
    ...(o.licences ? { licences: o.licences } : {}),
    ...(o.tags ? { tags: o.tags } : {}),
    ...(o.min_score !== undefined ? { minScore: o.min_score } : {}),
    ...(o.scales ? { scales: o.scales } : {}),
    ...(o.query_in_first_slot !== undefined ? { queryInFirstSlot: o.query_in_first_slot } : {}),
    ...(o.neighbour_weighting !== undefined ? { neighbourWeighting: o.neighbour_weighting } : {}),
    ...(o.mixture ? { mixture: { coarseScale: o.mixture.coarse_scale, fineBelow: o.mixture.fine_below, fine: o.mixture.fine } } : {}),
    ...(o.interleave ? { interleave: { textShare: o.interleave.text_share } } : {}),
    ...(o.reference_init !== undefined ? { referenceInit: o.reference_init } : {}),
    ...(ra !== undefined ? { referenceAttention: ra === false ? false : { fidelity: ra.fidelity, blend: ra.blend, branches: ra.branches } } : {}),
    ...(rf !== undefined ? { reflective: typeof rf === 'boolean' ? rf : { lambda: rf.lambda, draftSteps: rf.draft_steps, candidates: rf.candidates } } : {}),
    ...(o.retrieve_only ? { retrieveOnly: { above: o.retrieve_only.above, alsoGenerate: o.retrieve_only.also_generate } } : {}),
    // Online sources and URL references: refused (403) unless the operator enabled them, before anything is fetched.
    ...liveRetrieval(ctx.sources, o, o.references?.filter((r) => typeof r === 'object' && 'url' in r).length ?? 0),
  };
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A library error about a retrieval option, in the names the client sent:
 * "retrieval.referenceInit.blend" → "retrieval.reference_init.blend".
 */
export function inWireNames(e: unknown): unknown {
  const err = e as { code?: unknown; message?: unknown };
  if (typeof err?.code !== 'string' || typeof err.message !== 'string' || !err.message.includes('retrieval.') || httpStatusOf(err.code) >= 500) return e;
  const names = RETRIEVAL_WIRE_NAMES as Record<string, string>;
  const message = err.message.replace(/\bretrieval\.([A-Za-z]+)((?:\.[A-Za-z]+)*)/g, (_m, first: string, rest: string) => `retrieval.${names[first] ?? snake(first)}${snake(rest)}`);
  return new HttpError(err.code, message);
}

/** The API body as a RagRequest (checks the server's own rules; the rag layer checks the rest). */
export function toRagRequest(ctx: ServerContext, b: GenerationBody): GenerationRequest {
  checkModel(ctx, b.model);
  if (b.size !== undefined && b.size !== ctx.size) {
    throw new HttpError('INVALID_REQUEST', `size must be "${ctx.size}" (the only size model ${ctx.generator.info().name} makes), got ${JSON.stringify(b.size)}`);
  }
  if (b.response_format !== undefined && b.response_format !== 'b64_json') {
    throw new HttpError('INVALID_REQUEST', `response_format must be "b64_json" (this server returns images inline), got ${JSON.stringify(b.response_format)}`);
  }
  if (b.prompt.trim() === '') throw new HttpError('INVALID_REQUEST', 'prompt must not be blank');
  const req: GenerationRequest = {
    prompt: b.prompt,
    ...(b.negative_prompt !== undefined ? { negativePrompt: b.negative_prompt } : {}),
    ...(b.prompt_2 !== undefined ? { prompt2: b.prompt_2 } : {}),
    ...(b.negative_prompt_2 !== undefined ? { negativePrompt2: b.negative_prompt_2 } : {}),
    ...(b.truncate_prompt !== undefined ? { truncatePrompt: b.truncate_prompt } : {}),
    ...(b.seed !== undefined ? { seed: b.seed } : {}),
    ...(b.steps !== undefined ? { steps: b.steps } : {}),
    ...(b.guidance_scale !== undefined ? { guidanceScale: b.guidance_scale } : {}),
    ...(b.sampler !== undefined ? { sampler: b.sampler } : {}),
    ...(b.karras !== undefined ? { karras: b.karras } : {}),
    batch: b.n,
  };
  const wanted = b.retrieval ?? true;
  if (wanted === false) return req;
  if (!ctx.store) {
    if (b.retrieval === undefined) return req; // no store: plain generation unless retrieval was asked for
    throw new HttpError('NO_STORE', 'this server has no reference store; start it with --store <dir> or --demo-store, or send "retrieval": false');
  }
  // The generator searches its own store: the request names none (it may cross a process boundary).
  const { store: _own, ...retrieval } = retrievalOf(ctx, ctx.store, wanted === true ? {} : wanted);
  return { ...req, retrieval };
}

/** Pinned base64 references and an image query get the upload's pixel limit, checked from the header before a slot is taken. */
async function checkInlineImages(ctx: ServerContext, req: GenerationRequest): Promise<void> {
  const q = req.retrieval?.query;
  if (Buffer.isBuffer(q) || q instanceof Uint8Array && !(q instanceof Float32Array)) await checkImageHeader(q, ctx.limits.uploadPixels, 'retrieval.query');
  for (const [i, r] of (req.retrieval?.references ?? []).entries()) {
    if ('image' in r && r.image) await checkImageHeader(r.image, ctx.limits.uploadPixels, `retrieval.references[${i}]`);
  }
}

/** The API's answer for a finished generation. */
export function responseOf(ctx: ServerContext, r: RagResult, created: number) {
  const refs = r.references.map(useView);
  const st = r.stats;
  // What the PNG's ragdiff chunk holds besides the references: mode, scales, query, store and its change sequence.
  const provenance = (r.parameters?.provenance as { retrieval?: unknown } | undefined)?.retrieval ?? null;
  const { provenance: _omitted, ...parameters } = r.parameters ?? ({} as NonNullable<RagResult['parameters']>);
  return {
    created,
    data: r.images.map((im) => ({ b64_json: im.png.toString('base64'), seed: im.seed, references: refs, provenance })),
    parameters: r.parameters ? parameters : null,
    references: refs,
    // retrieve_only answered with a stored image.
    ...(r.retrieved ? { retrieved: { b64_json: r.retrieved.png.toString('base64'), reference: useView(r.retrieved.reference) } } : {}),
    retrieval: st.retrieval ? { ...st.retrieval, ...(st.retrieval.skipped ? { skipped: ctx.redact(st.retrieval.skipped) } : {}) } : null,
    safety: {
      // The policy this generation ran under (the one stamped into each PNG).
      policy: r.policy?.hash ?? null,
      // A refused prompt (or text query) never gets here: it is 403 PROMPT_BLOCKED.
      prompt: ctx.safety.promptScreen ? { allow: true } : null,
      screened: (st.retrieval?.screened ?? []).map((x) => ({ ...x, reason: ctx.redact(x.reason) })),
      // Generated images the output screen refused: left out of `data` (all of them: `data` is empty).
      blocked: r.blocked ?? [],
    },
    usage: {
      steps: st.stepsRun ?? null,
      denoiser_calls: st.nfe ?? null,
      wall_ms: st.timings ? Math.round(st.timings.wallMs) : null,
      queue_ms: st.timings ? Math.round(st.timings.queueMs) : null,
    },
  };
}

/**
 * Runs one generation under admission control; `signal` aborts it.
 * Always releases its slot; records metrics.
 */
async function generate(ctx: ServerContext, body: GenerationBody, req: GenerationRequest, controller: AbortController, onProgress: (e: ProgressEvent) => void, release: () => void) {
  const started = performance.now();
  const withRetrieval = req.retrieval ? 'yes' : 'no';
  let outcome = 'error';
  try {
    // Every door (prompt, text query, references, source cap, output) is the rag layer's, as in the library and the CLI.
    const created = Math.floor(Date.now() / 1000);
    const r = await ctx.generator.generate(req, { signal: controller.signal, onProgress });
    ctx.metrics.denoiserCalls.inc(r.stats.nfe ?? 0);
    if (r.stats.retrieval) ctx.metrics.retrieval.observe(r.stats.retrieval.totalMs / 1000);
    outcome = 'ok';
    return responseOf(ctx, r, created);
  } catch (e) {
    const code = (e as { code?: string })?.code;
    outcome = code === 'ABORTED' ? 'cancelled' : code === 'BUSY' ? 'busy' : 'error';
    if (code === 'BUSY') {
      ctx.metrics.rejected.inc({ reason: 'busy' });
      throw ctx.admission.busy((e as Error).message);
    }
    throw inWireNames(e);
  } finally {
    release();
    ctx.metrics.generation.observe({ retrieval: withRetrieval, outcome }, (performance.now() - started) / 1000);
  }
}

function admit(ctx: ServerContext, controller: AbortController): () => void {
  try {
    return ctx.admission.admit(controller);
  } catch (e) {
    if ((e as HttpError).code === 'BUSY') ctx.metrics.rejected.inc({ reason: 'busy' });
    throw e;
  }
}

function writeEvent(reply: FastifyReply, e: JobEvent): void {
  reply.raw.write(`event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
}

export function registerGenerationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v1/images/generations', {
    schema: { body: generationBody(ctx.limits) },
    config: { access: 'read' },
  }, async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as GenerationBody;
    const req = toRagRequest(ctx, body); // bad input answers 4xx before taking a slot
    await checkInlineImages(ctx, req);
    const controller = new AbortController();
    const release = admit(ctx, controller);

    if (body.stream) {
      const job = ctx.jobs.start(async (j: Job) => {
        j.controller.signal.addEventListener('abort', () => controller.abort(j.controller.signal.reason), { once: true });
        try {
          const result = await generate(ctx, body, req, controller, (e) => j.emit({ event: 'progress', data: e }), release);
          j.emit({ event: 'result', data: { id: j.id, ...result } });
        } catch (e) {
          const r = errorReply(e, (x) => ctx.log.error({ err: x }, 'generation failed'), ctx.redact);
          j.emit({ event: 'error', data: { status: r.status, ...r.body } });
        }
      });
      return reply.code(202).send({ id: job.id, created: job.created, status: 'running', events_url: `/v1/generations/${job.id}/events`, result_url: `/v1/generations/${job.id}` });
    }

    // The POST's own socket: closed before the answer means the client is gone.
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort(new Error('the client disconnected'));
    };
    reply.raw.once('close', onClose);
    return generate(ctx, body, req, controller, () => {}, release);
  });

  app.get('/v1/generations/:id/events', { schema: { params: idParams }, config: { access: 'read' } }, async (request, reply) => {
    const job = ctx.jobs.get((request.params as IdParams).id);
    if (!job) throw new HttpError('JOB_NOT_FOUND', 'no generation with this id (finished jobs are kept one minute)');
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    reply.raw.write(`: ${job.id}\n\n`);
    const heartbeat = setInterval(() => reply.raw.write(': keep-alive\n\n'), 15_000);
    let unsubscribe = () => {};
    const end = () => {
      clearInterval(heartbeat);
      unsubscribe();
    };
    reply.raw.once('close', end);
    unsubscribe = job.subscribe((e) => {
      writeEvent(reply, e);
      if (e.event !== 'progress') {
        clearInterval(heartbeat);
        reply.raw.end();
      }
    });
  });

  app.get('/v1/generations/:id', { schema: { params: idParams }, config: { access: 'read' } }, async (request, reply) => {
    const job = ctx.jobs.get((request.params as IdParams).id);
    if (!job) throw new HttpError('JOB_NOT_FOUND', 'no generation with this id (finished jobs are kept one minute)');
    if (!job.final) return reply.code(202).send({ id: job.id, status: 'running', progress: job.last?.data ?? null });
    if (job.final.event === 'error') {
      const d = job.final.data as { status: number; error: unknown };
      return reply.code(d.status).send({ error: d.error });
    }
    return job.final.data;
  });

  app.delete('/v1/generations/:id', { schema: { params: idParams }, config: { access: 'read' } }, async (request) => {
    const job = ctx.jobs.get((request.params as IdParams).id);
    if (!job) throw new HttpError('JOB_NOT_FOUND', 'no generation with this id');
    if (!job.done) job.controller.abort(new Error('cancelled by the client'));
    return { id: job.id, cancelled: !job.done };
  });
}
