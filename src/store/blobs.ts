/**
 * Content-addressed image bytes: `blobs/ab/<sha256>`. Writes go to a temporary
 * file and are renamed into place, so a killed process leaves either no file
 * or the whole file, never a partial one under its final name.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class BlobStore {
  private readonly tmp: string;
  /** Fan-out directories known to exist (one mkdir each, not one per write). */
  private readonly dirs = new Set<string>();
  /** `writable` false (readers): nothing is created; only `pathOf` and `read` are used. */
  constructor(readonly root: string, writable = true) {
    this.tmp = join(root, 'tmp');
    if (writable) mkdirSync(this.tmp, { recursive: true });
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  /** Stores bytes under their hash; returns the path. A file already there is kept. */
  put(sha256: string, bytes: Uint8Array): string {
    const dest = this.pathOf(sha256);
    const prefix = sha256.slice(0, 2);
    if (this.dirs.has(prefix)) {
      if (existsSync(dest) && statSync(dest).size === bytes.byteLength) return dest;
    } else {
      mkdirSync(join(this.root, prefix), { recursive: true });
      this.dirs.add(prefix);
    }
    const tmp = join(this.tmp, `${sha256}.${randomBytes(6).toString('hex')}`);
    writeFileSync(tmp, bytes);
    renameSync(tmp, dest);
    return dest;
  }

  read(sha256: string): Buffer {
    return readFileSync(this.pathOf(sha256));
  }

  delete(sha256: string): void {
    rmSync(this.pathOf(sha256), { force: true });
  }

  /**
   * Deletes files no row keeps (left by a process killed between writing the
   * bytes and committing the row) and stray temporary files. Returns how many.
   * Only the writer calls this, holding the writer lock, before it writes
   * anything itself: no other process can be between writing bytes and
   * committing their row, so every file without a row is an orphan.
   */
  sweep(keep: (sha256: string) => boolean): number {
    let removed = 0;
    for (const f of readdirSync(this.tmp)) {
      rmSync(join(this.tmp, f), { force: true });
      removed++;
    }
    for (const d of readdirSync(this.root)) {
      if (d === 'tmp' || !/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of readdirSync(join(this.root, d))) {
        if (!keep(f)) {
          rmSync(join(this.root, d, f), { force: true });
          removed++;
        }
      }
    }
    return removed;
  }
}
