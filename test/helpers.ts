import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** The repository root, whether running from test/ (ts) or dist/test/ (js). */
const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = here.includes(`${join('dist', 'test')}`) ? join(here, '..', '..') : join(here, '..');

export function repoPath(rel: string): string {
  return join(repoRoot, rel);
}

/** A fresh temporary directory; call the returned cleanup when done. */
export function tempDir(prefix = 'ragdiff-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random floats for tests (mulberry32), independent of the code under test. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves when `p` rejects with an error `check` accepts; fails the test otherwise. */
export async function rejects(p: Promise<unknown>, check: (e: unknown) => boolean, message?: string): Promise<void> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error(message ?? 'expected a rejection');
  if (!check(error)) throw new Error(`${message ?? 'unexpected rejection'}: ${String((error as Error)?.stack ?? error)}`);
}

/** A check for `rejects`: the error carries this ragdiff `code`. */
export const hasErrorCode = (code: string) => (e: unknown) => (e as { code?: string })?.code === code;
