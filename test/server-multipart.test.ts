/**
 * Malformed multipart uploads (issue 23.10): a body that does not parse — no
 * boundary, garbage, a part cut mid-file, an empty body — is the client's
 * fault: 400 INVALID_MULTIPART naming what went wrong, logged at info without a
 * stack, never a 500. A well-formed upload still works beside them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { readFileSync } from 'node:fs';
import { loadClipEncoders, ImageStore, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { createServer, type RagServer } from '../src/server/index.js';
import { twemojiInputs, UPLOAD_NAME } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-multipart-');
let enc: ClipEncoders;
let store: ImageStore;
let rag: RagPipeline;
let server: RagServer;
let base: string;
const logLines: { level: number; msg: string; err?: unknown; code?: string }[] = [];

const BOUNDARY = 'ragdiffBoundary42';
const partHead = (name: string, filename?: string) =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\n${filename ? 'Content-Type: image/png\r\n' : ''}\r\n`;

async function upload(contentType: string, body: Buffer | string): Promise<Response> {
  return fetch(`${base}/v1/references`, { method: 'POST', headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : new Uint8Array(body) });
}

async function expectMalformed(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert.is(res.status, 400, `${what}: 400 expected, got ${res.status}: ${text}`);
  assert.not.match(text, /\n\s+at /, `${what}: no stack trace`);
  assert.is((JSON.parse(text) as { error: { code: string } }).error.code, 'INVALID_MULTIPART', `${what}: ${text}`);
}

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await ImageStore.open(`${t.dir}/store`, { encoder: enc });
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 1 });
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  server = await createServer({ rag, store, page: false, logger: { level: 'info', stream } });
  base = await server.listen();
});

test.after(async () => {
  await server?.close({ graceMs: 0 });
  await rag?.close();
  await store?.close();
  await enc?.close();
  t.cleanup();
});

test('malformed multipart bodies are 400 INVALID_MULTIPART, logged at info without a stack, nothing stored', async () => {
  const png = readFileSync(twemojiInputs([UPLOAD_NAME])[0]!.path);
  const mp = `multipart/form-data; boundary=${BOUNDARY}`;
  await expectMalformed(await upload(mp, 'garbage, not multipart at all'), 'garbage body');
  await expectMalformed(await upload('multipart/form-data', `${partHead('file', 'a.png')}abc\r\n--${BOUNDARY}--\r\n`), 'no boundary');
  await expectMalformed(await upload('multipart/form-data; boundary=', 'x'), 'empty boundary');
  // An empty body parses (no parts): the route's own "no file" answer.
  const empty = await upload(mp, '');
  assert.is(empty.status, 400);
  assert.match(await empty.text(), /"INVALID_REQUEST".*no file/);
  // A real PNG, cut mid-file: no closing boundary.
  await expectMalformed(await upload(mp, Buffer.concat([Buffer.from(partHead('file', 'frog.png')), png.subarray(0, Math.floor(png.length / 2))])), 'part cut mid-file');
  await expectMalformed(await upload(mp, `${partHead('name')}frog`), 'field cut short');
  assert.is(store.size, 0, 'nothing was stored');

  const levels = logLines.filter((l) => l.code === 'INVALID_MULTIPART').map((l) => l.level);
  assert.is(levels.length, 5, 'each malformed body is logged once');
  assert.ok(levels.every((l) => l === 30 || l === 40), `logged at info/warn, got ${levels.join(',')}`);
  assert.is(logLines.filter((l) => l.level >= 50).length, 0, `no error-level lines: ${JSON.stringify(logLines.filter((l) => l.level >= 50))}`);
  assert.not.match(JSON.stringify(logLines), /Dicer\.js|busboy\/lib/, 'no parser stack in the log');
});

test('a well-formed upload beside them is added', async () => {
  const png = readFileSync(twemojiInputs([UPLOAD_NAME])[0]!.path);
  const body = Buffer.concat([Buffer.from(partHead('name')), Buffer.from('frog\r\n'), Buffer.from(partHead('file', 'frog.png')), png, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
  const res = await upload(`multipart/form-data; boundary=${BOUNDARY}`, body);
  assert.is(res.status, 201, await res.clone().text());
  assert.is(((await res.json()) as { reference: { name: string } }).reference.name, 'frog');
  assert.is(store.size, 1);
});

test.run();
