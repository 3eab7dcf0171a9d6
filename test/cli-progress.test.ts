// The progress bar of the long commands: drawn on a terminal, silent when the
// stream is not one or the output is JSON.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { createProgress } from '../src/cli/progress.js';
import { demoInputs } from '../src/store/demo.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const t = tempDir('ragdiff-cli-progress-');
test.after(t.cleanup);

/** A stream that records what is written; `isTTY` as asked. */
function fakeStream(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } }) as Writable & { isTTY: boolean; text: () => string };
  s.isTTY = isTTY;
  s.text = () => chunks.join('');
  return s;
}

test('on a terminal: the label, the bar and the counts are drawn, and cleared at the end', () => {
  const tty = fakeStream(true);
  const bar = createProgress({ label: 'index add', stream: tty });
  bar.update(1, 4, 'added 1');
  bar.update(4, 4, 'added 4');
  bar.done();
  const out = tty.text();
  assert.match(out, /index add \[/);
  assert.match(out, /\d\/4 added \d/);
  assert.ok(out.includes('\x1b['), 'terminal control sequences (redraw, clear)');
});

test('not a terminal, or --json: nothing at all is written', () => {
  const pipe = fakeStream(false);
  const a = createProgress({ label: 'kb build', stream: pipe });
  a.update(1, 2);
  a.update(2, 2);
  a.done();
  assert.is(pipe.text(), '');
  const tty = fakeStream(true);
  const b = createProgress({ label: 'kb build', stream: tty, json: true });
  b.update(1, 2);
  b.done();
  assert.is(tty.text(), '');
});

test('index add through a pipe: stderr carries no bar, stdout only the JSON report', () => {
  const images = demoInputs('twemoji').slice(0, 3).map((i) => (i as { path: string }).path);
  const r = spawnSync(process.execPath, [MAIN, 'index', 'add', ...images, '--store', `${t.dir}/store`, '--json'], { encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.is((JSON.parse(r.stdout) as { added: number }).added, 3);
});

test.run();
