/**
 * addUrl: images from a local HTTP server on 127.0.0.1 (explicitly
 * allowlisted) go through the same checks as files; refused URLs are per-item
 * errors and leave the store unchanged. Private, link-local and metadata
 * targets are refused through an injected resolver, with a connect function
 * that fails the test if called. No packet leaves loopback.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ImageStore, type ConnectTarget } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { makePng, pngClaiming } from './fixtures/store/images.js';
import { tempDir } from './helpers.js';

const t = tempDir('ragdiff-url-');
let server: http.Server;
let port = 0;
let base = '';
let store: ImageStore;
const badConnects: ConnectTarget[] = [];
const sockets = new Set<net.Socket>();
let red: Buffer;
let blue: Buffer;

test.before(async () => {
  red = await makePng([220, 30, 30], 1);
  blue = await makePng([30, 40, 220], 2);
  server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const send = (b: Buffer, type = 'image/png') => {
      res.writeHead(200, { 'content-type': type, 'content-length': b.length });
      res.end(b);
    };
    if (u.pathname === '/red.png') return send(red);
    if (u.pathname === '/blue.png') return send(blue);
    if (u.pathname === '/bomb.png') return send(pngClaiming(100_000, 100_000));
    if (u.pathname === '/page.png') return send(Buffer.from('<html></html>'), 'text/html');
    if (u.pathname === '/huge.png') return send(Buffer.concat([red, Buffer.alloc(300_000)]));
    if (u.pathname === '/stall.png') return; // never answers
    if (u.pathname === '/to') {
      res.writeHead(302, { location: u.searchParams.get('u')! });
      return res.end();
    }
    res.writeHead(404);
    res.end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  store = await ImageStore.open(t.dir, {
    encoder: fakeEncoder(),
    fetch: {
      allowHosts: [`127.0.0.1:${port}`],
      maxBytes: 200_000,
      timeoutMs: 500,
      resolve: async (host) => {
        const table: Record<string, string> = { 'intranet.test': '10.1.2.3', 'meta.test': '169.254.169.254', 'link.test': '169.254.7.7', 'v6.test': 'fd00::5' };
        if (!table[host]) throw new Error(`ENOTFOUND ${host}`);
        return [{ address: table[host]!, family: table[host]!.includes(':') ? 6 : 4 }];
      },
      connect: (target) => {
        if (target.address !== '127.0.0.1' || target.port !== port) {
          badConnects.push(target);
          throw new Error(`connect called for ${target.address}`);
        }
        return net.connect({ host: '127.0.0.1', port });
      },
    },
  });
});

test.after(async () => {
  await store.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  t.cleanup();
});

test('images from an allowlisted local server are ingested with their URL as origin', async () => {
  const r = await store.addUrl([`${base}/red.png`, `${base}/to?u=${encodeURIComponent('/blue.png')}`], { source: 'web', licence: 'CC0-1.0' });
  assert.is(r.added, 2, JSON.stringify(r.items));
  assert.is(store.get(r.items[0]!.id!)!.origin, `${base}/red.png`);
  assert.match(store.get(r.items[1]!.id!)!.origin, /-> .*\/blue\.png$/);
  assert.is((await store.query({ text: 'blue', k: 1, sources: ['web'] }))[0]!.id, r.items[1]!.id);
  const again = await store.addUrl(`${base}/red.png`);
  assert.is(again.items[0]!.status, 'duplicate');
});

test('refused URLs fail per item with their codes; the store is unchanged; connect never reaches a refused address', async () => {
  const before = JSON.stringify(store.stats());
  const cases: [string, string][] = [
    ['file:///etc/passwd', 'URL_SCHEME'],
    ['ftp://example.com/a.png', 'URL_SCHEME'],
    ['data:image/png;base64,iVBORw0KGgo=', 'URL_SCHEME'],
    [`http://localhost:${port}/red.png`, 'URL_ADDRESS_REFUSED'],
    [`http://[::1]:${port}/red.png`, 'URL_ADDRESS_REFUSED'],
    ['http://2130706433/red.png', 'URL_ADDRESS_REFUSED'],
    ['http://0x7f.0.0.1/red.png', 'URL_ADDRESS_REFUSED'],
    ['http://[::ffff:127.0.0.1]/red.png', 'URL_ADDRESS_REFUSED'],
    ['http://intranet.test/a.png', 'URL_ADDRESS_REFUSED'],
    ['http://meta.test/latest/meta-data/', 'URL_ADDRESS_REFUSED'],
    ['http://link.test/a.png', 'URL_ADDRESS_REFUSED'],
    ['http://v6.test/a.png', 'URL_ADDRESS_REFUSED'],
    [`${base}/to?u=${encodeURIComponent('http://intranet.test/a.png')}`, 'URL_ADDRESS_REFUSED'],
    [`${base}/to?u=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`, 'URL_ADDRESS_REFUSED'],
    [`${base}/to?u=${encodeURIComponent(`http://localhost:${port}/red.png`)}`, 'URL_ADDRESS_REFUSED'],
    [`${base}/to?u=${encodeURIComponent('file:///etc/passwd')}`, 'URL_SCHEME'],
    [`${base}/huge.png`, 'FETCH_TOO_LARGE'],
    [`${base}/stall.png`, 'FETCH_TIMEOUT'],
    [`${base}/page.png`, 'FETCH_CONTENT_TYPE'],
    [`${base}/bomb.png`, 'IMAGE_TOO_LARGE'],
    [`${base}/missing.png`, 'FETCH_STATUS'],
  ];
  const r = await store.addUrl(cases.map((c) => c[0]));
  assert.is(r.failed, cases.length);
  r.items.forEach((item, i) => assert.is(item.error?.code, cases[i]![1], cases[i]![0]));
  assert.is(JSON.stringify(store.stats()), before);
  assert.equal(badConnects, []);
  assert.is((await store.query({ text: 'red', k: 1 })).length, 1);
});

test('per-call options override the store defaults; bad arguments throw', async () => {
  const r = await store.addUrl(`${base}/red.png`, undefined, { allowHosts: [] });
  assert.is(r.items[0]!.error?.code, 'URL_ADDRESS_REFUSED');
  let code = '';
  await store.addUrl(42 as never).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'INVALID_TYPE');
});

test.run();
