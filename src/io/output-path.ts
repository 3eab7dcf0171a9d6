/**
 * Output paths a user names (`generate -o`, `demo --out`): checked before any
 * work is spent, and directories created one level at a time.
 *
 * Node's `mkdirSync(p, { recursive: true })` can loop forever where mkdir gives
 * ENOENT for a parent that exists (e.g. `/proc/nope/x`); creating each missing
 * level ourselves, non-recursively, turns that into an error. Every failure is a
 * RagdiffError naming the path: IS_DIRECTORY, FILE_NOT_REGULAR or
 * OUTPUT_NOT_WRITABLE.
 */
import { fsReason } from './user-file.js';
import { accessSync, constants, lstatSync, mkdirSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { RagdiffError } from '../errors.js';

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as { code?: string }).code;
    // A file where a directory should be: the walk up finds it and names it.
    if (code === 'ENOTDIR') return null;
    if (code === 'ENOENT') {
      // A dangling symlink: stat says ENOENT but something is there; writing would follow it.
      try {
        lstatSync(p);
      } catch {
        return null;
      }
      throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${p} is a symbolic link to nothing`, { cause: e });
    }
    throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${p} cannot be used: ${fsReason(e)}`, { cause: e });
  }
}

/**
 * Makes sure `dir` is a directory we can write into, creating missing levels.
 * Returns the resolved path.
 */
export function ensureOutputDir(dir: string, what = 'output directory'): string {
  const abs = resolve(dir);
  // Walk up to the nearest existing ancestor, remembering the levels to create.
  const missing: string[] = [];
  let cur = abs;
  let st = statOrNull(cur);
  while (st === null) {
    missing.push(cur);
    const up = dirname(cur);
    if (up === cur) throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${what} ${abs}: no existing ancestor directory`);
    cur = up;
    st = statOrNull(cur);
  }
  if (!st.isDirectory()) {
    throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${what} ${abs}: ${cur} exists and is not a directory`);
  }
  try {
    accessSync(cur, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${what} ${abs}: ${cur} is not writable (${fsReason(e)})`, { cause: e });
  }
  for (const level of missing.reverse()) {
    try {
      mkdirSync(level);
    } catch (e) {
      const code = (e as { code?: string }).code;
      // Created meanwhile by someone else: fine if it is a directory.
      if (code === 'EEXIST' && statOrNull(level)?.isDirectory()) continue;
      throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${what} ${abs}: cannot create ${level} (${fsReason(e)})`, { cause: e });
    }
  }
  return abs;
}

/**
 * Checks an output file path before the work that fills it: not a directory,
 * not a FIFO or device (a write would block or vanish), parent directory
 * created and writable. Returns the resolved path.
 */
export function prepareOutputFile(file: string, what = 'output file'): string {
  const abs = resolve(file);
  const st = statOrNull(abs);
  if (st?.isDirectory()) throw new RagdiffError('IS_DIRECTORY', `${what} ${abs} is a directory; give a file name`);
  if (st && !st.isFile()) throw new RagdiffError('FILE_NOT_REGULAR', `${what} ${abs} exists and is not a regular file`);
  ensureOutputDir(dirname(abs), `${what} ${abs}: its directory`);
  return abs;
}

/** Writes a file checked by prepareOutputFile (checked again: the path may have changed meanwhile). */
export function writeOutputFile(file: string, bytes: Uint8Array | string, what = 'output file'): string {
  const abs = prepareOutputFile(file, what);
  try {
    writeFileSync(abs, bytes);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EISDIR') throw new RagdiffError('IS_DIRECTORY', `${what} ${abs} is a directory; give a file name`, { cause: e });
    throw new RagdiffError('OUTPUT_NOT_WRITABLE', `${what} ${abs} cannot be written (${fsReason(e)})`, { cause: e });
  }
  return abs;
}
