/**
 * The one gate for reading a file a user named (an init image, a query image,
 * a reference image): only a regular file, only up to a size limit, and never
 * a read that can block or run without end.
 *
 *   stat (follows symlinks) → regular file? (a directory, FIFO, socket or
 *   device is refused by kind) → size ≤ maxBytes? → open O_RDONLY|O_NONBLOCK
 *   (a FIFO swapped in after the stat cannot block the open) → fstat the open
 *   descriptor and check kind and size again (the path may have been swapped
 *   between stat and open) → read at most maxBytes + 1 bytes (a file that grows
 *   past the limit while read is refused, never read to the end).
 *
 * Every failure is a RagdiffError naming the path: FILE_NOT_FOUND,
 * IS_DIRECTORY, FILE_NOT_REGULAR, FILE_TOO_LARGE or FILE_UNREADABLE.
 * Files inside the store and model bundles are the store's and the loader's
 * business; this is for paths that come from a user.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { open as openAsync, stat as statAsync } from 'node:fs/promises';
import { RagdiffError, typeError, rangeError } from '../errors.js';

export interface ReadUserFileOptions {
  /** Largest file accepted, in bytes (a positive integer). */
  maxBytes: number;
  /** What the file is for, used in messages ("init image", "query image"); default "file". */
  what?: string;
}

/** Default limit for user images, like the store's gate: 50 MiB. */
export const DEFAULT_MAX_USER_FILE_BYTES = 50 * 1024 * 1024;

// O_NONBLOCK does not exist on Windows (nor do FIFOs in the same sense): plain read-only there.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function checkArgs(path: unknown, options: ReadUserFileOptions): { what: string; maxBytes: number } {
  if (typeof path !== 'string') throw typeError('INVALID_TYPE', `path must be a string, got ${path === null ? 'null' : typeof path}`);
  if (path === '' || path.includes('\0')) throw rangeError('INVALID_VALUE', `path must be a non-empty string without NUL characters, got ${JSON.stringify(path.slice(0, 80))}`);
  if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object with maxBytes');
  const { maxBytes } = options;
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw rangeError('OUT_OF_RANGE', `maxBytes must be a positive integer, got ${String(maxBytes)}`);
  }
  return { what: options.what ?? 'file', maxBytes };
}

/**
 * A failed file operation in words, without Node's code and syscall
 * ("ELOOP: too many symbolic links encountered, stat '/x'" → "too many
 * symbolic links encountered"): users get ragdiff's code, never Node's.
 */
export function fsReason(e: unknown): string {
  const m = (e as Error)?.message ?? String(e);
  return m.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'( -> '.*')?$/, '');
}

/** Maps a failed stat/open/read to a typed error naming the path (FILE_NOT_FOUND, IS_DIRECTORY or FILE_UNREADABLE). */
export function fsError(e: unknown, what: string, path: string): RagdiffError {
  const code = (e as { code?: string })?.code;
  const why = fsReason(e);
  if (code === 'ENOENT' || code === 'ENOTDIR') return new RagdiffError('FILE_NOT_FOUND', `${what} ${path}: no such file (or a dangling symbolic link)`, { cause: e });
  if (code === 'EISDIR') return new RagdiffError('IS_DIRECTORY', `${what} ${path} is a directory, not a file`, { cause: e });
  if (code === 'ELOOP') return new RagdiffError('FILE_UNREADABLE', `${what} ${path}: too many levels of symbolic links`, { cause: e });
  return new RagdiffError('FILE_UNREADABLE', `${what} ${path} cannot be read: ${why}`, { cause: e });
}

/** The kind and size checks, for the stat of the path and again for the open descriptor. */
function checkStats(st: Stats, what: string, path: string, maxBytes: number): void {
  if (st.isDirectory()) throw new RagdiffError('IS_DIRECTORY', `${what} ${path} is a directory, not a file`);
  if (!st.isFile()) throw new RagdiffError('FILE_NOT_REGULAR', `${what} ${path} is ${kindOf(st)}, not a regular file; only regular files are read`);
  if (st.size > maxBytes) throw new RagdiffError('FILE_TOO_LARGE', `${what} ${path} is ${st.size} bytes, over the limit of ${maxBytes}`);
}

function tooLarge(what: string, path: string, maxBytes: number): RagdiffError {
  return new RagdiffError('FILE_TOO_LARGE', `${what} ${path} is over the limit of ${maxBytes} bytes (it grew while being read)`);
}

/**
 * The gate's checks without the read, for a path a library opens itself (a
 * policy, a knowledge base): exists, a regular file, at most maxBytes. Throws
 * the gate's errors; returns the stat. The library must still open without
 * blocking (a FIFO may be swapped in after the check).
 */
export function checkUserFileSync(path: string, options: ReadUserFileOptions): Stats {
  const { what, maxBytes } = checkArgs(path, options);
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    throw fsError(e, what, path);
  }
  checkStats(st, what, path, maxBytes);
  return st;
}

/**
 * Opens a user's file for reading without ever blocking (O_NONBLOCK: a FIFO
 * cannot hang the open) and checks the open descriptor is a regular file, for
 * code that reads it piecewise itself (a knowledge base). Returns the
 * descriptor; the caller closes it. Throws the gate's errors.
 */
export function openUserFileSync(path: string, what = 'file'): number {
  const { maxBytes } = checkArgs(path, { maxBytes: Number.MAX_SAFE_INTEGER, what });
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw fsError(e, what, path);
  }
  try {
    checkStats(fstatSync(fd), what, path, maxBytes);
  } catch (e) {
    closeSync(fd);
    throw e instanceof RagdiffError ? e : fsError(e, what, path);
  }
  return fd;
}

/**
 * Reads a user's file synchronously through the gate (see the file comment).
 * Returns the bytes; throws a RagdiffError with a FILE_* or IS_DIRECTORY code.
 */
export function readUserFileSync(path: string, options: ReadUserFileOptions): Buffer {
  const { what, maxBytes } = checkArgs(path, options);
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    throw fsError(e, what, path);
  }
  checkStats(st, what, path, maxBytes);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw fsError(e, what, path);
  }
  try {
    let fst: Stats;
    try {
      fst = fstatSync(fd);
    } catch (e) {
      throw fsError(e, what, path);
    }
    checkStats(fst, what, path, maxBytes);
    // Room for the size fstat reports plus one byte, so growth past the limit is seen, not read to the end.
    let buf = Buffer.allocUnsafe(Math.min(fst.size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > maxBytes) throw tooLarge(what, path, maxBytes);
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxBytes + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      let got: number;
      try {
        got = readSync(fd, buf, n, buf.length - n, null);
      } catch (e) {
        throw fsError(e, what, path);
      }
      if (got === 0) break;
      n += got;
    }
    if (n > maxBytes) throw tooLarge(what, path, maxBytes);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The same gate, asynchronously (for servers and the retrieval layer). */
export async function readUserFile(path: string, options: ReadUserFileOptions): Promise<Buffer> {
  const { what, maxBytes } = checkArgs(path, options);
  let st: Stats;
  try {
    st = await statAsync(path);
  } catch (e) {
    throw fsError(e, what, path);
  }
  checkStats(st, what, path, maxBytes);
  let handle: Awaited<ReturnType<typeof openAsync>>;
  try {
    handle = await openAsync(path, OPEN_FLAGS);
  } catch (e) {
    throw fsError(e, what, path);
  }
  try {
    let fst: Stats;
    try {
      fst = await handle.stat();
    } catch (e) {
      throw fsError(e, what, path);
    }
    checkStats(fst, what, path, maxBytes);
    let buf = Buffer.allocUnsafe(Math.min(fst.size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > maxBytes) throw tooLarge(what, path, maxBytes);
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxBytes + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      let got: number;
      try {
        ({ bytesRead: got } = await handle.read(buf, n, buf.length - n, null));
      } catch (e) {
        throw fsError(e, what, path);
      }
      if (got === 0) break;
      n += got;
    }
    if (n > maxBytes) throw tooLarge(what, path, maxBytes);
    return buf.subarray(0, n);
  } finally {
    await handle.close();
  }
}
