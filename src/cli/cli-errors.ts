/**
 * How every CLI error reaches the user: `ragdiff: [CODE] message` on stderr,
 * and with `--json` also `{"error": {code, name, message}}` on stdout, where
 * CODE is always one of the closed set (src/error-codes.ts). Commander's own
 * parse errors (`commander.invalidArgument`, …) and raw Node errors
 * (ENOENT, EISDIR, …) are mapped into that set here, the one place that
 * knows their codes; anything else without a known code is INTERNAL.
 */
import { CommanderError } from 'commander';
import { isErrorCode, type ErrorCode } from '../error-codes.js';
import { fsReason } from '../io/user-file.js';

/** Commander's error ids → ours. */
const COMMANDER_CODES: Record<string, ErrorCode> = {
  'commander.invalidArgument': 'INVALID_VALUE',
  'commander.unknownOption': 'UNKNOWN_OPTION',
  'commander.missingArgument': 'INVALID_ARGUMENT',
  'commander.optionMissingArgument': 'INVALID_ARGUMENT',
  'commander.missingMandatoryOptionValue': 'INVALID_ARGUMENT',
  'commander.conflictingOption': 'INVALID_ARGUMENT',
  'commander.excessArguments': 'INVALID_ARGUMENT',
  'commander.unknownCommand': 'INVALID_ARGUMENT',
  'commander.help': 'INVALID_ARGUMENT', // help shown because no subcommand was given
  'commander.error': 'INVALID_ARGUMENT',
};

/** Node's file-system error codes → ours (as src/io/user-file.ts maps them). */
const NODE_CODES: Record<string, ErrorCode> = {
  ENOENT: 'FILE_NOT_FOUND',
  ENOTDIR: 'FILE_NOT_FOUND',
  EISDIR: 'IS_DIRECTORY',
  EACCES: 'FILE_UNREADABLE',
  EPERM: 'FILE_UNREADABLE',
  ELOOP: 'FILE_UNREADABLE',
  EIO: 'FILE_UNREADABLE',
  ENAMETOOLONG: 'INVALID_VALUE',
  EROFS: 'OUTPUT_NOT_WRITABLE',
  ENOSPC: 'OUTPUT_NOT_WRITABLE',
  EEXIST: 'INVALID_STATE',
};

/** The closed-set code for any thrown value. */
export function cliErrorCode(e: unknown): ErrorCode {
  const code = (e as { code?: unknown } | null)?.code;
  if (isErrorCode(code)) return code;
  if (typeof code === 'string') return COMMANDER_CODES[code] ?? NODE_CODES[code] ?? 'INTERNAL';
  return 'INTERNAL';
}

/** The JSON form of an error, for `--json` output: its closed-set code, its class and its message. */
export function errorJson(e: unknown): { error: { code: ErrorCode; name: string; message: string } } {
  const err = e as { name?: unknown; message?: unknown } | null;
  let message = typeof err?.message === 'string' ? err.message : String(e);
  // Commander prefixes its messages with "error: "; the code says that already.
  if (e instanceof CommanderError) message = message.replace(/^error: /, '');
  // A raw Node error that escaped its mapping: its words, without Node's code.
  else if (!isErrorCode((e as { code?: unknown } | null)?.code)) message = fsReason(e);
  return { error: { code: cliErrorCode(e), name: typeof err?.name === 'string' ? err.name : 'Error', message } };
}

/** Prints the error (stderr always, stdout JSON with `json`) and sets exit code 1. */
export function reportCliError(e: unknown, json: boolean | undefined): void {
  const { error } = errorJson(e);
  if (json) process.stdout.write(JSON.stringify({ error }, null, 2) + '\n');
  process.stderr.write(`ragdiff: [${error.code}] ${error.message}\n`);
  process.exitCode = 1;
}

/** Whether the command line asks for JSON (for errors raised before its options are parsed). */
export function argvWantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}
