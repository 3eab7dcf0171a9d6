/**
 * Slow and greedy clients (issue 23.9), with raw loopback sockets and short
 * timeouts: headers then a byte now and then, headers and nothing, nothing at
 * all, an idle keep-alive connection — each is closed by the server; a slow
 * answer to a request that did arrive is not cut. Connections beyond the cap
 * per address, or in all, are closed unread, and a freed slot is usable again.
 *
 * Each wait below is a bound on a liveness check (the socket must close at
 * all), far above the configured timeouts; none asserts a speed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { RagPipeline } from '../src/rag/index.js';
import { createServer, DEFAULT_CONNECTION_LIMITS, type RagServer } from '../src/server/index.js';
import { repoPath } from './helpers.js';

const BOUND_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let rag: RagPipeline;
let timed: RagServer; // short timeouts
let capped: RagServer; // 3 per address
let total: RagServer; // 2 in all
const port = (s: RagServer) => (s.app.server.address() as { port: number }).port;

interface Conn {
  socket: Socket;
  /** Everything the server sent. */
  received: () => string;
  /** Resolves true when the server closed the connection, false if still open after `ms` (then it is destroyed). */
  closedWithin: (ms: number) => Promise<boolean>;
  closed: () => boolean;
}

async function open(server: RagServer): Promise<Conn> {
  const socket = connect({ host: '127.0.0.1', port: port(server) });
  let data = '';
  let isClosed = false;
  socket.on('data', (d) => (data += d.toString('latin1')));
  socket.on('error', () => {}); // a reset counts as closed
  const closed = new Promise<void>((r) => socket.once('close', () => ((isClosed = true), r())));
  await new Promise<void>((r, j) => {
    socket.once('connect', r);
    socket.once('error', j);
  });
  return {
    socket,
    received: () => data,
    closed: () => isClosed,
    closedWithin: async (ms) => {
      const ok = await Promise.race([closed.then(() => true), sleep(ms).then(() => false)]);
      if (!ok) socket.destroy();
      return ok;
    },
  };
}

/** The JSON error of a raw HTTP answer. */
const errorOf = (raw: string) => (JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } }).error;
const head = (contentLength: number) => `POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`;

test.before(async () => {
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 1 });
  timed = await createServer({ rag, page: false, connections: { requestTimeoutMs: 800, headersTimeoutMs: 400, keepAliveTimeoutMs: 300 } });
  // A route that answers after the request timeout: the timeout is for receiving, not for answering.
  timed.app.get('/test/slow-answer', async () => {
    await sleep(2000);
    return { ok: true };
  });
  await timed.listen();
  capped = await createServer({ rag, page: false, connections: { maxConnectionsPerAddress: 3 } });
  await capped.listen();
  total = await createServer({ rag, page: false, connections: { maxConnections: 2, maxConnectionsPerAddress: 0 } });
  await total.listen();
});

test.after(async () => {
  await timed?.close({ graceMs: 0 });
  await capped?.close({ graceMs: 0 });
  await total?.close({ graceMs: 0 });
  await rag?.close();
});

test('the defaults a service ships with: every timeout set, connections capped', () => {
  assert.ok(DEFAULT_CONNECTION_LIMITS.requestTimeoutMs > 0 && DEFAULT_CONNECTION_LIMITS.requestTimeoutMs <= 120_000);
  assert.ok(DEFAULT_CONNECTION_LIMITS.headersTimeoutMs > 0 && DEFAULT_CONNECTION_LIMITS.headersTimeoutMs <= DEFAULT_CONNECTION_LIMITS.requestTimeoutMs);
  assert.ok(DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs > 0);
  assert.ok(DEFAULT_CONNECTION_LIMITS.maxConnections > 0 && DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress > 0);
  const s = capped.app.server;
  assert.is(s.requestTimeout, DEFAULT_CONNECTION_LIMITS.requestTimeoutMs);
  assert.is(s.headersTimeout, DEFAULT_CONNECTION_LIMITS.headersTimeoutMs);
  assert.is(s.keepAliveTimeout, DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs);
});

test('a timeout of 0 (no timeout) or headers slower than the request is refused', async () => {
  for (const connections of [{ requestTimeoutMs: 0 }, { headersTimeoutMs: 0 }, { keepAliveTimeoutMs: 0 }, { headersTimeoutMs: 90_000, requestTimeoutMs: 60_000 }, { maxConnections: -1 }, { maxConnectionsPerAddress: 1.5 }]) {
    try {
      await createServer({ rag, page: false, connections });
      assert.unreachable(JSON.stringify(connections));
    } catch (e) {
      assert.instance(e, RangeError, JSON.stringify(connections));
      assert.is((e as { code?: string }).code, 'OUT_OF_RANGE');
    }
  }
});

test('headers and a Content-Length, then one byte now and then: answered 408 and closed', async () => {
  const c = await open(timed);
  c.socket.write(head(100));
  const drip = setInterval(() => c.closed() || c.socket.write('{'), 100);
  try {
    assert.ok(await c.closedWithin(BOUND_MS), 'the server closed the trickling connection');
  } finally {
    clearInterval(drip);
  }
  assert.match(c.received(), /^HTTP\/1\.1 408/);
  assert.equal(errorOf(c.received()).code, 'REQUEST_TIMEOUT', 'the service\'s one error shape');
  assert.match(await timed.metrics.registry.getSingleMetricAsString('ragdiff_rejected_total'), /reason="request-timeout"} [1-9]/);
});

test('headers and a Content-Length, then nothing: closed', async () => {
  const c = await open(timed);
  c.socket.write(head(100));
  assert.ok(await c.closedWithin(BOUND_MS), 'the server closed the silent connection');
  assert.match(c.received(), /^HTTP\/1\.1 408/);
  assert.is(errorOf(c.received()).code, 'REQUEST_TIMEOUT');
});

test('headers sent a line at a time (slowloris), or nothing at all: closed', async () => {
  const loris = await open(timed);
  loris.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const drip = setInterval(() => loris.closed() || loris.socket.write('X-a: b\r\n'), 100);
  try {
    assert.ok(await loris.closedWithin(BOUND_MS), 'the server closed the slow-headers connection');
  } finally {
    clearInterval(drip);
  }
  const silent = await open(timed);
  assert.ok(await silent.closedWithin(BOUND_MS), 'the server closed the connection that sent nothing');
});

test('errors before routing answer in the service\'s error shape: headers too large (431), not HTTP (400)', async () => {
  const big = await open(timed);
  big.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  assert.ok(await big.closedWithin(BOUND_MS));
  assert.match(big.received(), /^HTTP\/1\.1 431/);
  assert.is(errorOf(big.received()).code, 'HEADERS_TOO_LARGE');
  const junk = await open(timed);
  junk.socket.write('\x16\x03\x01 this is not HTTP\r\n\r\n');
  assert.ok(await junk.closedWithin(BOUND_MS));
  assert.match(junk.received(), /^HTTP\/1\.1 400/);
  assert.is(errorOf(junk.received()).code, 'INVALID_REQUEST');
});

test('an idle keep-alive connection is closed after its answer', async () => {
  const c = await open(timed);
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
  assert.ok(await c.closedWithin(BOUND_MS), 'the server closed the idle connection');
  assert.match(c.received(), /^HTTP\/1\.1 200/);
});

test('a request that arrived whole is answered even when the answer takes longer than the request timeout', async () => {
  const res = await fetch(`http://127.0.0.1:${port(timed)}/test/slow-answer`);
  assert.is(res.status, 200);
  assert.equal(await res.json(), { ok: true });
});

test('connections beyond the per-address cap are closed unread; a freed slot is usable again', async () => {
  const held = [await open(capped), await open(capped), await open(capped)];
  const extra = await open(capped);
  assert.ok(await extra.closedWithin(BOUND_MS), 'the fourth connection from one address is closed');
  assert.is(extra.received(), '', 'closed before any answer');
  assert.ok(held.every((c) => !c.closed()), 'the first three stay open');
  held[0]!.socket.destroy();
  // The server counts the close when it sees it: retry until a new connection is kept.
  let again: Conn | undefined;
  for (let i = 0; i < 50 && !again; i++) {
    const c = await open(capped);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await c.closedWithin(BOUND_MS);
    if (c.received().startsWith('HTTP/1.1 200')) again = c;
    else await sleep(20);
  }
  assert.ok(again, 'a connection in the freed slot is served');
  for (const c of held) c.socket.destroy();
  const cappedMetrics = await capped.metrics.registry.getSingleMetricAsString('ragdiff_rejected_total');
  assert.match(cappedMetrics, /reason="connections-per-address"} [1-9]/);
});

test('connections beyond the total cap are closed unread', async () => {
  const held = [await open(total), await open(total)];
  const extra = await open(total);
  assert.ok(await extra.closedWithin(BOUND_MS), 'the third connection is closed');
  assert.is(extra.received(), '');
  assert.ok(held.every((c) => !c.closed()), 'the first two stay open');
  for (const c of held) c.socket.destroy();
  assert.match(await total.metrics.registry.getSingleMetricAsString('ragdiff_rejected_total'), /reason="connections"} [1-9]/);
});

test.run();
