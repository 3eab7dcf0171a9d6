/**
 * The official `openai` npm client pointed at a loopback ragdiff server
 * (issue 23.12): images.generate works (ragdiff's own fields ride along in the
 * body), models.list and models.retrieve see the served bundle, and the
 * client's typed errors come out right — an unknown model is its
 * NotFoundError with code, type and param; a missing key its
 * AuthenticationError; a bad field its BadRequestError.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError } from 'openai';
import { RagPipeline, readProvenance } from '../src/rag/index.js';
import { createServer, type RagServer } from '../src/server/index.js';
import { repoPath } from './helpers.js';

const KEY = 'sk-ragdiff-test-0123456789';
let rag: RagPipeline;
let server: RagServer;
let client: OpenAI;
let base: string;

test.before(async () => {
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 2 });
  server = await createServer({ rag, page: false, apiKeys: { keys: [KEY] } });
  base = `${await server.listen()}/v1`;
  client = new OpenAI({ apiKey: KEY, baseURL: base, maxRetries: 0, timeout: 60_000 });
});

test.after(async () => {
  await server?.close({ graceMs: 0 });
  await rag?.close();
});

test('images.generate: a PNG per image, with ragdiff\'s fields in the same body', async () => {
  const params = { model: rag.info.name, prompt: 'red apple', n: 2, size: '64x64', response_format: 'b64_json', steps: 3, seed: 11 } as const;
  const res = await client.images.generate(params as unknown as OpenAI.Images.ImageGenerateParamsNonStreaming);
  assert.ok(Number.isInteger(res.created));
  assert.is(res.data!.length, 2);
  const seeds = (res.data as unknown as { seed: number }[]).map((d) => d.seed);
  assert.equal(seeds, [11, 12]);
  for (const d of res.data!) {
    const png = Buffer.from(d.b64_json!, 'base64');
    assert.is(readProvenance(png).parameters.steps, 3, 'the extra field reached the generator');
  }
});

test('models.list and models.retrieve see the served bundle', async () => {
  const ids: string[] = [];
  for await (const m of client.models.list()) {
    assert.is(m.object, 'model');
    assert.is(m.owned_by, 'ragdiff');
    ids.push(m.id);
  }
  assert.equal(ids, [rag.info.name]);
  const m = await client.models.retrieve(rag.info.name);
  assert.is(m.id, rag.info.name);
});

test('an unknown model is the client\'s NotFoundError (model_not_found: code, type, param)', async () => {
  try {
    await client.images.generate({ model: 'dall-e-3', prompt: 'red apple', response_format: 'b64_json' });
    assert.unreachable('dall-e-3 was accepted');
  } catch (e) {
    assert.instance(e, NotFoundError);
    const err = e as NotFoundError;
    assert.is(err.status, 404);
    assert.is(err.code, 'MODEL_NOT_FOUND');
    assert.is(err.type, 'invalid_request_error');
    assert.is(err.param, 'model');
    assert.match(err.message, /dall-e-3/);
  }
  try {
    await client.models.retrieve('dall-e-3');
    assert.unreachable('dall-e-3 was listed');
  } catch (e) {
    assert.instance(e, NotFoundError);
  }
});

test('other errors map to the client\'s classes: no key → AuthenticationError, a bad field → BadRequestError', async () => {
  const keyless = new OpenAI({ apiKey: 'sk-wrong-key-000000000', baseURL: base, maxRetries: 0 });
  try {
    await keyless.models.list();
    assert.unreachable('a wrong key was accepted');
  } catch (e) {
    assert.instance(e, AuthenticationError);
  }
  try {
    await client.images.generate({ prompt: 'red apple', n: 99 });
    assert.unreachable('n = 99 was accepted');
  } catch (e) {
    assert.instance(e, BadRequestError);
    assert.match((e as BadRequestError).message, /n must be <= 4/);
  }
});

test.run();
