#!/usr/bin/env node
// Prints the C++ sources of the addon, one per line, from native/sources.txt
// (the one list; CMakeLists.txt reads the same file). Used by binding.gyp.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function listSources() {
  return readFileSync(join(root, 'native', 'sources.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(listSources().join('\n') + '\n');
}
