/**
 * The HTTP API described and complete (issue 23.12): `GET /openapi.json` is
 * generated from the routes' own schemas; every retrieval option the library
 * has is reachable over HTTP (documented, mapped to the library's name, and
 * acting on the generation); `GET /v1/models` lists the served bundle in
 * OpenAI's shape; a request naming another model is 404 MODEL_NOT_FOUND in
 * OpenAI's error shape.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadClipEncoders, type ClipEncoders, type ImageStore } from '../src/store/index.js';
import { RagPipeline, type RetrievalOptions } from '../src/rag/index.js';
import { createServer, DEFAULT_LIMITS, type RagServer } from '../src/server/index.js';
import type { ServerContext } from '../src/server/context.js';
import { RETRIEVAL_WIRE_NAMES, toRagRequest, type GenerationBody } from '../src/server/generations.js';
import { generationBody } from '../src/server/schemas.js';
import { buildSmallStore } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-openapi-');
const KEY = 'openapi-key-0123456789';
let enc: ClipEncoders;
let store: ImageStore;
let rag: RagPipeline;
let server: RagServer;
let base: string;
let keyed: RagServer;
let keyedBase: string;

type Schema = { properties?: Record<string, Schema>; anyOf?: Schema[]; type?: string; security?: unknown };
interface Doc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> }; security?: unknown }>>;
}
interface GenAnswer {
  references: { id?: string; usage: { as: string; fidelity?: number }[] }[];
  retrieval: { mode: string } | null;
  retrieved?: { b64_json: string; reference: { id: string } };
  data: unknown[];
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const generate = async (body: Record<string, unknown>): Promise<GenAnswer> => {
  const res = await post(`${base}/v1/images/generations`, { prompt: 'red apple', steps: 2, seed: 3, ...body });
  const text = await res.text();
  assert.is(res.status, 200, text);
  return JSON.parse(text) as GenAnswer;
};
const retrievalSchema = (doc: Doc): Schema => {
  const body = doc.paths['/v1/images/generations']!.post!.requestBody!.content['application/json']!.schema;
  return body.properties!.retrieval!.anyOf!.find((s) => s.type === 'object')!;
};

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await buildSmallStore(`${t.dir}/store`, enc);
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 2 });
  server = await createServer({ rag, store, page: false });
  base = await server.listen();
  keyed = await createServer({ rag, store, page: false, apiKeys: { keys: [KEY] } });
  keyedBase = await keyed.listen();
});

test.after(async () => {
  await server?.close({ graceMs: 0 });
  await keyed?.close({ graceMs: 0 });
  await rag?.close();
  await store?.close();
  await enc?.close();
  t.cleanup();
});

test('GET /openapi.json: OpenAPI 3.1 from the routes\' schemas — the generation body is the schema ajv checks', async () => {
  const res = await fetch(`${base}/openapi.json`);
  assert.is(res.status, 200);
  const doc = (await res.json()) as Doc;
  assert.is(doc.openapi, '3.1.0');
  assert.is(doc.info.title, 'ragdiff');
  for (const [path, method] of [['/v1/images/generations', 'post'], ['/v1/models', 'get'], ['/v1/models/{model}', 'get'], ['/v1/references', 'get'], ['/v1/references', 'post'], ['/v1/generations/{id}/events', 'get'], ['/healthz', 'get']] as const) {
    assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`);
  }
  assert.not.ok(doc.paths['/openapi.json'], 'the document does not describe itself');
  const documented = doc.paths['/v1/images/generations']!.post!.requestBody!.content['application/json']!.schema;
  assert.equal(Object.keys(documented.properties!).sort(), Object.keys(generationBody(DEFAULT_LIMITS).properties).sort());
  // Without keys, no security; with keys, the /v1 routes need the bearer key and health does not.
  assert.is(doc.paths['/v1/models']!.get!.security, undefined);
  const keyedDoc = (await (await fetch(`${keyedBase}/openapi.json`)).json()) as Doc;
  assert.equal(keyedDoc.paths['/v1/images/generations']!.post!.security, [{ bearer: [] }]);
  assert.equal(keyedDoc.paths['/v1/models']!.get!.security, [{ bearer: [] }]);
  assert.is(keyedDoc.paths['/healthz']!.get!.security, undefined);
});

test('every retrieval option of the library is documented under its HTTP name', async () => {
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as Doc;
  const documented = Object.keys(retrievalSchema(doc).properties!);
  for (const [option, wire] of Object.entries(RETRIEVAL_WIRE_NAMES)) assert.ok(documented.includes(wire), `retrieval.${option} is reachable as retrieval.${wire}`);
  assert.ok(documented.includes('reference_attention'));
});

test('the body type is derived from the schema: what the schema refuses does not compile', () => {
  const ok: GenerationBody = { prompt: 'x', n: 1, sampler: 'ddim', retrieval: { reference_attention: false, reflective: { draft_steps: 2 }, query: { embedding: [1] } } };
  // @ts-expect-error a misspelt retrieval option
  const misspelt: GenerationBody = { prompt: 'x', n: 1, retrieval: { refernce_attention: false } };
  // @ts-expect-error reference_attention is false or an object, never true
  const wrongShape: GenerationBody = { prompt: 'x', n: 1, retrieval: { reference_attention: true } };
  // @ts-expect-error a sampler the schema's enum does not list
  const sampler: GenerationBody = { prompt: 'x', n: 1, sampler: 'nope' };
  // @ts-expect-error n has a default, so after validation it is always there
  const noN: GenerationBody = { prompt: 'x' };
  assert.ok([ok, misspelt, wrongShape, sampler, noN].every((b) => b.prompt === 'x'));
});

test('every retrieval option reaches the library, renamed and reshaped', () => {
  const ctx = { rag, store, limits: DEFAULT_LIMITS, size: '64x64' } as unknown as ServerContext;
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
  const req = toRagRequest(ctx, {
    prompt: 'red apple', n: 1,
    retrieval: {
      k: 3, mode: 'mixture', query: { b64_json: png.toString('base64') }, references: ['a', { id: 'b' }, { b64_json: png.toString('base64'), name: 'mine' }],
      exclude: ['c'], sources: ['twemoji'], licences: ['CC-BY-4.0'], tags: ['fruit'], min_score: 0.1, scales: { text: 3, retrieval: 2 },
      query_in_first_slot: true, neighbour_weighting: 'score', mixture: { coarse_scale: 5, fine_below: 200, fine: { both: 1, text: 2, retrieval: 3 } },
      interleave: { text_share: 0.25 }, reference_init: { strength: 0.6, blend: 2 }, reference_attention: { fidelity: 0.5, blend: 1, branches: 'prompt' },
      reflective: { lambda: 0.3, draft_steps: 4, candidates: 20 }, retrieve_only: { above: 0.9, also_generate: true },
      from: ['store'], budget: { ms: 1500, images: 4 },
    },
  });
  const rest = req.retrieval!;
  assert.not.ok('store' in rest, 'the request names no store: the generator searches its own');
  assert.equal(Object.keys(rest).sort(), Object.keys(RETRIEVAL_WIRE_NAMES).sort(), 'every option the library has, and only those');
  const expected: Omit<RetrievalOptions, 'store'> = {
    k: 3, mode: 'mixture', query: png, references: [{ id: 'a' }, { id: 'b' }, { image: png, name: 'mine', source: 'upload', licence: undefined, attribution: undefined }],
    excludeIds: ['c'], sources: ['twemoji'], licences: ['CC-BY-4.0'], tags: ['fruit'], minScore: 0.1, scales: { text: 3, retrieval: 2 },
    queryInFirstSlot: true, neighbourWeighting: 'score', mixture: { coarseScale: 5, fineBelow: 200, fine: { both: 1, text: 2, retrieval: 3 } },
    interleave: { textShare: 0.25 }, referenceInit: { strength: 0.6, blend: 2 }, referenceAttention: { fidelity: 0.5, blend: 1, branches: 'prompt' },
    reflective: { lambda: 0.3, draftSteps: 4, candidates: 20 }, retrieveOnly: { above: 0.9, alsoGenerate: true },
    from: ['store'], budget: { ms: 1500, images: 4 },
  };
  assert.equal(rest, expected);
  const emb = toRagRequest(ctx, { prompt: 'x', n: 1, retrieval: { query: { embedding: [0.5, 0.5] }, reference_attention: false, reflective: true } }).retrieval!;
  assert.instance(emb.query, Float32Array);
  assert.equal(Array.from(emb.query as Float32Array), [0.5, 0.5]);
  assert.is(emb.referenceAttention, false);
  assert.is(emb.reflective, true);
});

test('over HTTP: reference_attention turns the bundle\'s default attention off or sets its fidelity; retrieve_only answers with the stored image', async () => {
  const byDefault = await generate({});
  assert.ok(byDefault.references.some((r) => r.usage.some((u) => u.as === 'attention')), 'tiny-emoji attends to the reference by default');
  const off = await generate({ retrieval: { reference_attention: false } });
  assert.ok(off.references.length > 0);
  assert.not.ok(off.references.some((r) => r.usage.some((u) => u.as === 'attention')), 'reference_attention: false reaches the library');
  const half = await generate({ retrieval: { reference_attention: { fidelity: 0.5 } } });
  assert.ok(half.references.some((r) => r.usage.some((u) => u.as === 'attention' && u.fidelity === 0.5)));
  const mixed = await generate({ retrieval: { mode: 'mixture', mixture: { coarse_scale: 4 }, tags: [] } });
  assert.is(mixed.retrieval!.mode, 'mixture');
  const answered = await generate({ retrieval: { retrieve_only: { above: -1 } } });
  assert.ok(answered.retrieved, 'the stored image that answered');
  assert.ok(Buffer.from(answered.retrieved!.b64_json, 'base64').subarray(1, 4).toString() === 'PNG');
  assert.is(answered.data.length, 0, 'retrieve-only without also_generate generates nothing');
  // The library still checks values against the bundle and names the field.
  const bad = await post(`${base}/v1/images/generations`, { prompt: 'red apple', retrieval: { reflective: { candidates: 1 } } });
  assert.is(bad.status, 400);
  assert.match(await bad.text(), /retrieval\.reflective\.candidates/);
  // … in the names the client sent.
  const blend = await post(`${base}/v1/images/generations`, { prompt: 'red apple', retrieval: { reference_init: { blend: 16 } } });
  assert.is(blend.status, 400);
  assert.match(await blend.text(), /retrieval\.reference_init\.blend must be/);
  const misspelt = await post(`${base}/v1/images/generations`, { prompt: 'red apple', retrieval: { refernce_attention: false } });
  assert.is(misspelt.status, 400);
  assert.match(await misspelt.text(), /refernce_attention/);
  const wrongShape = await post(`${base}/v1/images/generations`, { prompt: 'red apple', retrieval: { reference_attention: true } });
  assert.is(wrongShape.status, 400);
  assert.match(await wrongShape.text(), /retrieval\/reference_attention must be false or object/);
});

test('GET /v1/models lists the served bundle in OpenAI\'s shape; GET /v1/models/:id finds it', async () => {
  const list = (await (await fetch(`${base}/v1/models`)).json()) as { object: string; data: { id: string; object: string; created: number; owned_by: string }[] };
  assert.is(list.object, 'list');
  assert.is(list.data.length, 1);
  const m = list.data[0]!;
  assert.equal(Object.keys(m).sort(), ['created', 'id', 'object', 'owned_by']);
  assert.is(m.id, rag.info.name);
  assert.is(m.object, 'model');
  assert.ok(Number.isInteger(m.created) && m.created > 0);
  assert.is(m.owned_by, 'ragdiff');
  assert.equal(await (await fetch(`${base}/v1/models/${encodeURIComponent(m.id)}`)).json(), m);
  // Like every /v1 route, it needs a key when keys are set.
  assert.is((await fetch(`${keyedBase}/v1/models`)).status, 401);
  assert.is((await fetch(`${keyedBase}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
});

test('an unknown model is 404 MODEL_NOT_FOUND in OpenAI\'s error shape; the served one is accepted', async () => {
  for (const res of [await post(`${base}/v1/images/generations`, { prompt: 'red apple', model: 'dall-e-3' }), await fetch(`${base}/v1/models/dall-e-3`)]) {
    assert.is(res.status, 404);
    const body = (await res.json()) as { error: { code: string; message: string; type: string; param: string } };
    assert.is(body.error.code, 'MODEL_NOT_FOUND');
    assert.is(body.error.type, 'invalid_request_error');
    assert.is(body.error.param, 'model');
    assert.match(body.error.message, /dall-e-3/);
    assert.match(body.error.message, new RegExp(rag.info.name));
  }
  assert.is((await generate({ model: rag.info.name, retrieval: false })).data.length, 1);
});

test.run();
