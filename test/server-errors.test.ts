/**
 * The service's one error shape, one limit per concept, no server paths —
 * route by route, on loopback:
 * - every `/v1` route needs a key when keys are configured (`/v1/info` too),
 *   found by walking the routes the server registered, not a list kept by hand;
 * - what fastify or Node's HTTP parser refuse (an over-long path parameter, bad
 *   percent-encoding, a malformed request, oversized headers, bad JSON) answers
 *   `{ error: { code, message } }` with a closed-set code whose status is the
 *   response's, never fastify's own shape;
 * - client-facing messages (errors, `retrieval.skipped`) carry no server path;
 * - an image's pixel limit is the upload's (16 MP) for pinned base64
 *   references too, and a 50000² PNG bomb is 413 IMAGE_TOO_LARGE over HTTP as
 *   it is in the library.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { ImageStore, loadClipEncoders, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { decodeImage } from '../src/image/decode.js';
import { isErrorCode } from '../src/error-codes.js';
import { createServer, httpStatusOf, type RagServer } from '../src/server/index.js';
import { pngClaiming } from './fixtures/store/images.js';
import { buildSmallStore, twemojiInputs } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-server-errors-');
const READ = 'read-key-0123456789';
const WRITE = 'write-key-0123456789';
const auth = (key = READ) => ({ authorization: `Bearer ${key}` });
let enc: ClipEncoders;
let store: ImageStore;
let empty: ImageStore;
let rag: RagPipeline;
let server: RagServer;
let base: string;
let bare: RagServer; // no keys, an empty store, the page
let bareBase: string;

/** No absolute path of this machine: the temp dir, the repo, or any /tmp, /home, /work, /root, /usr path. */
function assertNoPaths(text: string, where: string): void {
  for (const p of [t.dir, store.dir, empty.dir, repoPath('.')]) assert.not.ok(text.includes(p), `${where}: names ${p}: ${text}`);
  assert.not.match(text, /(^|[\s"'(])\/(tmp|home|work|root|usr|var|etc)\//, `${where}: ${text}`);
}

/** The one error shape: exactly { error: { code, message } }, a closed-set code whose status is the response's. */
async function expectShape(res: Response, code: string, where: string): Promise<string> {
  const text = await res.text();
  assert.not.match(text, /FST_|statusCode|"error":"/, `${where}: fastify's own shape: ${text}`);
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  assert.equal(Object.keys(body), ['error'], `${where}: ${text}`);
  assert.equal(Object.keys(body.error).sort(), ['code', 'message'], `${where}: ${text}`);
  assert.ok(isErrorCode(body.error.code), `${where}: ${body.error.code} is not in the closed set`);
  assert.is(res.status, httpStatusOf(body.error.code), `${where}: status ${res.status} for ${body.error.code}`);
  assert.is(body.error.code, code, `${where}: ${text}`);
  assertNoPaths(body.error.message, where);
  return body.error.message;
}

/** Sends raw bytes and parses the HTTP answer (status line and JSON body). */
function raw(bytes: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1');
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', reject);
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
    s.end(bytes);
  });
}

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await buildSmallStore(`${t.dir}/store`, enc);
  empty = await ImageStore.open(`${t.dir}/empty`, { encoder: enc });
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 4 });
  server = await createServer({ rag, store, page: false, apiKeys: { keys: [READ], writeKeys: [WRITE] } });
  base = await server.listen();
  bare = await createServer({ rag, store: empty });
  bareBase = await bare.listen();
});

test.after(async () => {
  await server?.close({ graceMs: 0 });
  await bare?.close({ graceMs: 0 });
  await rag?.close();
  await store?.close();
  await empty?.close();
  await enc?.close();
  t.cleanup();
});

test('every /v1 route the server registered needs a key when keys are configured (/v1/info included)', async () => {
  // printRoutes draws a tree ("├── /v1/references (GET)" then "│   └── /:id (GET)"): rebuild each full path from its ancestors.
  const routes: { method: string; url: string }[] = [];
  const stack: string[] = [];
  for (const line of server.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([^)]+)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    const url = (depth > 0 ? stack[depth - 1]! : '') + m[2]!;
    stack.push(url);
    if (!url.startsWith('/v1/') || !m[3]) continue;
    for (const method of m[3].split(',').map((x) => x.trim())) if (method !== 'HEAD' && method !== 'OPTIONS') routes.push({ method, url: url.replace(/:[a-z]+/g, 'abc123') });
  }
  assert.ok(routes.some((r) => r.url === '/v1/info'), JSON.stringify(routes));
  assert.ok(routes.length >= 8, JSON.stringify(routes));
  for (const r of routes) {
    const init: RequestInit = { method: r.method, ...(r.method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}) };
    await expectShape(await fetch(`${base}${r.url}`, init), 'UNAUTHORIZED', `${r.method} ${r.url} without a key`);
  }
  assert.is((await fetch(`${base}/v1/info`, { headers: auth() })).status, 200);
  assert.is((await fetch(`${base}/healthz`)).status, 200, 'health stays public');
});

test('what fastify and the HTTP parser refuse answers in the one shape, with a closed-set code', async () => {
  // Ids up to the schema's 200 characters reach the route; longer ones are refused by the router, not with 414 FST_ERR_MAX_PARAM_LENGTH.
  await expectShape(await fetch(`${base}/v1/references/${'a'.repeat(150)}`, { headers: auth() }), 'IMAGE_NOT_FOUND', '150-character id');
  await expectShape(await fetch(`${base}/v1/references/${'a'.repeat(201)}`, { headers: auth() }), 'INVALID_REQUEST', '201-character id');
  await expectShape(await fetch(`${base}/v1/references/${'a'.repeat(5000)}/image`, { headers: auth() }), 'INVALID_REQUEST', '5000-character id');
  await expectShape(await fetch(`${base}/v1/generations/${'b'.repeat(300)}/events`, { headers: auth() }), 'INVALID_REQUEST', '300-character job id');
  await expectShape(await fetch(`${base}/v1/references/%E0%A4%A`, { headers: auth() }), 'INVALID_REQUEST', 'bad percent-encoding');
  const gen = `${base}/v1/images/generations`;
  await expectShape(await fetch(gen, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: '{"prompt":' }), 'INVALID_JSON', 'truncated JSON');
  await expectShape(await fetch(gen, { method: 'POST', headers: { ...auth(), 'content-type': 'text/plain' }, body: 'cat' }), 'UNSUPPORTED_MEDIA_TYPE', 'text body');
  await expectShape(await fetch(gen, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x'.repeat(5 * 1024 * 1024) }) }), 'PAYLOAD_TOO_LARGE', 'body over the limit');
  await expectShape(await fetch(`${base}/nowhere/${'x'.repeat(300)}`), 'NOT_FOUND', 'unknown route');
  // A plugin's client error with only a status (the page's static files: 416 for an unsatisfiable range) is not a 500.
  await expectShape(await fetch(`${bareBase}/app.js`, { headers: { range: 'bytes=99999999-' } }), 'INVALID_REQUEST', 'unsatisfiable range');
  // Below fastify: Node's parser.
  for (const [bytes, status, code, where] of [
    ['GARBAGE\r\n\r\n', 400, 'INVALID_REQUEST', 'not HTTP'],
    ['GET /v1/info HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n', 400, 'INVALID_REQUEST', 'a malformed header'],
    [`GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE', 'headers over the limit'],
  ] as const) {
    const r = await raw(bytes);
    assert.is(r.status, status, `${where}: ${r.status} ${r.body}`);
    assert.equal(JSON.parse(r.body), { error: { code, message: (JSON.parse(r.body) as { error: { message: string } }).error.message } }, where);
    assert.is(httpStatusOf(code), status);
  }
});

test('client-facing messages carry no server path: a missing pinned reference, a skipped retrieval', async () => {
  const gen = `${base}/v1/images/generations`;
  const msg = await expectShape(await fetch(gen, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'cat', steps: 1, retrieval: { references: ['0123456789abcdef0123456789abcdef'] } }) }), 'REFERENCE_NOT_FOUND', 'missing pinned reference');
  assert.match(msg, /0123456789abcdef0123456789abcdef/, 'the message still names the id');
  // An empty store: generation goes on without retrieval and says why, without naming the store's directory.
  const res = await fetch(`${bareBase}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'cat', steps: 1, retrieval: { k: 2 } }) });
  assert.is(res.status, 200);
  const body = (await res.json()) as { retrieval: { skipped: string } };
  assert.match(body.retrieval.skipped, /no active images/);
  assertNoPaths(body.retrieval.skipped, 'retrieval.skipped');
});

test('one pixel limit: uploads, pinned base64 references and image queries stop at 16 MP; the PNG bomb is 413 IMAGE_TOO_LARGE as in the library', async () => {
  const bomb = pngClaiming(50_000, 50_000);
  const twenty = pngClaiming(5000, 4000); // 20 MP: under the library's 40 MP decode cap, over the service's 16 MP
  const upload = (bytes: Buffer) => {
    const f = new FormData();
    f.append('file', new Blob([new Uint8Array(bytes)]), 'x.png');
    return fetch(`${base}/v1/references`, { method: 'POST', body: f, headers: auth(WRITE) });
  };
  const pinned = (bytes: Buffer) => fetch(`${base}/v1/images/generations`, {
    method: 'POST', headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'cat', steps: 1, retrieval: { references: [{ b64_json: bytes.toString('base64') }] } }),
  });
  await expectShape(await upload(bomb), 'IMAGE_TOO_LARGE', 'upload: PNG bomb');
  await expectShape(await upload(twenty), 'IMAGE_TOO_LARGE', 'upload: 20 MP');
  assert.match(await expectShape(await pinned(bomb), 'IMAGE_TOO_LARGE', 'pinned: PNG bomb'), /retrieval\.references\[0\].*16000000/);
  await expectShape(await pinned(twenty), 'IMAGE_TOO_LARGE', 'pinned: 20 MP');
  await expectShape(await pinned(Buffer.from('not an image at all')), 'NOT_AN_IMAGE', 'pinned: not an image');
  // An image query is the same concept: the same limit, checked before a slot is taken.
  const imageQuery = (bytes: Buffer) => fetch(`${base}/v1/images/generations`, {
    method: 'POST', headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'cat', steps: 1, retrieval: { query: { b64_json: bytes.toString('base64') } } }),
  });
  assert.match(await expectShape(await imageQuery(twenty), 'IMAGE_TOO_LARGE', 'image query: 20 MP'), /retrieval\.query.*16000000/);
  // The library's code for the same bomb.
  await decodeImage(bomb).then(() => assert.unreachable('the bomb decoded'), (e: { code: string }) => assert.is(e.code, 'IMAGE_TOO_LARGE'));
  // A real image under the limit is still accepted as a pinned reference.
  const ok = await pinned(readFileSync(twemojiInputs(['frog face'])[0]!.path));
  assert.is(ok.status, 200, await ok.clone().text());
  assert.is(store.stats().active, 30, 'nothing was added');
});

test.run();
