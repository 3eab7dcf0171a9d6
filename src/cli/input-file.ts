/**
 * The one place the CLI reads a file the user named (`--ref-image`,
 * `--init-image`, `explain <png>`). Kept apart so a shared file-input gate can
 * replace it; today it checks that the path is a regular file under a size
 * limit and turns file-system failures into typed errors.
 */
import { readFileSync, statSync } from 'node:fs';
import { RagdiffError, rangeError } from '../errors.js';

/** Larger than any image the API accepts (uploads: 20 MiB), so the API's own limits decide. */
export const MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024;

export function readInputFile(path: string, what: string, maxBytes = MAX_INPUT_FILE_BYTES): Buffer {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new RagdiffError('FILE_UNREADABLE', `${what} ${path} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof RagdiffError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new RagdiffError('FILE_NOT_FOUND', `${what} ${path}: no such file`, { cause: e });
    throw new RagdiffError('FILE_UNREADABLE', `${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (size > maxBytes) throw rangeError('FILE_TOO_LARGE', `${what} ${path} is ${size} bytes, over the ${maxBytes}-byte limit`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new RagdiffError('FILE_UNREADABLE', `${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}
