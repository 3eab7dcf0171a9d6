/**
 * Where queued generations leave their images (and the server leaves pinned
 * uploads): a directory both the server and the workers can read, e.g. a
 * shared volume. Images never travel through Redis, which would keep them in
 * job hashes and event streams; a job carries only keys.
 *
 * Content-addressed (`<sha256>.png`, two-level fan-out), written atomically
 * (temp file + rename), so concurrent writers of the same bytes agree and a
 * reader never sees half a file. Files older than `ttlMs` are swept.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RagdiffError, rangeError } from '../errors.js';

const KEY = /^[0-9a-f]{64}$/;

export class BlobDir {
  constructor(readonly dir: string, readonly ttlMs = 60 * 60_000) {}

  private pathOf(key: string): string {
    if (typeof key !== 'string' || !KEY.test(key)) throw rangeError('INVALID_VALUE', `blob key must be 64 hex digits, got ${JSON.stringify(String(key).slice(0, 80))}`);
    return join(this.dir, key.slice(0, 2), `${key}.png`);
  }

  /** Stores `bytes` and returns its key; rewriting existing bytes refreshes their expiry. */
  async put(bytes: Uint8Array): Promise<string> {
    const key = createHash('sha256').update(bytes).digest('hex');
    const path = this.pathOf(key);
    await mkdir(join(this.dir, key.slice(0, 2)), { recursive: true });
    const tmp = `${path}.${randomUUID()}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, path);
    const now = new Date();
    await utimes(path, now, now);
    return key;
  }

  /** The bytes under `key`; RESULT_EXPIRED when they were swept (or never written here). */
  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new RagdiffError('RESULT_EXPIRED', `blob ${key.slice(0, 12)}… is not in the blob directory (expired, removed, or the server and worker do not share it)`);
      throw e;
    }
  }

  /** Removes blobs older than the ttl; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    let removed = 0;
    let fans: string[];
    try {
      fans = await readdir(this.dir);
    } catch {
      return 0;
    }
    for (const fan of fans) {
      if (!/^[0-9a-f]{2}$/.test(fan)) continue;
      for (const name of await readdir(join(this.dir, fan)).catch(() => [] as string[])) {
        const p = join(this.dir, fan, name);
        const s = await stat(p).catch(() => undefined);
        if (s && now - s.mtimeMs > this.ttlMs) {
          await rm(p, { force: true });
          removed++;
        }
      }
    }
    return removed;
  }
}
