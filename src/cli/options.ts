/** Option parsers shared by the CLI's subcommands; each rejects bad text with a message naming the option. */
import { InvalidArgumentError } from 'commander';

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
