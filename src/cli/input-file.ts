/**
 * The one place the CLI reads a file the user named (`--ref-image`,
 * `--init-image`, `explain <png>`, `kb build --prompts`): through the shared file-input gate
 * (regular file, size cap, non-blocking open, never more than the cap read).
 */
import { checkUserFileSync, DEFAULT_MAX_USER_FILE_BYTES, readUserFileSync } from '../io/user-file.js';

export function readInputFile(path: string, what: string, maxBytes = DEFAULT_MAX_USER_FILE_BYTES): Buffer {
  return readUserFileSync(path, { maxBytes, what });
}

/**
 * For a file a library opens itself (--policy, --kb, --encoder): the gate's
 * checks now, so a missing file, a directory or a FIFO fails at once with its
 * FILE_* code, before any model loads (the library's own read does not block either).
 */
export function checkInputFile(path: string, what: string, maxBytes = Number.MAX_SAFE_INTEGER): void {
  checkUserFileSync(path, { maxBytes, what });
}
