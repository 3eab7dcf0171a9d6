/**
 * Optional bearer API keys. Two sets: keys that may generate and read, and
 * keys that may also write (upload and opt-out references). With no keys
 * configured every request is allowed (the server binds to loopback by default).
 * Keys are compared as SHA-256 digests in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpError } from './errors.js';

export type Access = 'read' | 'write';

export interface ApiKeys {
  /** Keys that may generate and search. */
  keys?: readonly string[];
  /** Keys that may also upload and remove references (they may generate too). */
  writeKeys?: readonly string[];
}

const digest = (k: string) => createHash('sha256').update(k).digest();

function contains(set: readonly Buffer[], key: Buffer): boolean {
  let found = false;
  for (const k of set) if (timingSafeEqual(k, key)) found = true; // no early exit
  return found;
}

export class KeyCheck {
  private readonly read: Buffer[];
  private readonly write: Buffer[];

  constructor(keys: ApiKeys = {}) {
    for (const k of [...(keys.keys ?? []), ...(keys.writeKeys ?? [])]) {
      if (typeof k !== 'string' || k.length < 8 || /\s/.test(k)) throw new TypeError('API keys must be strings of at least 8 characters without spaces');
    }
    this.write = (keys.writeKeys ?? []).map(digest);
    this.read = [...(keys.keys ?? []).map(digest), ...this.write];
  }

  get enabled(): boolean {
    return this.read.length > 0;
  }

  /** Throws 401 (no or unknown key) or 403 (a read key on a write route). */
  check(authorization: string | undefined, need: Access): void {
    if (!this.enabled) return;
    const challenge = { 'www-authenticate': 'Bearer realm="ragdiff"' };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new HttpError('UNAUTHORIZED', 'this server needs an API key: send "Authorization: Bearer <key>"', challenge);
    const key = digest(m[1]!);
    if (!contains(this.read, key)) throw new HttpError('UNAUTHORIZED', 'the API key is not valid', challenge);
    if (need === 'write' && !contains(this.write, key)) throw new HttpError('FORBIDDEN', 'this API key may generate but not change references; use a write key');
  }
}
