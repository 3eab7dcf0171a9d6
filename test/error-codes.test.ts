// The closed set of error codes: one table (src/error-codes.ts), documented in
// docs/errors.md, covering every code the TypeScript and the native addon throw,
// each with an HTTP status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_ERROR_CODES, ERROR_CODES, httpStatusOf, httpStatusOfError, isErrorCode, RagdiffError, rangeError, type ErrorCode } from '../src/errors.js';
import { deserializeError, serializeError } from '../src/worker-errors.js';
import { repoPath } from './helpers.js';

const ALLOWED_STATUSES = new Set([400, 401, 403, 404, 408, 409, 410, 413, 415, 422, 429, 431, 499, 500, 501, 502, 503, 504]);

function filesUnder(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, ext));
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

test('every code has a one-line meaning and an HTTP status from the agreed set', () => {
  assert.ok(ALL_ERROR_CODES.length > 60);
  for (const code of ALL_ERROR_CODES) {
    const status = httpStatusOf(code);
    assert.ok(ALLOWED_STATUSES.has(status), `${code} → ${status}`);
    assert.ok(ERROR_CODES[code].meaning.length > 5 && !ERROR_CODES[code].meaning.includes('\n'), code);
  }
});

test('the statuses a service relies on', () => {
  const expect: [ErrorCode, number][] = [
    ['INVALID_VALUE', 400], ['OUT_OF_RANGE', 400], ['FILE_NOT_FOUND', 404], ['IMAGE_NOT_FOUND', 404],
    ['STORE_LOCKED', 409], ['BUSY', 429], ['ABORTED', 499], ['INTERNAL', 500], ['CLOSED', 503], ['STORE_CLOSED', 503],
    ['FILE_TOO_LARGE', 413], ['PROMPT_TOO_LONG', 400],
  ];
  for (const [code, status] of expect) assert.is(httpStatusOf(code), status, code);
});

test('anything that is not a known code maps to 500', () => {
  assert.is(httpStatusOf('ENOENT'), 500);
  assert.is(httpStatusOf(undefined), 500);
  assert.is(httpStatusOf(404), 500);
  assert.is(httpStatusOfError(new RagdiffError('STORE_LOCKED', 'x')), 409);
  assert.is(httpStatusOfError(rangeError('OUT_OF_RANGE', 'x')), 400);
  assert.is(httpStatusOfError(new Error('plain')), 500);
  assert.is(httpStatusOfError(null), 500);
  assert.not.ok(isErrorCode('toString'), 'prototype keys are not codes');
});

test('docs/errors.md lists exactly the codes of the table, with the same statuses', () => {
  const md = readFileSync(repoPath('docs/errors.md'), 'utf8');
  const rows = [...md.matchAll(/^\| `([A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  assert.equal(rows.map((r) => r[0]).sort(), [...ALL_ERROR_CODES].sort(), 'regenerate with node tools/error-table.mjs > docs/errors.md');
  for (const [code, status] of rows) assert.is(status, httpStatusOf(code), code);
});

test('every code thrown in src/ and by the native addon is in the table', () => {
  const used = new Set<string>();
  for (const f of filesUnder(repoPath('src'), /\.ts$/)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:RagdiffError|typeError|rangeError)\(\s*'([A-Z0-9_]+)'/g)) used.add(m[1]!);
  }
  for (const f of filesUnder(repoPath('native/binding'), /\.(cc|h)$/)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/throw_(?:type|range|error)\(\s*env,\s*"([A-Z0-9_]+)"/g)) used.add(m[1]!);
  }
  assert.ok(used.size > 40, `found ${used.size} codes`);
  const missing = [...used].filter((c) => !isErrorCode(c));
  assert.equal(missing, [], `codes thrown but not in src/error-codes.ts: ${missing.join(', ')}`);
});

test('an error from a worker keeps a known code and maps any other to INTERNAL', () => {
  const known = deserializeError(serializeError(new RagdiffError('MODEL_RUN_FAILED', 'boom')));
  assert.is((known as RagdiffError).code, 'MODEL_RUN_FAILED');
  const foreign = Object.assign(new Error('no such file'), { code: 'ENOENT' });
  const back = deserializeError(serializeError(foreign)) as RagdiffError & { originalCode?: string };
  assert.is(back.code, 'INTERNAL');
  assert.is(back.originalCode, 'ENOENT');
  assert.is(back.message, 'no such file');
});

test.run();
