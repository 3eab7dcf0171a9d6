/**
 * How long a client may take and how many connections it may hold: a slow or
 * silent client (headers, then a byte every few seconds, or nothing) must not
 * hold a connection forever, and one address must not hold them all.
 *
 * Fastify leaves Node's request timeout off; these set it. Node answers a late
 * request with 408 and closes the socket; a connection over a cap is closed at
 * once, before any byte is read. Once a request has arrived the timeouts no
 * longer apply: a long generation or an event stream is bounded by admission
 * control and ends when its client goes.
 */
import { STATUS_CODES, type Server, type ServerOptions as HttpServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { rangeError } from '../errors.js';
import { httpStatusOf } from './errors.js';

export interface ConnectionLimits {
  /** The whole request (headers and body) must arrive within this, ms; else 408 and close. Default 60 s. */
  requestTimeoutMs: number;
  /** The headers must arrive within this, ms (a connection that sends nothing is closed after it). Default 15 s. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this, ms. Default 5 s. */
  keepAliveTimeoutMs: number;
  /** Connections open at once, all clients together; 0: no cap. Default 1024. */
  maxConnections: number;
  /**
   * Connections open at once from one address; 0: no cap. Default 64 (behind a
   * reverse proxy every client shares its address: raise it or set 0 there).
   */
  maxConnectionsPerAddress: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  requestTimeoutMs: 60_000,
  headersTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
  maxConnectionsPerAddress: 64,
};

/** Checks the values (all non-negative integers; a request timeout of 0 is refused: that is the hole). */
export function connectionLimits(given: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const c = { ...DEFAULT_CONNECTION_LIMITS, ...given };
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isSafeInteger(v) || v < 0) throw rangeError('OUT_OF_RANGE', `connections.${k} must be a non-negative integer, got ${String(v)}`);
  }
  for (const k of ['requestTimeoutMs', 'headersTimeoutMs', 'keepAliveTimeoutMs'] as const) {
    if (c[k] === 0) throw rangeError('OUT_OF_RANGE', `connections.${k} must be > 0 (a client could otherwise hold a connection forever)`);
  }
  if (c.headersTimeoutMs > c.requestTimeoutMs) throw rangeError('OUT_OF_RANGE', `connections.headersTimeoutMs (${c.headersTimeoutMs}) must be ≤ requestTimeoutMs (${c.requestTimeoutMs})`);
  return c;
}

/**
 * Options for fastify's construction: the timeouts Node enforces, and how
 * often it looks for late requests (Node's default, 30 s, would let a late
 * request live that much longer than its timeout).
 */
export function fastifyTimeoutOptions(c: ConnectionLimits): { requestTimeout: number; keepAliveTimeout: number; http: HttpServerOptions } {
  return {
    requestTimeout: c.requestTimeoutMs,
    keepAliveTimeout: c.keepAliveTimeoutMs,
    http: {
      requestTimeout: c.requestTimeoutMs,
      headersTimeout: c.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(c.headersTimeoutMs / 4))),
    },
  };
}

/**
 * Caps connections on the listening server: Node's own `maxConnections` for the
 * total, a count per remote address for the rest. `onRefused` is told each
 * connection closed unread (for metrics).
 */
export function capConnections(server: Server, c: ConnectionLimits, onRefused: (reason: 'connections' | 'connections-per-address') => void): void {
  if (c.maxConnections > 0) {
    server.maxConnections = c.maxConnections;
    server.on('drop', () => onRefused('connections'));
  }
  if (c.maxConnectionsPerAddress === 0) return;
  const open = new Map<string, number>();
  // prependListener: refused before Node's own handler starts parsing the socket.
  server.prependListener('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const n = (open.get(address) ?? 0) + 1;
    if (n > c.maxConnectionsPerAddress) {
      onRefused('connections-per-address');
      socket.destroy();
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

/**
 * Errors Node raises before a request reaches fastify (a late request, headers
 * too large, bytes that are not HTTP), answered in the service's one error
 * shape instead of fastify's, then the socket is closed. Logged at info: they
 * are the client's doing.
 */
export function clientErrorHandler(onTimeout: () => void) {
  // Fastify calls it bound to the instance.
  return function (this: { log: FastifyBaseLogger }, err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [code, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['REQUEST_TIMEOUT', 'the request did not arrive within the request timeout'] as const
      : err.code === 'HPE_HEADER_OVERFLOW' ? ['HEADERS_TOO_LARGE', 'the request headers are too large'] as const
      : ['INVALID_REQUEST', 'the request is not valid HTTP/1.1'] as const;
    if (code === 'REQUEST_TIMEOUT') onTimeout();
    this.log.info({ code, reason: err.code, remote: socket.remoteAddress }, 'client error before routing');
    const status = httpStatusOf(code);
    const body = JSON.stringify({ error: { code, message } });
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}
