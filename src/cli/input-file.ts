/**
 * The one place the CLI reads a file the user named (`--ref-image`,
 * `--init-image`, `explain <png>`): through the shared file-input gate
 * (regular file, size cap, non-blocking open, never more than the cap read).
 */
import { DEFAULT_MAX_USER_FILE_BYTES, readUserFileSync } from '../io/user-file.js';

export function readInputFile(path: string, what: string, maxBytes = DEFAULT_MAX_USER_FILE_BYTES): Buffer {
  return readUserFileSync(path, { maxBytes, what });
}
