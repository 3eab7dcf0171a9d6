/**
 * ragdiff as an HTTP service, on loopback: OpenAI-shaped generation with the
 * user's choice of references, progress as server-sent events, references
 * searched, uploaded and opted out, API keys, metrics, a bounded queue under
 * load, and every kind of bad input answered with a 4xx naming the problem —
 * never a stack trace, a 5xx or a hang. A client that vanishes cancels its
 * work: the queue empties.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { loadClipEncoders, type ClipEncoders, type ImageStore } from '../src/store/index.js';
import { RagPipeline, readProvenance, type ReferenceScreen } from '../src/rag/index.js';
import { createServer, httpStatusOf, type RagServer } from '../src/server/index.js';
import { pngClaiming } from './fixtures/store/images.js';
import { buildSmallStore, twemojiInputs, UPLOAD_NAME } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-server-');
let enc: ClipEncoders;
let store: ImageStore;
let rag: RagPipeline;
let open: RagServer; // no keys
let base: string;
const READ_KEY = 'read-key-0123456789';
const WRITE_KEY = 'write-key-0123456789';
let keyed: RagServer;
let keyedBase: string;
let screened: RagServer;
let screenedBase: string;
let refused = '';

const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const post = (url: string, body: unknown, init: RequestInit = {}) => fetch(url, { ...json(body), ...init, headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });
const idOf = (name: string) => store.list({ limit: 1000 }).find((r) => r.name === name)!.id;
const uploadBytes = () => readFileSync(twemojiInputs([UPLOAD_NAME])[0]!.path);

/** An error reply: status, the code, and no stack trace in the body. */
async function expectError(res: Response, status: number, code: string, message?: RegExp): Promise<string> {
  const text = await res.text();
  assert.is(res.status, status, `${status} expected, got ${res.status}: ${text}`);
  assert.not.match(text, /\n\s+at /, 'no stack trace');
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  assert.is(body.error.code, code, text);
  if (message) assert.match(body.error.message, message);
  return body.error.message;
}

function form(bytes: Buffer | undefined, fields: Record<string, string> = {}, fileName = 'upload.png', part = 'file'): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  if (bytes) f.append(part, new Blob([new Uint8Array(bytes)]), fileName);
  return f;
}

async function health(b = base): Promise<{ queue: { running: number; queued: number; inflight: number } }> {
  return (await (await fetch(`${b}/healthz`)).json()) as { queue: { running: number; queued: number; inflight: number } };
}

/** Polls until the server has nothing admitted, queued or running (bounded). */
async function waitEmpty(b = base, ms = 30_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const h = await health(b);
    if (h.queue.running === 0 && h.queue.queued === 0 && h.queue.inflight === 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

async function waitRunning(b = base, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await health(b)).queue.running > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('nothing started running');
}

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await buildSmallStore(`${t.dir}/store`, enc);
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 2 });
  open = await createServer({ rag, store, limits: { bodyBytes: 512 * 1024, uploadBytes: 256 * 1024, uploadPixels: 4_000_000, steps: 500 } });
  base = await open.listen();
  keyed = await createServer({ rag, store, page: false, apiKeys: { keys: [READ_KEY], writeKeys: [WRITE_KEY] } });
  keyedBase = await keyed.listen();
  refused = idOf('ghost');
  const screen: ReferenceScreen = (ref) => (ref.id === refused ? { allow: false, reason: 'ghosts are not allowed here' } : { allow: true });
  const promptScreen = (p: string) => (/forbidden/.test(p) ? { allow: false as const, rule: 'word:forbidden', score: 1, reason: 'the word "forbidden"' } : { allow: true as const });
  screened = await createServer({ rag, store, page: false, safety: { screen, promptScreen, policyStamp: () => ({ version: 'test-1', hash: 'sha256:test-policy' }) } });
  screenedBase = await screened.listen();
});

test.after(async () => {
  await open?.close({ graceMs: 0 });
  await keyed?.close({ graceMs: 0 });
  await screened?.close({ graceMs: 0 });
  await rag?.close();
  await store?.close();
  await enc?.close();
  t.cleanup();
});

test('POST /v1/images/generations: OpenAI-shaped answer; each image is a PNG whose provenance lists the references the response lists', async () => {
  const res = await post(`${base}/v1/images/generations`, { prompt: 'red apple', n: 2, size: '64x64', response_format: 'b64_json', seed: 7, steps: 3, sampler: 'ddim' });
  assert.is(res.status, 200);
  const body = (await res.json()) as { created: number; data: { b64_json: string; seed: number; references: { id: string }[] }[]; references: { id: string; name: string; thumbnail_url: string; attribution: string }[]; retrieval: { mode: string; k: number } };
  assert.ok(Number.isInteger(body.created) && body.created > 1_700_000_000);
  assert.is(body.data.length, 2);
  assert.is(body.retrieval.mode, 'tokens');
  assert.is(body.references.length, 4);
  assert.is(body.references[0]!.name, 'red apple');
  assert.match(body.references[0]!.attribution, /Twemoji/);
  assert.match(body.references[0]!.thumbnail_url, /^\/v1\/references\/[0-9a-f]+\/image\?size=128$/);
  assert.equal(body.data.map((d) => d.seed), [7, 8]);
  for (const d of body.data) {
    const png = Buffer.from(d.b64_json, 'base64');
    const e = readProvenance(png);
    assert.is(e.parameters.seed, d.seed);
    assert.equal(e.provenance!.references.map((r) => r.id), body.references.map((r) => r.id));
    assert.equal(d.references.map((r) => r.id), body.references.map((r) => r.id));
    assert.equal((d as unknown as { provenance: unknown }).provenance, e.provenance!.retrieval);
  }
  const params = (body as unknown as { parameters: { steps: number; sampler: string; prompt: string } }).parameters;
  assert.equal([params.steps, params.sampler, params.prompt], [3, 'ddim', 'red apple']);
});

test('pinned ids, exclusions and inline uploads shape the provenance; retrieval:false generates without references', async () => {
  const pin = idOf('rocket');
  const drop = idOf('red apple');
  const res = await post(`${base}/v1/images/generations`, {
    prompt: 'red apple', seed: 3, steps: 2,
    retrieval: { references: [pin, { b64_json: uploadBytes().toString('base64'), name: 'my frog' }], exclude: [drop] },
  });
  assert.is(res.status, 200);
  const body = (await res.json()) as { data: { b64_json: string }[] };
  const refs = readProvenance(Buffer.from(body.data[0]!.b64_json, 'base64')).provenance!.references;
  assert.ok(refs.some((r) => r.id === pin && r.pinned));
  assert.ok(refs.some((r) => r.kind === 'upload' && r.name === 'my frog'));
  assert.not.ok(refs.some((r) => r.id === drop), 'the excluded reference is not used');
  assert.is(refs.length, 4);

  const plain = await post(`${base}/v1/images/generations`, { prompt: 'red apple', seed: 3, steps: 2, retrieval: false });
  const p = (await plain.json()) as { data: { b64_json: string }[]; references: unknown[]; retrieval: unknown };
  assert.equal(p.references, []);
  assert.is(p.retrieval, null);
  assert.is(readProvenance(Buffer.from(p.data[0]!.b64_json, 'base64')).provenance, undefined);
});

test('stream: 202 with a job id; the events are progress, then the result; the result stays readable', async () => {
  const res = await post(`${base}/v1/images/generations`, { prompt: 'cat face', seed: 1, steps: 4, stream: true });
  assert.is(res.status, 202);
  const job = (await res.json()) as { id: string; events_url: string; result_url: string };
  assert.match(job.id, /^gen_[0-9a-f]{32}$/);
  const ev = await fetch(`${base}${job.events_url}`);
  assert.match(ev.headers.get('content-type') ?? '', /text\/event-stream/);
  const text = await ev.text();
  const events = text.split('\n\n').filter((b) => b.startsWith('event: ')).map((b) => ({ event: b.split('\n')[0]!.slice(7), data: JSON.parse(b.split('\n')[1]!.slice(6)) as Record<string, unknown> }));
  const progress = events.filter((e) => e.event === 'progress');
  assert.ok(progress.some((e) => e.data.stage === 'denoise' && e.data.step === 4 && e.data.total === 4), text.slice(0, 500));
  const last = events.at(-1)!;
  assert.is(last.event, 'result');
  assert.is((last.data.data as unknown[]).length, 1);
  const again = await fetch(`${base}${job.result_url}`);
  assert.is(again.status, 200);
  assert.is(((await again.json()) as { id: string }).id, job.id);
  await expectError(await fetch(`${base}/v1/generations/gen_00000000000000000000000000000000/events`), 404, 'JOB_NOT_FOUND');
});

test('a client that disconnects from the event stream cancels its generation: the queue empties', async () => {
  const res = await post(`${base}/v1/images/generations`, { prompt: 'rocket', seed: 1, steps: 500, stream: true });
  const job = (await res.json()) as { id: string; events_url: string; result_url: string };
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${base}${job.events_url}`, (r) => {
      r.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('"stage":"denoise"')) {
          req.destroy(); // the client vanishes mid-generation
          resolve();
        }
      });
      r.on('end', () => reject(new Error('the event stream ended before any denoise progress')));
    });
    req.on('error', () => {});
    req.setTimeout(60_000, () => reject(new Error('no denoise progress')));
    req.end();
  });
  assert.ok(await waitEmpty(), 'the queue empties after the client left');
  const after = await fetch(`${base}${job.result_url}`);
  await expectError(after, 499, 'ABORTED');
});

test('a streamed job nobody follows is cancelled after orphanJobMs; DELETE cancels a job; both free the queue', async () => {
  const s = await createServer({ rag, store, page: false, limits: { steps: 500 }, orphanJobMs: 300 });
  const b = await s.listen();
  try {
    const orphan = (await (await post(`${b}/v1/images/generations`, { prompt: 'tomato', steps: 500, stream: true })).json()) as { result_url: string };
    assert.ok(await waitEmpty(b), 'the orphaned job was cancelled');
    await expectError(await fetch(`${b}${orphan.result_url}`), 499, 'ABORTED', /aborted/);
    const job = (await (await post(`${b}/v1/images/generations`, { prompt: 'tomato', steps: 500, stream: true })).json()) as { id: string; result_url: string };
    const del = await fetch(`${b}/v1/generations/${job.id}`, { method: 'DELETE' });
    assert.equal(await del.json(), { id: job.id, cancelled: true });
    assert.ok(await waitEmpty(b), 'the deleted job was cancelled');
    await expectError(await fetch(`${b}${job.result_url}`), 499, 'ABORTED');
  } finally {
    await s.close({ graceMs: 0 });
  }
});

test('a client that vanishes during a plain POST cancels its work: the queue empties', async () => {
  const cancelledBefore = (await open.metrics.registry.getSingleMetricAsString('ragdiff_generation_duration_seconds')).match(/_count\{retrieval="yes",outcome="cancelled"\} (\d+)/)?.[1] ?? '0';
  const req = httpRequest(`${base}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify({ prompt: 'snowman', steps: 500 }));
  await waitRunning();
  req.destroy();
  assert.ok(await waitEmpty(), 'the queue empties after the client left');
  const metric = await open.metrics.registry.getSingleMetricAsString('ragdiff_generation_duration_seconds');
  const cancelled = metric.match(/_count\{retrieval="yes",outcome="cancelled"\} (\d+)/)?.[1];
  assert.is(Number(cancelled), Number(cancelledBefore) + 1);
});

test('bad JSON input: malformed, wrong types, unknown fields, limits, unsupported size and format — 4xx naming the problem', async () => {
  const url = `${base}/v1/images/generations`;
  await expectError(await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": "a",' }), 400, 'INVALID_JSON');
  await expectError(await post(url, { prompt: 5 }), 400, 'INVALID_REQUEST', /body\/prompt must be string/);
  await expectError(await post(url, { prompt: 'a', n: '2' }), 400, 'INVALID_REQUEST', /body\/n must be integer/);
  await expectError(await post(url, { prompt: 'a', n: 99 }), 400, 'INVALID_REQUEST', /body\/n must be <= 4/);
  await expectError(await post(url, { prompt: 'a', steps: 0 }), 400, 'INVALID_REQUEST', /steps/);
  await expectError(await post(url, { prompt: 'a', colour: 'red' }), 400, 'INVALID_REQUEST', /additional properties \("colour"\)/);
  await expectError(await post(url, {}), 400, 'INVALID_REQUEST', /prompt/);
  await expectError(await post(url, { prompt: 'x'.repeat(1001) }), 400, 'INVALID_REQUEST', /prompt must NOT have more than 1000 characters/);
  await expectError(await post(url, { prompt: '   ' }), 400, 'INVALID_REQUEST', /blank/);
  await expectError(await post(url, { prompt: 'a', size: '1024x1024' }), 400, 'INVALID_REQUEST', /size must be "64x64"/);
  await expectError(await post(url, { prompt: 'a', response_format: 'url' }), 400, 'INVALID_REQUEST', /b64_json/);
  await expectError(await post(url, { prompt: 'a', retrieval: { mode: 'telepathy' } }), 400, 'INVALID_REQUEST', /mode/);
  await expectError(await post(url, { prompt: 'a', sampler: 'heun' }), 400, 'INVALID_REQUEST', /sampler must be equal to one of the allowed values: ddim/);
  await expectError(await post(url, { prompt: 'a', retrieval: { references: [{ b64_json: 'not base64!' }] } }), 400, 'INVALID_REQUEST', /base64/);
  await expectError(await post(url, { prompt: 'a', retrieval: { k: 9 } }), 400, 'OUT_OF_RANGE', /retrieval.k must be in 1..4/);
  await expectError(await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  // Over the 512 KiB body limit.
  await expectError(await post(url, { prompt: 'a', retrieval: { references: [{ b64_json: 'A'.repeat(600 * 1024) }] } }), 413, 'PAYLOAD_TOO_LARGE');
  await expectError(await fetch(`${base}/v1/nothing`), 404, 'NOT_FOUND');
  await expectError(await fetch(`${base}/v1/references?k=abc`), 400, 'INVALID_REQUEST', /querystring\/k/);
  assert.ok(await waitEmpty());
});

test('unknown, removed and refused reference ids are typed 4xx errors', async () => {
  await expectError(await post(`${base}/v1/images/generations`, { prompt: 'a', steps: 1, retrieval: { references: ['0123456789abcdef'] } }), 404, 'REFERENCE_NOT_FOUND');
  await expectError(await fetch(`${base}/v1/references/0123456789abcdef/image`), 404, 'IMAGE_NOT_FOUND');
  await expectError(await fetch(`${base}/v1/references/0123456789abcdef`, { method: 'DELETE' }), 404, 'IMAGE_NOT_FOUND');
});

test('references: search with thumbnails, images, upload (through the gate), duplicate, opt-out, and the opted-out image stays out', async () => {
  const found = (await (await fetch(`${base}/v1/references?q=banana&k=3`)).json()) as { data: { id: string; name: string; score: number; thumbnail_url: string; licence: string }[] };
  assert.is(found.data.length, 3);
  assert.is(found.data[0]!.name, 'banana');
  assert.is(found.data[0]!.licence, 'CC-BY-4.0');
  const thumb = await fetch(`${base}${found.data[0]!.thumbnail_url}`);
  assert.is(thumb.status, 200);
  assert.is(thumb.headers.get('content-type'), 'image/png');
  assert.equal([...new Uint8Array(await thumb.arrayBuffer()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);

  const up = await fetch(`${base}/v1/references`, { method: 'POST', body: form(uploadBytes(), { name: 'my frog', licence: 'CC0-1.0', attribution: 'me' }, 'frog.png') });
  assert.is(up.status, 201);
  const added = (await up.json()) as { status: string; reference: { id: string; name: string; source: string; licence: string } };
  assert.is(added.status, 'added');
  assert.equal([added.reference.name, added.reference.source, added.reference.licence], ['my frog', 'upload', 'CC0-1.0']);
  const again = await fetch(`${base}/v1/references`, { method: 'POST', body: form(uploadBytes()) });
  assert.is(again.status, 200);
  assert.is(((await again.json()) as { status: string; reference: { id: string } }).reference.id, added.reference.id);
  const search = (await (await fetch(`${base}/v1/references?q=frog%20face&k=1`)).json()) as { data: { id: string }[] };
  assert.is(search.data[0]!.id, added.reference.id);

  const del = await fetch(`${base}/v1/references/${added.reference.id}?reason=owner%20asked`, { method: 'DELETE' });
  assert.is(del.status, 200);
  assert.equal(await del.json(), { id: added.reference.id, removed: true, status: 'removed' });
  await expectError(await fetch(`${base}/v1/references/${added.reference.id}/image`), 410, 'IMAGE_REMOVED');
  await expectError(await fetch(`${base}/v1/references`, { method: 'POST', body: form(uploadBytes()) }), 410, 'IMAGE_REMOVED');
  await expectError(await post(`${base}/v1/images/generations`, { prompt: 'frog', steps: 1, retrieval: { references: [added.reference.id] } }), 410, 'REFERENCE_REMOVED');
  const after = (await (await fetch(`${base}/v1/references?q=frog%20face&k=5`)).json()) as { data: { id: string }[] };
  assert.not.ok(after.data.some((d) => d.id === added.reference.id));
});

test('bad uploads: not an image, corrupt, over the byte limit, over the pixel limit, no file, wrong field, not multipart', async () => {
  const url = `${base}/v1/references`;
  await expectError(await fetch(url, { method: 'POST', body: form(Buffer.from('just some text, not an image')) }), 415, 'NOT_AN_IMAGE');
  const png = uploadBytes();
  // A PNG cut short: refused at the header check or by the store's decoder, either way 415.
  const cut = await fetch(url, { method: 'POST', body: form(Buffer.concat([png.subarray(0, 40), Buffer.alloc(200)])) });
  assert.is(cut.status, 415);
  assert.ok(['NOT_AN_IMAGE', 'IMAGE_CORRUPT'].includes(((await cut.json()) as { error: { code: string } }).error.code));
  await expectError(await fetch(url, { method: 'POST', body: form(Buffer.concat([png, Buffer.alloc(300 * 1024)])) }), 413, 'PAYLOAD_TOO_LARGE');
  await expectError(await fetch(url, { method: 'POST', body: form(pngClaiming(5000, 5000)) }), 413, 'IMAGE_TOO_LARGE', /5000×5000/);
  await expectError(await fetch(url, { method: 'POST', body: form(undefined, { name: 'x' }) }), 400, 'INVALID_REQUEST', /no file/);
  await expectError(await fetch(url, { method: 'POST', body: form(png, {}, 'a.png', 'picture') }), 400, 'INVALID_REQUEST', /"file"/);
  await expectError(await fetch(url, { method: 'POST', body: form(png, { owner: 'x' }) }), 400, 'INVALID_REQUEST', /unknown field "owner"/);
  await expectError(await post(url, { image: 'x' }), 415, 'UNSUPPORTED_MEDIA_TYPE', /multipart/);
  assert.is(store.stats().active, 30, 'nothing was added');
});

test('API keys: none or a wrong one is 401, a generate-only key cannot write (403), a write key can; health is public', async () => {
  const gen = `${keyedBase}/v1/images/generations`;
  const r1 = await post(gen, { prompt: 'a', steps: 1 });
  await expectError(r1, 401, 'UNAUTHORIZED', /Bearer/);
  assert.match(r1.headers.get('www-authenticate') ?? '', /^Bearer/);
  await expectError(await post(gen, { prompt: 'a', steps: 1 }, { headers: { authorization: 'Bearer wrong-key-0000000' } }), 401, 'UNAUTHORIZED', /not valid/);
  await expectError(await post(gen, { prompt: 'a', steps: 1 }, { headers: { authorization: `Basic ${READ_KEY}` } }), 401, 'UNAUTHORIZED');
  assert.is((await post(gen, { prompt: 'a', steps: 1 }, { headers: { authorization: `Bearer ${READ_KEY}` } })).status, 200);
  assert.is((await fetch(`${keyedBase}/v1/references?q=cat`, { headers: { authorization: `Bearer ${READ_KEY}` } })).status, 200);
  await expectError(await fetch(`${keyedBase}/v1/references?q=cat`), 401, 'UNAUTHORIZED');
  await expectError(await fetch(`${keyedBase}/v1/references`, { method: 'POST', body: form(uploadBytes()), headers: { authorization: `Bearer ${READ_KEY}` } }), 403, 'FORBIDDEN');
  await expectError(await fetch(`${keyedBase}/v1/references/${idOf('lemon')}`, { method: 'DELETE', headers: { authorization: `Bearer ${READ_KEY}` } }), 403, 'FORBIDDEN');
  assert.is(store.get(idOf('lemon'))!.status, 'active');
  // A write key may upload (a fresh image) and generate.
  const fresh = readFileSync(twemojiInputs(['soccer ball'])[0]!.path);
  const up = await fetch(`${keyedBase}/v1/references`, { method: 'POST', body: form(fresh), headers: { authorization: `Bearer ${WRITE_KEY}` } });
  assert.is(up.status, 201);
  const id = ((await up.json()) as { reference: { id: string } }).reference.id;
  assert.is((await fetch(`${keyedBase}/v1/references/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${WRITE_KEY}` } })).status, 200);
  assert.is((await post(gen, { prompt: 'a', steps: 1 }, { headers: { authorization: `Bearer ${WRITE_KEY}` } })).status, 200);
  assert.is((await fetch(`${keyedBase}/healthz`)).status, 200);
});

test('the safety seam: search shows the screen\'s verdicts, generation reports refusals, a refused prompt is 403, decisions are counted', async () => {
  const found = (await (await fetch(`${screenedBase}/v1/references?q=ghost&k=3`)).json()) as { data: { id: string; screen: { allow: boolean; reason?: string } }[] };
  const ghost = found.data.find((d) => d.id === refused)!;
  assert.equal(ghost.screen, { allow: false, reason: 'ghosts are not allowed here' });
  assert.ok(found.data.filter((d) => d.id !== refused).every((d) => d.screen.allow));
  const res = await post(`${screenedBase}/v1/images/generations`, { prompt: 'ghost', seed: 1, steps: 2 });
  assert.is(res.status, 200);
  const body = (await res.json()) as { references: { id: string }[]; safety: { policy: string; screened: { ref: string; reason: string }[]; prompt: { allow: boolean } } };
  assert.is(body.safety.policy, 'sha256:test-policy');
  assert.equal(body.safety.prompt, { allow: true });
  assert.equal(body.safety.screened, [{ ref: refused, reason: 'ghosts are not allowed here' }]);
  assert.not.ok(body.references.some((r) => r.id === refused));
  await expectError(await post(`${screenedBase}/v1/images/generations`, { prompt: 'something forbidden', steps: 1 }), 403, 'PROMPT_BLOCKED', /forbidden/);
  await expectError(await post(`${screenedBase}/v1/images/generations`, { prompt: 'ghost', steps: 1, retrieval: { references: [refused] } }), 403, 'REFERENCE_BLOCKED');
  const metrics = await (await fetch(`${screenedBase}/metrics`)).text();
  assert.match(metrics, /ragdiff_screening_decisions_total\{stage="reference",decision="refuse"\} [1-9]/);
  assert.match(metrics, /ragdiff_screening_decisions_total\{stage="prompt",decision="refuse"\} 1/);
  assert.is(((await (await fetch(`${screenedBase}/healthz`)).json()) as { policy: string }).policy, 'sha256:test-policy');
});

test('load beyond the queue: every request is answered 200 or 429 (with Retry-After), none 5xx, none hangs; the queue empties', async () => {
  // capacity: 1 running + 2 queued
  const N = 12;
  const results = await Promise.all(Array.from({ length: N }, (_, i) => post(`${base}/v1/images/generations`, { prompt: 'cat face', seed: i, steps: 2 }, { signal: AbortSignal.timeout(120_000) })
    .then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() }))));
  const statuses = results.map((r) => r.status);
  assert.ok(statuses.every((s) => s === 200 || s === 429), statuses.join(','));
  assert.ok(statuses.filter((s) => s === 200).length >= 3, statuses.join(','));
  const busy = results.filter((r) => r.status === 429);
  assert.ok(busy.length >= 1, statuses.join(','));
  for (const b of busy) {
    assert.match(b.retryAfter ?? '', /^[1-9][0-9]*$/);
    assert.is((JSON.parse(b.body) as { error: { code: string } }).error.code, 'BUSY');
  }
  assert.ok(await waitEmpty());
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /ragdiff_rejected_total\{reason="busy"\} [1-9]/);
  assert.match(metrics, /ragdiff_queue_depth 0/);
  assert.match(metrics, /ragdiff_denoiser_calls_total [1-9]/);
  assert.match(metrics, /ragdiff_retrieval_duration_seconds_count [1-9]/);
  assert.match(metrics, /ragdiff_http_request_duration_seconds_bucket\{le="[0-9.]+",method="POST",route="\/v1\/images\/generations",status="200"\}/);
});

test('the page and its metadata are served; /v1/info tells the page the model, size, modes and limits', async () => {
  const page = await fetch(`${base}/`);
  assert.is(page.status, 200);
  assert.match(await page.text(), /<title>ragdiff/);
  assert.match((await fetch(`${base}/app.js`)).headers.get('content-type') ?? '', /javascript/);
  const info = (await (await fetch(`${base}/v1/info`)).json()) as { size: string; modes: string[]; retrieval: { slots: number }; auth: boolean };
  assert.is(info.size, '64x64');
  assert.ok(info.modes.includes('tokens'));
  assert.is(info.retrieval.slots, 4);
  assert.is(info.auth, false);
});

test('one mapping from error codes to HTTP statuses', () => {
  assert.is(httpStatusOf('INVALID_TYPE'), 400);
  assert.is(httpStatusOf('REFERENCE_NOT_FOUND'), 404);
  assert.is(httpStatusOf('BUSY'), 429);
  assert.is(httpStatusOf('IMAGE_BLOCKED'), 403);
  assert.is(httpStatusOf('SOMETHING_NEW'), 500);
  assert.is(httpStatusOf(undefined), 500);
});

test('graceful shutdown: new work is refused with 503, in-flight work past the grace period is cancelled, the queue empties', async () => {
  const s = await createServer({ rag, store, page: false, limits: { steps: 500 } });
  const b = await s.listen();
  const long = post(`${b}/v1/images/generations`, { prompt: 'penguin', steps: 500 }).then((r) => r.status, () => 'socket closed');
  await waitRunning(b);
  const closing = s.close({ graceMs: 100 });
  const refusedStatus = await post(`${b}/v1/images/generations`, { prompt: 'penguin', steps: 1 }).then((r) => r.status, () => 'socket closed');
  assert.ok(refusedStatus === 503 || refusedStatus === 'socket closed', String(refusedStatus));
  await closing;
  const st = await long;
  assert.ok(st === 499 || st === 'socket closed', String(st));
  assert.is(s.inflight, 0);
  assert.equal({ running: rag.pipeline.queueState.running, queued: rag.pipeline.queueState.queued }, { running: 0, queued: 0 });
});

test.run();
