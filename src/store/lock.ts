/**
 * One process at a time writes a store: a LOCK file holding the owner's pid,
 * created exclusively. A lock whose process is gone (killed mid-ingest) is
 * taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { RagdiffError } from '../errors.js';

const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireLock(path: string): () => void {
  if (held.has(path)) throw new RagdiffError('STORE_LOCKED', `the store is already open in this process (${path}); close it first`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      held.add(path);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(path);
        rmSync(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // vanished between open and read: retry
      }
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new RagdiffError('STORE_LOCKED', `the store is in use by process ${pid} (${path})`);
      }
      rmSync(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new RagdiffError('STORE_LOCKED', `cannot take the store lock ${path}`);
}
