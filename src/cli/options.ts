/** Option parsers shared by the CLI's subcommands; each rejects bad text with a message naming the option. */
import { InvalidArgumentError } from 'commander';
import { reportCliError } from './cli-errors.js';

/** An integer option, optionally with a lower bound (the API validates upper bounds). */
export function intOption(name: string, min = -Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer${min > -Infinity ? ` ≥ ${min}` : ''}, got ${JSON.stringify(v)}`);
    }
    return n;
  };
}

export function numberOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** One of a fixed set of words. */
export function choiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (v: string): T => {
    if (!(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  };
}

/** A repeatable option whose values may also be comma-separated: `--ref a --ref b,c` → [a, b, c]. */
export function listOption(v: string, previous: string[] = []): string[] {
  return [...previous, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** A repeatable option taken verbatim (file names may contain commas): `--ref-image a.png --ref-image b,c.png`. */
export function repeatOption(v: string, previous: string[] = []): string[] {
  return [...previous, v];
}

/**
 * Runs a command body. Errors set exit code 1 and are reported on stderr as
 * `ragdiff: [CODE] message`; with `--json` also as one JSON document on stdout
 * ({"error": {code, name, message}}), so scripts read the code either way.
 */
export async function runAction(o: { json?: boolean }, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    reportCliError(e, o.json);
  }
}
