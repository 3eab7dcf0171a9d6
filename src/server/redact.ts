/**
 * Client-facing text never carries the server's filesystem paths: the
 * library's messages name the store directory or the model bundle (useful on
 * the command line), and the server rewrites them at its boundary — known
 * directories to a label (`<store>`, `<model>`), any other absolute path of two
 * or more segments to `<path>`. The API's own routes (`/v1/…`) are kept.
 */
import { resolve } from 'node:path';

/** An absolute path not inside a URL, a JSON pointer or a word ("body/n", "image/png"), and not one of the API's routes. */
const ABSOLUTE = /(?<![\w:/.~<>%-])\/(?!v1\/|healthz\b|metrics\b|openapi)[^\s/'"`()<>,;:]+(?:\/[^\s/'"`()<>,;:]*)+/g;

export type Redact = (text: string) => string;

/** A redactor that labels the named directories (longest first) and hides any other absolute path. */
export function pathRedactor(named: Record<string, string | undefined>): Redact {
  const pairs = Object.entries(named)
    .filter((e): e is [string, string] => typeof e[1] === 'string' && resolve(e[1]) !== '/')
    // Absolute, and as given when that is a relative path of two or more segments (a bundle loaded as "models/x" is named so in messages).
    .flatMap(([label, p]) => [...new Set([resolve(p), ...(p.includes('/') ? [p] : [])])].map((q) => [q, `<${label}>`] as const))
    .sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    let out = text;
    for (const [p, label] of pairs) out = out.split(p).join(label);
    return out.replace(ABSOLUTE, '<path>');
  };
}
