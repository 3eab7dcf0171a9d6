// Every CLI error, parsing included, is `ragdiff: [CODE] …` on stderr and, with
// --json, {"error": {code, name, message}} on stdout, with a code of the closed set.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { CommanderError, InvalidArgumentError } from 'commander';
import { isErrorCode } from '../src/error-codes.js';
import { argvWantsJson, cliErrorCode, errorJson } from '../src/cli/cli-errors.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const t = tempDir('ragdiff-cli-errors-');
test.after(t.cleanup);

function ragdiff(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000, cwd: t.dir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1; stderr `ragdiff: [code] …` and nothing of commander's raw text; with --json the same code on stdout. */
function refused(args: string[], code: string): void {
  const what = args.join(' ');
  const r = ragdiff(args);
  assert.is(r.status, 1, `${what}: exit ${r.status}; ${r.stderr}`);
  assert.ok(isErrorCode(code));
  assert.match(r.stderr, new RegExp(`^ragdiff: \\[${code}\\] `, 'm'), `${what}: ${r.stderr}`);
  assert.not.match(r.stderr, /^error: /m, `${what}: commander's own text leaked: ${r.stderr}`);
  assert.not.match(r.stderr + r.stdout, /commander\./, `${what}: a commander id leaked`);
  if (args.includes('--json')) {
    const doc = JSON.parse(r.stdout) as { error: { code: string; name: string; message: string } };
    assert.is(doc.error.code, code, what);
    assert.type(doc.error.message, 'string');
    assert.type(doc.error.name, 'string');
  } else {
    assert.is(r.stdout, '', `${what}: nothing on stdout without --json`);
  }
}

const o = (f: string) => ['-o', `${t.dir}/${f}.png`];

test('generate: NaN, Infinity, -k 1.5, unknown --mode/--weighting/--demo-store/--attention-branches/--sampler', () => {
  refused(['generate', 'cat', ...o('a'), '--guidance', 'NaN', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--strength', 'Infinity', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--min-score', '-Infinity', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '-k', '1.5', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--steps', 'ten', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--mode', 'bogus', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--weighting', 'heavy', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--demo-store', 'openmoji', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--attention-branches', 'all', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--sampler', 'nope', '--json'], 'INVALID_VALUE');
  refused(['generate', 'cat', ...o('a'), '--retrieval-scale', 'NaN'], 'INVALID_VALUE');
});

test('generate: missing -o, missing prompt, unknown option, an option without its value, extra arguments', () => {
  refused(['generate', 'cat', '--json'], 'INVALID_ARGUMENT');
  refused(['generate', ...o('a'), '--json'], 'INVALID_ARGUMENT');
  refused(['generate', 'cat', ...o('a'), '--colour', 'red', '--json'], 'UNKNOWN_OPTION');
  refused(['generate', 'cat', ...o('a'), '--json', '--seed'], 'INVALID_ARGUMENT');
  refused(['generate', 'cat', 'dog', ...o('a'), '--json'], 'INVALID_ARGUMENT');
});

test('index: add, add-url, query, remove, rebuild, info', () => {
  refused(['index', 'add', 'x.png', '--store', 's', '--near-distance', '1.5', '--json'], 'INVALID_VALUE');
  refused(['index', 'add-url', 'http://127.0.0.1/x.png', '--store', 's', '--max-bytes', 'Infinity', '--json'], 'INVALID_VALUE');
  refused(['index', 'add-url', 'http://127.0.0.1/x.png', '--store', 's', '--timeout', 'NaN', '--json'], 'INVALID_VALUE');
  refused(['index', 'query', 'cat', '--store', 's', '-k', '0.5', '--json'], 'INVALID_VALUE');
  refused(['index', 'query', 'cat', '--store', 's', '--min-score', 'NaN', '--json'], 'INVALID_VALUE');
  refused(['index', 'remove', '--store', 's', '--json'], 'INVALID_ARGUMENT');
  refused(['index', 'rebuild', '--store', 's', '--bogus', '--json'], 'UNKNOWN_OPTION');
  refused(['index', 'info', 'extra', '--json'], 'INVALID_ARGUMENT');
  refused(['index', 'frobnicate', '--json'], 'INVALID_ARGUMENT');
});

test('explain, kb build, kb info, demo, serve', () => {
  refused(['explain', '--json'], 'INVALID_ARGUMENT');
  refused(['explain', 'a.png', '--bogus', '--json'], 'UNKNOWN_OPTION');
  refused(['kb', 'build', '--prompts', 'p.txt', '--out', 'k.kb', '--seeds', '1.5', '--json'], 'INVALID_VALUE');
  refused(['kb', 'build', '--prompts', 'p.txt', '--out', 'k.kb', '--seeds', '2', '--value-steps', 'a,b'], 'INVALID_VALUE');
  refused(['kb', 'build', '--prompts', 'p.txt', '--seeds', '2', '--json'], 'INVALID_ARGUMENT');
  refused(['kb', 'info', '--json'], 'INVALID_ARGUMENT');
  refused(['kb', 'info', 'a.kb', 'b.kb', '--json'], 'INVALID_ARGUMENT');
  refused(['demo', '--bogus', '--json'], 'UNKNOWN_OPTION');
  refused(['demo', '--seeds', 'NaN', '--json'], 'INVALID_VALUE');
  refused(['serve', '--port', '80.5', '--json'], 'INVALID_VALUE');
  refused(['serve', '--concurrency', 'Infinity', '--json'], 'INVALID_VALUE');
});

test('the top level: unknown command, no command; --help and --version are not errors', () => {
  refused(['paint', '--json'], 'INVALID_ARGUMENT');
  refused(['--json'], 'UNKNOWN_OPTION');
  refused([], 'INVALID_ARGUMENT');
  refused(['kb'], 'INVALID_ARGUMENT');
  const v = ragdiff(['--version']);
  assert.is(v.status, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  const h = ragdiff(['generate', '--help']);
  assert.is(h.status, 0);
  assert.match(h.stdout, /Usage: ragdiff generate/);
  assert.is(h.stderr, '');
});

test('errors thrown by an action without its own handler still print a closed-set code, as JSON with --json', () => {
  // serve refuses two stores in its action (after parsing).
  refused(['serve', '--store', 'x', '--without-store', '--port', '0', '--json'], 'INVALID_ARGUMENT');
});

test('cliErrorCode: closed-set codes pass, commander and Node codes are mapped, the rest is INTERNAL', () => {
  assert.is(cliErrorCode({ code: 'STORE_LOCKED' }), 'STORE_LOCKED');
  assert.is(cliErrorCode(new InvalidArgumentError('x')), 'INVALID_VALUE');
  assert.is(cliErrorCode(new CommanderError(1, 'commander.unknownOption', 'x')), 'UNKNOWN_OPTION');
  for (const [node, ours] of [['ENOENT', 'FILE_NOT_FOUND'], ['EISDIR', 'IS_DIRECTORY'], ['EACCES', 'FILE_UNREADABLE'], ['ELOOP', 'FILE_UNREADABLE']]) {
    assert.is(cliErrorCode(Object.assign(new Error('x'), { code: node })), ours, node);
  }
  assert.is(cliErrorCode(Object.assign(new Error('x'), { code: 'ERR_SOMETHING' })), 'INTERNAL');
  assert.is(cliErrorCode('a string'), 'INTERNAL');
  assert.is(cliErrorCode(null), 'INTERNAL');
  assert.equal(errorJson(new CommanderError(1, 'commander.missingArgument', "error: missing required argument 'prompt'")).error,
    { code: 'INVALID_ARGUMENT', name: 'CommanderError', message: "missing required argument 'prompt'" });
  assert.ok(argvWantsJson(['generate', '--json']));
  assert.not.ok(argvWantsJson(['generate', '--', '--json']));
});

test.run();
