/**
 * Fetching images from URLs a user supplied, without letting the URL reach
 * this machine, its network or a cloud metadata service.
 *
 * Every hop (the first URL and each redirect) is checked the same way:
 * scheme http(s), no credentials, host not a local name; the name is resolved
 * once, every address it resolves to must be a public unicast address (unless
 * the host is allowlisted), and the connection goes to that checked address —
 * never to a second lookup that could answer differently. Responses are capped
 * in bytes and time, must say image/* and must start with an image signature.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { lookup } from 'node:dns/promises';
import type { Duplex } from 'node:stream';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { classifyAddress, formatAddress, isLocalHostName, parseAddress, type AddressClass } from './address.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}
/** Maps a host name to its addresses (default: the system resolver, all answers). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface ConnectTarget {
  /** The checked address to connect to. */
  address: string;
  family: 4 | 6;
  port: number;
  /** The URL's host name (for TLS SNI and certificate checks). */
  hostname: string;
  tls: boolean;
}
/** Opens the connection for a request; the default dials `address` directly (TLS for https). */
export type Connector = (target: ConnectTarget) => Duplex;

export interface FetchImageOptions {
  /** Largest response body accepted, in bytes. Default 20 MiB. */
  maxBytes?: number;
  /** Deadline for the whole fetch, redirects included, in ms. Default 15 000. */
  timeoutMs?: number;
  /** Redirects followed at most (each re-checked). Default 3. */
  maxRedirects?: number;
  /**
   * Hosts exempt from the address checks, e.g. `['127.0.0.1:8080', 'images.intranet']`
   * (with or without a port). Anything else resolving to a loopback, private,
   * link-local, metadata or otherwise non-public address is refused.
   */
  allowHosts?: readonly string[];
  /** Accepted media types. Default: png, jpeg, webp, gif, avif, tiff. */
  allowedContentTypes?: readonly string[];
  /** Follow a redirect from https to http. Default false. */
  allowDowngrade?: boolean;
  resolve?: Resolver;
  connect?: Connector;
  signal?: AbortSignal;
  userAgent?: string;
  /** Require an image signature in the first bytes. Default true; false for JSON answers (src/sources). */
  sniffImage?: boolean;
}

export interface FetchedImage {
  bytes: Buffer;
  contentType: string;
  /** Format from the magic bytes: png, jpeg, gif, webp, avif, heif, tiff. */
  format: string;
  /** The URL the bytes came from (after redirects). */
  url: string;
  redirects: string[];
  /** The address that served them. */
  address: string;
}

export const DEFAULT_MAX_BYTES = 20 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_REDIRECTS = 3;
export const DEFAULT_CONTENT_TYPES: readonly string[] = [
  'image/png', 'image/jpeg', 'image/jpg', 'image/webp', 'image/gif', 'image/avif', 'image/heif', 'image/heic', 'image/tiff',
];

const defaultResolver: Resolver = async (hostname) => {
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

const defaultConnector: Connector = (t) =>
  t.tls
    ? tls.connect({
        host: t.address,
        port: t.port,
        // Certificates are checked against the URL's name; SNI must not be an IP literal.
        servername: net.isIP(t.hostname.replace(/^\[|\]$/g, '')) ? undefined : t.hostname,
        ALPNProtocols: ['http/1.1'],
      })
    : net.connect({ host: t.address, port: t.port, family: t.family });

/** Identifies an image from its first bytes; undefined when they are no known image signature. */
export function sniffImageFormat(head: Uint8Array): string | undefined {
  const at = (i: number, bytes: number[]) => bytes.every((b, j) => head[i + j] === b);
  const ascii = (i: number, s: string) => at(i, Array.from(s, (c) => c.charCodeAt(0)));
  if (at(0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (at(0, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'gif';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (at(0, [0x49, 0x49, 0x2a, 0x00]) || at(0, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  if (ascii(4, 'ftyp')) {
    const brand = String.fromCharCode(...head.subarray(8, 12));
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'mif1', 'msf1', 'heim', 'heis'].includes(brand)) return 'heif';
  }
  return undefined;
}

interface AllowEntry {
  hostname: string;
  port: string;
}

function parseAllowList(hosts: readonly string[] | undefined): AllowEntry[] {
  if (hosts === undefined) return [];
  if (!Array.isArray(hosts)) throw typeError('INVALID_TYPE', 'allowHosts must be an array of host names');
  return hosts.map((h, i) => {
    if (typeof h !== 'string' || h.length === 0) throw typeError('INVALID_TYPE', `allowHosts[${i}] must be a non-empty string`);
    let u: URL;
    try {
      u = new URL(`http://${h}`);
    } catch {
      throw rangeError('INVALID_VALUE', `allowHosts[${i}] is not a host name: ${JSON.stringify(h)}`);
    }
    if (u.pathname !== '/' || u.username || u.search) throw rangeError('INVALID_VALUE', `allowHosts[${i}] must be host or host:port, got ${JSON.stringify(h)}`);
    return { hostname: u.hostname, port: u.port };
  });
}

function defaultPort(u: URL): number {
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

function isAllowed(u: URL, list: AllowEntry[]): boolean {
  return list.some((e) => e.hostname === u.hostname && (e.port === '' || Number(e.port) === defaultPort(u)));
}

function refused(url: string, what: string, cls: AddressClass | 'local name'): RagdiffError {
  return new RagdiffError('URL_ADDRESS_REFUSED', `refusing ${url}: ${what} is a ${cls} address (allowlist the host to permit it)`);
}

/** Parses and checks one URL's form (no network). Throws a RagdiffError with a URL_* code. */
export function checkUrlForm(input: string, allow: readonly string[] = []): URL {
  if (typeof input !== 'string') throw typeError('INVALID_TYPE', `url must be a string, got ${typeof input}`);
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    throw new RagdiffError('URL_INVALID', `not a valid absolute URL: ${JSON.stringify(input.slice(0, 200))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new RagdiffError('URL_SCHEME', `only http and https URLs can be fetched, got ${u.protocol.replace(/:$/, '')}:`);
  }
  if (u.username || u.password) throw new RagdiffError('URL_CREDENTIALS', 'URLs with user names or passwords are not fetched');
  const list = parseAllowList(allow);
  if (!isAllowed(u, list)) {
    if (isLocalHostName(u.hostname)) throw refused(u.href, `host ${u.hostname}`, 'local name');
    const literal = parseAddress(u.hostname);
    if (literal) {
      const cls = classifyAddress(literal);
      if (cls !== 'global') throw refused(u.href, `host ${u.hostname}`, cls);
    }
  }
  return u;
}

class Deadline {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout;
  private onOuterAbort?: () => void;
  timedOut = false;
  constructor(ms: number, private outer?: AbortSignal) {
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, ms);
    if (outer) {
      if (outer.aborted) this.controller.abort();
      this.onOuterAbort = () => this.controller.abort();
      outer.addEventListener('abort', this.onOuterAbort, { once: true });
    }
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  error(url: string, ms: number): RagdiffError {
    return this.timedOut
      ? new RagdiffError('FETCH_TIMEOUT', `fetching ${url} took longer than ${ms} ms`)
      : new RagdiffError('ABORTED', `fetching ${url} was aborted`);
  }
  dispose(): void {
    clearTimeout(this.timer);
    if (this.outer && this.onOuterAbort) this.outer.removeEventListener('abort', this.onOuterAbort);
  }
}

/** Rejects when the signal fires, else settles with `p`. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const listener = () => reject(onAbort());
    signal.addEventListener('abort', listener, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', listener); resolve(v); },
      (e) => { signal.removeEventListener('abort', listener); reject(e); },
    );
  });
}

interface Hop {
  status: number;
  location?: string;
  body?: Buffer;
  contentType: string;
  format?: string;
}

/**
 * Fetches an image from an http(s) URL under the checks described above.
 * Errors are RagdiffErrors with codes URL_INVALID, URL_SCHEME, URL_CREDENTIALS,
 * URL_ADDRESS_REFUSED, DNS_FAILED, FETCH_FAILED, FETCH_STATUS, FETCH_REDIRECTS,
 * FETCH_TIMEOUT, FETCH_TOO_LARGE, FETCH_CONTENT_TYPE, FETCH_NOT_IMAGE, ABORTED.
 */
export async function fetchImage(url: string, options: FetchImageOptions = {}): Promise<FetchedImage> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  for (const [name, v, max] of [['maxBytes', maxBytes, 2 ** 31], ['timeoutMs', timeoutMs, 600_000], ['maxRedirects', maxRedirects, 20]] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < (name === 'maxRedirects' ? 0 : 1) || v > max) {
      throw rangeError('OUT_OF_RANGE', `${name} must be an integer in ${name === 'maxRedirects' ? 0 : 1}..${max}, got ${String(v)}`);
    }
  }
  const allowList = parseAllowList(options.allowHosts);
  const allowHosts = options.allowHosts ?? [];
  const types = (options.allowedContentTypes ?? DEFAULT_CONTENT_TYPES).map((t) => t.toLowerCase());
  const resolve = options.resolve ?? defaultResolver;
  const connect = options.connect ?? defaultConnector;
  const deadline = new Deadline(timeoutMs, options.signal);
  const redirects: string[] = [];
  try {
    let current = checkUrlForm(url, allowHosts);
    for (;;) {
      const address = await pickAddress(current, allowList, resolve, deadline, timeoutMs);
      const hop = await request(current, address, { connect, deadline, timeoutMs, maxBytes, types, userAgent: options.userAgent, sniff: options.sniffImage !== false });
      if (hop.location !== undefined) {
        if (redirects.length >= maxRedirects) {
          throw new RagdiffError('FETCH_REDIRECTS', `${url} redirected more than ${maxRedirects} times`);
        }
        let next: URL;
        try {
          next = new URL(hop.location, current);
        } catch {
          throw new RagdiffError('URL_INVALID', `${current.href} redirected to an invalid URL ${JSON.stringify(hop.location.slice(0, 200))}`);
        }
        const checked = checkUrlForm(next.href, allowHosts);
        if (current.protocol === 'https:' && checked.protocol === 'http:' && !options.allowDowngrade) {
          throw new RagdiffError('URL_SCHEME', `${current.href} redirected from https to http (${checked.href}); not followed`);
        }
        redirects.push(checked.href);
        current = checked;
        continue;
      }
      return {
        bytes: hop.body!,
        contentType: hop.contentType,
        format: hop.format ?? '',
        url: current.href,
        redirects,
        address: address.address,
      };
    }
  } finally {
    deadline.dispose();
  }
}

async function pickAddress(u: URL, allowList: AllowEntry[], resolve: Resolver, deadline: Deadline, timeoutMs: number): Promise<ResolvedAddress> {
  const literal = parseAddress(u.hostname);
  if (literal) return { address: formatAddress(literal), family: literal.family };
  let answers: ResolvedAddress[];
  try {
    answers = await raceAbort(Promise.resolve().then(() => resolve(u.hostname)), deadline.signal, () => deadline.error(u.href, timeoutMs));
  } catch (e) {
    if (e instanceof RagdiffError) throw e;
    throw new RagdiffError('DNS_FAILED', `cannot resolve ${u.hostname}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  if (!Array.isArray(answers) || answers.length === 0) throw new RagdiffError('DNS_FAILED', `${u.hostname} resolved to no addresses`);
  const parsed = answers.map((a) => {
    const p = typeof a?.address === 'string' ? parseAddress(a.address) : undefined;
    if (!p) throw new RagdiffError('DNS_FAILED', `${u.hostname} resolved to an unparseable address ${JSON.stringify(a?.address)}`);
    return p;
  });
  if (!isAllowed(u, allowList)) {
    // Every answer must be public: a name that also resolves somewhere private is refused outright.
    for (const p of parsed) {
      const cls = classifyAddress(p);
      if (cls !== 'global') throw refused(u.href, `${u.hostname} resolves to ${formatAddress(p)}, which`, cls);
    }
  }
  const first = parsed[0]!;
  return { address: formatAddress(first), family: first.family };
}

interface RequestContext {
  connect: Connector;
  deadline: Deadline;
  timeoutMs: number;
  maxBytes: number;
  types: string[];
  userAgent?: string;
  sniff: boolean;
}

function request(u: URL, address: ResolvedAddress, ctx: RequestContext): Promise<Hop> {
  const isTls = u.protocol === 'https:';
  const mod = isTls ? https : http;
  const port = defaultPort(u);
  return new Promise<Hop>((resolvePromise, rejectPromise) => {
    let settled = false;
    let req: http.ClientRequest | undefined;
    const finish = (err: Error | undefined, hop?: Hop) => {
      if (settled) return;
      settled = true;
      ctx.deadline.signal.removeEventListener('abort', onAbort);
      if (err) {
        req?.destroy();
        rejectPromise(err);
      } else resolvePromise(hop!);
    };
    const onAbort = () => finish(ctx.deadline.error(u.href, ctx.timeoutMs));
    if (ctx.deadline.signal.aborted) return onAbort();
    ctx.deadline.signal.addEventListener('abort', onAbort, { once: true });
    try {
      req = mod.request({
        method: 'GET',
        host: address.address,
        port,
        path: `${u.pathname}${u.search}`,
        headers: {
          host: u.host,
          'user-agent': ctx.userAgent ?? 'ragdiff',
          accept: ctx.types.join(', '),
          'accept-encoding': 'identity',
        },
        createConnection: () => ctx.connect({ address: address.address, family: address.family, port, hostname: u.hostname, tls: isTls }) as net.Socket,
      });
    } catch (e) {
      return finish(new RagdiffError('FETCH_FAILED', `cannot request ${u.href}: ${(e as Error).message}`, { cause: e }));
    }
    req.on('error', (e) => finish(new RagdiffError('FETCH_FAILED', `request to ${u.href} failed: ${e.message}`, { cause: e })));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status)) {
        res.resume();
        const location = res.headers.location;
        if (!location) return finish(new RagdiffError('FETCH_STATUS', `${u.href} answered ${status} without a Location header`));
        return finish(undefined, { status, location, contentType: '' });
      }
      if (status < 200 || status > 299) {
        res.resume();
        // The status and Retry-After travel with the error (a search API's 429 is honoured by src/sources).
        return finish(Object.assign(new RagdiffError('FETCH_STATUS', `${u.href} answered HTTP ${status}`), { status, retryAfter: res.headers['retry-after'] }));
      }
      const contentType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (!ctx.types.includes(contentType)) {
        res.resume();
        return finish(new RagdiffError('FETCH_CONTENT_TYPE', `${u.href} has content type ${JSON.stringify(contentType || '(none)')}, not an accepted image type`));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > ctx.maxBytes) {
        return finish(new RagdiffError('FETCH_TOO_LARGE', `${u.href} is ${declared} bytes, over the limit of ${ctx.maxBytes}`));
      }
      const chunks: Buffer[] = [];
      let total = 0;
      let format: string | undefined;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        total += chunk.length;
        if (total > ctx.maxBytes) return finish(new RagdiffError('FETCH_TOO_LARGE', `${u.href} sent more than the limit of ${ctx.maxBytes} bytes`));
        chunks.push(chunk);
        if (ctx.sniff && format === undefined && total >= 16) {
          format = sniffImageFormat(Buffer.concat(chunks).subarray(0, 16));
          if (!format) finish(new RagdiffError('FETCH_NOT_IMAGE', `${u.href} does not start with an image signature (content type said ${contentType})`));
        }
      });
      res.on('error', (e) => finish(new RagdiffError('FETCH_FAILED', `reading ${u.href} failed: ${e.message}`, { cause: e })));
      res.on('aborted', () => finish(new RagdiffError('FETCH_FAILED', `${u.href} closed the connection early`)));
      res.on('end', () => {
        if (settled) return;
        const body = Buffer.concat(chunks);
        if (ctx.sniff) format ??= sniffImageFormat(body);
        if (ctx.sniff && !format) return finish(new RagdiffError('FETCH_NOT_IMAGE', `${u.href} does not start with an image signature (content type said ${contentType})`));
        if (res.complete === false) return finish(new RagdiffError('FETCH_FAILED', `${u.href} closed the connection early`));
        finish(undefined, { status, body, contentType, format });
      });
    });
    req.end();
  });
}
