/**
 * fetchImage against a local HTTP server on 127.0.0.1 (allowlisted explicitly),
 * and refusal of private / link-local / metadata targets through an injected
 * resolver and a connect function that fails the test if it is ever called.
 * No packet leaves loopback.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import * as net from 'node:net';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fetchImage, type ConnectTarget, type FetchImageOptions, type Resolver } from '../src/net/fetch.js';
import { repoPath } from './helpers.js';

const png = readFileSync(repoPath('node_modules/emoji-datasource-twitter/img/twitter/64/1f34e.png'));
let server: http.Server;
let port = 0;
let base = '';
const open = new Set<net.Socket>();

test.before(async () => {
  server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    switch (u.pathname) {
      case '/apple.png':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
        return res.end(png);
      case '/apple-chunked.png':
        res.writeHead(200, { 'content-type': 'image/png; charset=binary' });
        res.write(png.subarray(0, 100));
        return setTimeout(() => res.end(png.subarray(100)), 10);
      case '/big-declared':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': 10_000_000 });
        return res.end(png); // lies; the client must stop at the header
      case '/big-streamed': {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(png);
        const junk = Buffer.alloc(64 * 1024, 1);
        let n = 0;
        const more = () => {
          if (n++ > 40 || res.destroyed) return res.end();
          res.write(junk, () => setImmediate(more));
        };
        return more();
      }
      case '/slow-body':
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(png.subarray(0, 20));
        return; // never ends
      case '/slow-headers':
        return; // never answers
      case '/text.png':
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html>hello</html>');
      case '/lying.png':
        res.writeHead(200, { 'content-type': 'image/png' });
        return res.end('<html>this is not a png at all</html>');
      case '/redirect':
        res.writeHead(Number(u.searchParams.get('status') ?? 302), { location: u.searchParams.get('to') ?? '/apple.png' });
        return res.end();
      case '/loop':
        res.writeHead(302, { location: '/loop' });
        return res.end();
      default:
        res.writeHead(404);
        return res.end();
    }
  });
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

test.after(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

/** Connects only to the test server; records any other attempt as a failure. */
function loopbackOnly(seen: ConnectTarget[]) {
  return (t: ConnectTarget) => {
    seen.push(t);
    if (t.address !== '127.0.0.1' || t.port !== port) throw new Error(`test connect called for ${t.address}:${t.port}`);
    return net.connect({ host: '127.0.0.1', port });
  };
}

/** A connect function that must never run. */
function neverConnect(calls: ConnectTarget[]) {
  return (t: ConnectTarget): net.Socket => {
    calls.push(t);
    throw new Error(`connect must not be called (asked for ${t.address}:${t.port})`);
  };
}

const fakeDns: Record<string, string[]> = {
  'private.test': ['10.0.0.5'],
  'private172.test': ['172.20.1.1'],
  'home.test': ['192.168.1.10'],
  'link.test': ['169.254.10.10'],
  'metadata.test': ['169.254.169.254'],
  'alibaba.test': ['100.100.100.200'],
  'loop.test': ['127.0.0.53'],
  'v6loop.test': ['::1'],
  'v6private.test': ['fd12:3456::1'],
  'v6link.test': ['fe80::1'],
  'mapped.test': ['::ffff:192.168.1.1'],
  'nat64.test': ['64:ff9b::a9fe:a9fe'],
  'mixed.test': ['93.184.216.34', '10.0.0.1'],
  'zero.test': ['0.0.0.0'],
  'public.test': ['93.184.216.34'],
};
function resolver(calls: string[] = []): Resolver {
  return async (host) => {
    calls.push(host);
    const a = fakeDns[host];
    if (!a) throw new Error(`ENOTFOUND ${host}`);
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return String((e as { code?: string }).code);
  }
}

const allowed = (seen: ConnectTarget[] = [], extra: FetchImageOptions = {}): FetchImageOptions => ({
  allowHosts: [`127.0.0.1:${port}`],
  connect: loopbackOnly(seen),
  resolve: resolver(),
  ...extra,
});

test('fetches a PNG from an allowlisted loopback server', async () => {
  const seen: ConnectTarget[] = [];
  const r = await fetchImage(`${base}/apple.png`, allowed(seen));
  assert.equal(Buffer.compare(r.bytes, png), 0);
  assert.is(r.format, 'png');
  assert.is(r.contentType, 'image/png');
  assert.is(r.address, '127.0.0.1');
  assert.is(seen.length, 1);
  const chunked = await fetchImage(`${base}/apple-chunked.png`, allowed());
  assert.equal(Buffer.compare(chunked.bytes, png), 0);
});

test('without an allowlist the same loopback server is refused before connecting', async () => {
  const calls: ConnectTarget[] = [];
  assert.is(await codeOf(fetchImage(`${base}/apple.png`, { connect: neverConnect(calls) })), 'URL_ADDRESS_REFUSED');
  // the allowlist is per host:port
  assert.is(await codeOf(fetchImage(`http://127.0.0.1:${port + 1}/apple.png`, { allowHosts: [`127.0.0.1:${port}`], connect: neverConnect(calls) })), 'URL_ADDRESS_REFUSED');
  assert.is(calls.length, 0);
});

test('refuses names that resolve to private, link-local, metadata or loopback addresses; connect is never called', async () => {
  const calls: ConnectTarget[] = [];
  const names: string[] = [];
  for (const host of Object.keys(fakeDns).filter((h) => h !== 'public.test')) {
    const code = await codeOf(fetchImage(`http://${host}/a.png`, { resolve: resolver(names), connect: neverConnect(calls) }));
    assert.is(code, 'URL_ADDRESS_REFUSED', host);
  }
  assert.is(calls.length, 0);
  assert.ok(names.includes('metadata.test'));
  assert.is(await codeOf(fetchImage('http://nowhere.test/a.png', { resolve: resolver(), connect: neverConnect(calls) })), 'DNS_FAILED');
  assert.is(calls.length, 0);
});

test('connects to the checked address, resolving once (no second lookup to rebind)', async () => {
  const seen: ConnectTarget[] = [];
  let lookups = 0;
  const rebinding: Resolver = async () => (lookups++ === 0 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
  const r = await fetchImage('http://public.test/apple.png', {
    resolve: rebinding,
    // The checked public address is what we are asked to dial; the test serves it from loopback.
    connect: (t) => {
      seen.push(t);
      assert.is(t.address, '93.184.216.34');
      assert.is(t.hostname, 'public.test');
      return net.connect({ host: '127.0.0.1', port });
    },
  });
  assert.is(lookups, 1);
  assert.is(r.address, '93.184.216.34');
  assert.is(seen.length, 1);
  assert.is(seen[0]!.port, 80);
});

test('schemes other than http(s) are refused', async () => {
  const calls: ConnectTarget[] = [];
  for (const u of ['file:///etc/passwd', 'ftp://example.com/a.png', 'data:image/png;base64,iVBORw0KGgo=']) {
    assert.is(await codeOf(fetchImage(u, { connect: neverConnect(calls), resolve: resolver() })), 'URL_SCHEME', u);
  }
  assert.is(calls.length, 0);
});

test('each redirect is re-checked: to private, metadata, loopback spellings and other schemes', async () => {
  const targets = [
    ['http://private.test/x.png', 'URL_ADDRESS_REFUSED'],
    ['http://metadata.test/latest/meta-data/', 'URL_ADDRESS_REFUSED'],
    ['http://169.254.169.254/latest/meta-data/', 'URL_ADDRESS_REFUSED'],
    [`http://localhost:${port}/apple.png`, 'URL_ADDRESS_REFUSED'],
    [`http://[::1]:${port}/apple.png`, 'URL_ADDRESS_REFUSED'],
    [`http://[::ffff:127.0.0.1]:${port}/apple.png`, 'URL_ADDRESS_REFUSED'],
    ['http://2130706433/apple.png', 'URL_ADDRESS_REFUSED'],
    ['http://0x7f.0.0.1/apple.png', 'URL_ADDRESS_REFUSED'],
    ['file:///etc/passwd', 'URL_SCHEME'],
    ['ftp://example.com/x', 'URL_SCHEME'],
  ] as const;
  for (const [to, expected] of targets) {
    const seen: ConnectTarget[] = [];
    const code = await codeOf(fetchImage(`${base}/redirect?to=${encodeURIComponent(to)}`, allowed(seen)));
    assert.is(code, expected, to);
    assert.is(seen.length, 1, `only the allowlisted server was contacted for ${to}`);
  }
  const seen: ConnectTarget[] = [];
  const ok = await fetchImage(`${base}/redirect?status=301&to=${encodeURIComponent('/redirect?to=/apple.png')}`, allowed(seen));
  assert.is(ok.redirects.length, 2);
  assert.is(ok.url, `${base}/apple.png`);
  assert.is(await codeOf(fetchImage(`${base}/loop`, allowed())), 'FETCH_REDIRECTS');
  assert.is(await codeOf(fetchImage(`${base}/loop`, allowed([], { maxRedirects: 0 }))), 'FETCH_REDIRECTS');
});

test('byte limit: declared and streamed bodies over the limit are cut off', async () => {
  assert.is(await codeOf(fetchImage(`${base}/big-declared`, allowed([], { maxBytes: 100_000 }))), 'FETCH_TOO_LARGE');
  assert.is(await codeOf(fetchImage(`${base}/big-streamed`, allowed([], { maxBytes: 100_000 }))), 'FETCH_TOO_LARGE');
  assert.is(await codeOf(fetchImage(`${base}/apple.png`, allowed([], { maxBytes: png.length - 1 }))), 'FETCH_TOO_LARGE');
});

test('time limit: a server that stalls headers or body times out', async () => {
  assert.is(await codeOf(fetchImage(`${base}/slow-headers`, allowed([], { timeoutMs: 200 }))), 'FETCH_TIMEOUT');
  assert.is(await codeOf(fetchImage(`${base}/slow-body`, allowed([], { timeoutMs: 200 }))), 'FETCH_TIMEOUT');
  const slowDns: Resolver = () => new Promise(() => {});
  assert.is(await codeOf(fetchImage('http://public.test/a.png', { resolve: slowDns, connect: neverConnect([]), timeoutMs: 100 })), 'FETCH_TIMEOUT');
  const ac = new AbortController();
  const p = fetchImage(`${base}/slow-headers`, allowed([], { signal: ac.signal }));
  ac.abort();
  assert.is(await codeOf(p), 'ABORTED');
});

test('content type and magic bytes are both checked', async () => {
  assert.is(await codeOf(fetchImage(`${base}/text.png`, allowed())), 'FETCH_CONTENT_TYPE');
  assert.is(await codeOf(fetchImage(`${base}/lying.png`, allowed())), 'FETCH_NOT_IMAGE');
  assert.is(await codeOf(fetchImage(`${base}/missing.png`, allowed())), 'FETCH_STATUS');
});

test('options are validated', async () => {
  assert.is(await codeOf(fetchImage(`${base}/apple.png`, { maxBytes: 0 })), 'OUT_OF_RANGE');
  assert.is(await codeOf(fetchImage(`${base}/apple.png`, { timeoutMs: -1 })), 'OUT_OF_RANGE');
  assert.is(await codeOf(fetchImage(`${base}/apple.png`, { allowHosts: 'x' as unknown as string[] })), 'INVALID_TYPE');
});

test.run();
