/**
 * One writer per store, across processes, with the kernel as the arbiter.
 *
 * The writer keeps a dedicated SQLite database, `writer.lock`, open for its
 * whole lifetime inside `BEGIN EXCLUSIVE`. SQLite takes that lock with POSIX
 * advisory locks (fcntl) on the file; the kernel releases them when the
 * process exits for any reason, kill -9 included. So:
 * - there is no pid to read, no stale lock to guess about and no pid reuse
 *   to be fooled by: a lock is held exactly while its holder lives;
 * - taking it is one atomic request to the kernel: two processes racing can
 *   never both win;
 * - SQLite also arbitrates between connections of one process (it tracks
 *   locks per inode), so a second open in the same process is refused too;
 * - release is a ROLLBACK + close on the connection this process opened:
 *   `release()` can only ever drop what it holds, and the file itself is
 *   never deleted (deleting it would let a newcomer lock a fresh inode while
 *   the holder still locks the old one).
 * The store's own database stays in WAL mode for its readers; the lock file
 * is a separate rollback-journal database that never holds a row.
 *
 * Why a short busy timeout and not none: SQLite reaches EXCLUSIVE through
 * SHARED → RESERVED → PENDING. Two processes starting at the same instant
 * can both hold SHARED; with no waiting both would then fail (no writer at
 * all). With a busy handler SQLite resolves it: the one holding PENDING
 * waits, the other gets SQLITE_BUSY at once (SQLite's deadlock rule) and
 * drops its SHARED lock, so exactly one wins. The cost: opening a store that
 * a live writer holds reports STORE_LOCKED after LOCK_WAIT_MS.
 */
import Database from 'better-sqlite3';
import { RagdiffError } from '../errors.js';

export const WRITER_LOCK_FILE = 'writer.lock';
const LOCK_WAIT_MS = 100;

export interface WriterLock {
  release(): void;
}

/** Takes the writer lock at `path` or throws STORE_LOCKED (after at most LOCK_WAIT_MS). */
export function acquireWriterLock(path: string): WriterLock {
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: LOCK_WAIT_MS });
  } catch (e) {
    throw new RagdiffError('STORE_LOCK_FAILED', `cannot open the store's lock file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    const code = (e as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      throw new RagdiffError('STORE_LOCKED', `the store is open for writing by another process or handle (${path}); open it with readOnly: true to read meanwhile`);
    }
    throw new RagdiffError('STORE_LOCK_FAILED', `cannot take the store's writer lock ${path}: ${(e as Error).message}`, { cause: e });
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        db.exec('ROLLBACK');
      } finally {
        db.close();
      }
    },
  };
}

/** True when no process holds the writer lock at `path` right now (it is taken and released to find out). */
export function writerLockFree(path: string): boolean {
  try {
    acquireWriterLock(path).release();
    return true;
  } catch {
    return false;
  }
}
