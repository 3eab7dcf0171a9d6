/**
 * Turns `add` inputs (paths, directories, Buffers, { path | bytes, meta })
 * into items to ingest, and reads users' files safely.
 *
 * Directory walking follows symlinks but never enters a directory twice:
 * each directory is identified by its real path, so loops (`sub/up -> ..`,
 * `self -> DIR`) end at once and a second link to a directory adds nothing
 * twice. Every entry that is not read gets a report entry (status 'skipped')
 * — a dangling symlink, a FIFO, device or socket, a loop, an unreadable
 * directory — except hidden files and files without an image extension,
 * which are not images by their name.
 *
 * A file is read only after checking what it is, and checked again on the
 * open descriptor (the path may be swapped in between): it must be a regular
 * file within the size limit. FIFOs and devices are never opened for reading
 * by the walk; a path given explicitly is opened with O_NONBLOCK so a FIFO
 * cannot hang the open, then refused by fstat.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { RagdiffError } from '../errors.js';
import { mergeMeta, normaliseMeta, type NormalisedMeta } from './meta.js';
import type { AddInput } from './types.js';

/** File extensions picked up when a directory is added. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.avif', '.heic', '.heif', '.tif', '.tiff'];

export interface Item {
  input: string;
  meta: NormalisedMeta;
  /** Absolute path when the bytes stay where they are (by reference). */
  refPath?: string;
  load: () => Promise<Uint8Array>;
  /** Error found while listing (e.g. missing file). */
  error?: RagdiffError;
  /** Found by walking a directory and not read: reported as 'skipped', not 'failed'. */
  skipped?: boolean;
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/**
 * Reads a user's file: a regular file of at most `maxBytes`, checked before
 * and after opening; never blocks on a FIFO and never reads past the size.
 */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RagdiffError('FILE_NOT_FOUND', `no such file: ${path}`, { cause: e });
    if (code === 'ENXIO') throw new RagdiffError('FILE_NOT_REGULAR', `${path} is a FIFO or socket with no writer, not a regular file`, { cause: e });
    throw new RagdiffError('FILE_UNREADABLE', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new RagdiffError('FILE_NOT_REGULAR', `${path} is ${kindOf(st)}, not a regular file`);
    if (st.size > maxBytes) throw new RagdiffError('IMAGE_TOO_LARGE', `${path} is ${st.size} bytes, over the limit of ${maxBytes}`);
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    try {
      while (off < st.size) {
        const n = readSync(fd, buf, off, st.size - off, off);
        if (n === 0) break;
        off += n;
      }
    } catch (e) {
      throw new RagdiffError('FILE_UNREADABLE', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
    // A file that shrank while being read is returned as read; one that grew is cut at the size checked.
    return off === st.size ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

export interface ListOptions {
  copy: boolean;
  recursive: boolean;
  maxBytes: number;
}

/** Lists the items of an `add` call in input order (directories sorted by name, depth first). */
export function listInputs(inputs: readonly AddInput[], base: NormalisedMeta, options: ListOptions): Item[] {
  const items: Item[] = [];
  /** Real paths of directories already listed in this call. */
  const listed = new Set<string>();
  const bad = (input: string, meta: NormalisedMeta, error: RagdiffError, skipped: boolean) =>
    items.push({ input, meta, load: async () => new Uint8Array(), error, skipped });

  const fileItem = (path: string, meta: NormalisedMeta): void => {
    const abs = resolve(path);
    items.push({
      input: path,
      meta,
      refPath: options.copy ? undefined : abs,
      load: async () => new Uint8Array(readRegularFile(abs, options.maxBytes)),
    });
  };

  /** Lists a directory whose real path is `real`; `ancestors` are the real paths on the way down. */
  const walkDir = (path: string, real: string, meta: NormalisedMeta, ancestors: Set<string>): void => {
    listed.add(real);
    let names: string[];
    try {
      names = readdirSync(path).sort();
    } catch (e) {
      bad(path, meta, new RagdiffError('FILE_UNREADABLE', `cannot list ${path}: ${(e as Error).message}`), true);
      return;
    }
    const down = new Set(ancestors).add(real);
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const child = join(path, n);
      let lst: Stats;
      try {
        lst = lstatSync(child);
      } catch (e) {
        bad(child, meta, new RagdiffError('FILE_UNREADABLE', `cannot stat ${child}: ${(e as Error).message}`), true);
        continue;
      }
      let st = lst;
      if (lst.isSymbolicLink()) {
        try {
          st = statSync(child);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ELOOP') bad(child, meta, new RagdiffError('SYMLINK_LOOP', `${child} is a symlink that resolves to itself`), true);
          else bad(child, meta, new RagdiffError('FILE_NOT_FOUND', `${child} is a dangling symlink (its target does not exist)`), true);
          continue;
        }
      }
      if (st.isDirectory()) {
        if (!options.recursive) continue;
        let childReal: string;
        try {
          childReal = realpathSync(child);
        } catch (e) {
          bad(child, meta, new RagdiffError('FILE_UNREADABLE', `cannot resolve ${child}: ${(e as Error).message}`), true);
          continue;
        }
        if (down.has(childReal)) {
          bad(child, meta, new RagdiffError('SYMLINK_LOOP', `${child} leads back to ${childReal}, a directory it is inside (a symlink loop): not followed`), true);
        } else if (listed.has(childReal)) {
          bad(child, meta, new RagdiffError('PATH_REPEATED', `${child} is ${childReal}, already listed in this call: not listed twice`), true);
        } else {
          walkDir(child, childReal, meta, down);
        }
        continue;
      }
      if (!st.isFile()) {
        // FIFOs, devices and sockets are reported whatever their name, and never opened.
        bad(child, meta, new RagdiffError('FILE_NOT_REGULAR', `${child} is ${kindOf(st)}, not a regular file: not read`), true);
        continue;
      }
      if (IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())) fileItem(child, meta);
    }
  };

  const pathInput = (path: string, meta: NormalisedMeta): void => {
    const abs = resolve(path);
    let st: Stats;
    try {
      st = statSync(abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') bad(path, meta, new RagdiffError('SYMLINK_LOOP', `${path} is a symlink loop`), false);
      else if (code === 'ENOENT' || code === 'ENOTDIR') bad(path, meta, new RagdiffError('FILE_NOT_FOUND', `no such file or directory: ${path}`), false);
      else bad(path, meta, new RagdiffError('FILE_UNREADABLE', `cannot stat ${path}: ${(e as Error).message}`), false);
      return;
    }
    if (st.isDirectory()) {
      let real: string;
      try {
        real = realpathSync(abs);
      } catch (e) {
        bad(path, meta, new RagdiffError('FILE_UNREADABLE', `cannot resolve ${path}: ${(e as Error).message}`), false);
        return;
      }
      if (listed.has(real)) bad(path, meta, new RagdiffError('PATH_REPEATED', `${path} is ${real}, already listed in this call: not listed twice`), true);
      else walkDir(path, real, meta, new Set());
      return;
    }
    if (!st.isFile()) {
      bad(path, meta, new RagdiffError('FILE_NOT_REGULAR', `${path} is ${kindOf(st)}, not a regular file`), false);
      return;
    }
    fileItem(path, meta);
  };

  inputs.forEach((input, i) => {
    if (typeof input === 'string') pathInput(input, base);
    else if (input instanceof Uint8Array) items.push({ input: `buffer[${i}]`, meta: base, load: async () => input });
    else if (input && typeof input === 'object' && 'bytes' in input) {
      const meta = mergeMeta(base, normaliseMeta(input.meta, `inputs[${i}].meta`));
      items.push({ input: typeof input.origin === 'string' ? input.origin : `buffer[${i}]`, meta, load: async () => input.bytes });
    } else if (input && typeof input === 'object' && 'path' in input) {
      pathInput(input.path, mergeMeta(base, normaliseMeta(input.meta, `inputs[${i}].meta`)));
    }
  });
  return items;
}
