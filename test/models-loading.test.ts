// Spec: model files and tokenizers load with errors that name the file, and
// unavailable execution providers fall back to the CPU with a warning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSession, expectIO } from '../src/models/session.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { repoPath, tempDir } from './helpers.js';

const textEncoder = repoPath('models/tiny-emoji/text_encoder/model.onnx');
const tokenizerDir = repoPath('models/tiny-emoji/tokenizer');

async function rejectsWith(p: Promise<unknown>, code: string, mentions: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.is((e as { code?: string }).code, code, (e as Error).message);
    assert.ok((e as Error).message.includes(mentions), `message names ${mentions}: ${(e as Error).message}`);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('missing, empty, damaged and truncated model files are errors naming the file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await rejectsWith(openSession(join(dir, 'nope.onnx')), 'MODEL_FILE_MISSING', 'nope.onnx');
    writeFileSync(join(dir, 'empty.onnx'), '');
    await rejectsWith(openSession(join(dir, 'empty.onnx')), 'MODEL_FILE_INVALID', 'empty.onnx');
    writeFileSync(join(dir, 'garbage.onnx'), 'this is not a protobuf at all');
    await rejectsWith(openSession(join(dir, 'garbage.onnx')), 'MODEL_FILE_INVALID', 'garbage.onnx');
    const half = readFileSync(textEncoder);
    writeFileSync(join(dir, 'half.onnx'), half.subarray(0, half.length >> 1));
    await rejectsWith(openSession(join(dir, 'half.onnx')), 'MODEL_FILE_INVALID', 'half.onnx');
  } finally {
    cleanup();
  }
});

test('an unavailable execution provider falls back to cpu with a warning', async () => {
  const warnings: string[] = [];
  const opened = await openSession(textEncoder, { executionProviders: ['cuda'], onWarning: (m) => warnings.push(m) });
  assert.equal(opened.providers, ['cpu']);
  assert.is(warnings.length, 1);
  assert.match(warnings[0]!, /cuda/);
  await opened.session.release();
});

test('expectIO names the file and the missing tensors', async () => {
  const opened = await openSession(textEncoder);
  expectIO(opened, ['input_ids'], ['last_hidden_state']);
  try {
    expectIO(opened, ['sample'], ['out_sample']);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'MODEL_IO_MISMATCH');
    assert.match((e as Error).message, /text_encoder.*missing inputs sample/);
  }
  await opened.session.release();
});

test('tokenizer pads to the model length, truncates long prompts keeping EOS, and says so', () => {
  const tok = loadTokenizer(tokenizerDir);
  assert.is(tok.maxLength, 16);
  const short = tok.encode('red apple');
  assert.is(short.ids.length, 16);
  assert.not.ok(short.truncated);
  assert.is(short.tokenCount, 4, 'BOS red apple EOS');
  assert.is(short.ids[15], BigInt(tok.padId));
  const empty = tok.encode('');
  assert.is(empty.tokenCount, 2);
  const long = tok.encode('red apple '.repeat(50));
  assert.ok(long.truncated);
  assert.is(long.ids[15], short.ids[3], 'EOS kept last');
  const huge = tok.encode('x'.repeat(5_000_000));
  assert.ok(huge.truncated);
  assert.is(huge.ids.length, 16);
});

test('a tokenizer folder with broken JSON is an error naming the file', () => {
  const { dir, cleanup } = tempDir();
  try {
    copyFileSync(join(tokenizerDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    writeFileSync(join(dir, 'tokenizer.json'), '{ broken');
    try {
      loadTokenizer(dir);
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code?: string }).code, 'MODEL_FILE_INVALID');
      assert.match((e as Error).message, /tokenizer\.json/);
    }
  } finally {
    cleanup();
  }
});

test.run();
