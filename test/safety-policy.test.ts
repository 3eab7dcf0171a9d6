/**
 * Safety policies: loaded from JSON, validated field by field, versioned by a
 * content hash; a malformed policy is a POLICY_INVALID error naming the field
 * and the policy in force stays in force. Concepts are text phrases (text
 * encoder) and example images (image encoder), scored cos − threshold; the
 * prompt door catches paraphrases inside the tiny-emoji vocabulary.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadClipEncoders, type ClipEncoders } from '../src/store/index.js';
import { loadPolicy, PolicyError, SafetyGuard, validatePolicy } from '../src/safety/index.js';
import { resolveAnchorPath } from '../src/safety/load.js';
import { readVocabulary, unknownWords } from '../src/safety/calibrate.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-safety-policy-');
let enc: ClipEncoders;

const PISTOL = { version: 'p1', concepts: [{ id: 'pistol', text: ['pistol'], threshold: 0.55, promptThreshold: 0.62 }] };

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
});
test.after(async () => {
  await enc.close();
  t.cleanup();
});

const fieldOf = (doc: unknown): string => {
  try {
    validatePolicy(doc);
  } catch (e) {
    assert.instance(e, PolicyError);
    assert.is((e as PolicyError).code, 'POLICY_INVALID');
    return (e as PolicyError).field;
  }
  throw new Error('expected POLICY_INVALID');
};

test('a malformed policy is POLICY_INVALID naming the field', () => {
  assert.is(fieldOf(null), '(document)');
  assert.is(fieldOf({}), 'version');
  assert.is(fieldOf({ version: 'x', conceptz: [] }), 'conceptz');
  assert.is(fieldOf({ version: 'x', concepts: {} }), 'concepts');
  assert.is(fieldOf({ version: 'x', concepts: [{ id: 'a', text: ['a'] }] }), 'concepts[0].threshold');
  assert.is(fieldOf({ version: 'x', concepts: [{ id: 'a', text: ['a'], threshold: 2 }] }), 'concepts[0].threshold');
  assert.is(fieldOf({ version: 'x', concepts: [{ id: 'a', text: ['a'], threshold: 0.5, action: 'delete' }] }), 'concepts[0].action');
  assert.is(fieldOf({ version: 'x', concepts: [{ id: 'a', threshold: 0.5 }] }), 'concepts[0]');
  assert.is(fieldOf({ version: 'x', concepts: [{ id: 'a', text: ['a'], threshold: 0.5 }, { id: 'a', text: ['b'], threshold: 0.5 }] }), 'concepts[1].id');
  assert.is(fieldOf({ version: 'x', concepts: [{ id: 'a', text: ['a'], threshold: 0.5, doors: ['everywhere'] }] }), 'concepts[0].doors[0]');
  assert.is(fieldOf({ version: 'x', hashes: [{ phash: 'xyz' }] }), 'hashes[0].phash');
  assert.is(fieldOf({ version: 'x', sources: { deny: 'evil' } }), 'sources.deny');
  assert.is(fieldOf({ version: 'x', licences: { allow: [''] } }), 'licences.allow[0]');
  assert.is(fieldOf({ version: 'x', poisoning: { maxCluster: 1 } }), 'poisoning.maxCluster');
  assert.is(fieldOf({ version: 'x', retrieval: { maxPerSource: 0 } }), 'retrieval.maxPerSource');
});

test('loadPolicy: files, relative example images, a stable content hash that follows the content; encoder mismatch refused', async () => {
  const dir = join(t.dir, 'p');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'anchors'), { recursive: true });
  copyFileSync(resolveAnchorPath('npm:emoji-datasource-twitter/img/twitter/64/1f4a3.png', '.'), join(dir, 'anchors', 'bomb.png'));
  const doc = { version: 'v1', encoder: enc.id, concepts: [{ id: 'bomb', text: ['bomb'], images: ['anchors/bomb.png'], threshold: 0.55 }] };
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(doc));
  const a = await loadPolicy(join(dir, 'policy.json'), { encoder: enc });
  const b = await loadPolicy({ ...doc }, { encoder: enc, baseDir: dir });
  assert.is(a.version, 'v1');
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  assert.is(a.hash, b.hash, 'the same content hashes the same, whatever its origin');
  assert.is(a.concepts[0]!.anchors.length, 2);
  const c = await loadPolicy({ ...doc, concepts: [{ ...doc.concepts[0]!, threshold: 0.56 }] }, { encoder: enc, baseDir: dir });
  assert.is.not(c.hash, a.hash);
  // A changed anchor image changes the hash.
  copyFileSync(resolveAnchorPath('npm:emoji-datasource-twitter/img/twitter/64/1f52b.png', '.'), join(dir, 'anchors', 'bomb.png'));
  const d = await loadPolicy(join(dir, 'policy.json'), { encoder: enc });
  assert.is.not(d.hash, a.hash);
  await rejects(loadPolicy({ ...doc, encoder: 'some-other-encoder' }, { encoder: enc, baseDir: dir }), (e) => (e as PolicyError).field === 'encoder');
  await rejects(loadPolicy({ ...doc, concepts: [{ ...doc.concepts[0]!, images: ['anchors/missing.png'] }] }, { encoder: enc, baseDir: dir }), (e) => (e as PolicyError).field === 'concepts[0].images[0]');
  writeFileSync(join(dir, 'broken.json'), '{ "version": ');
  await rejects(loadPolicy(join(dir, 'broken.json'), { encoder: enc }), hasErrorCode('POLICY_INVALID'));
});

test('update(): a malformed policy keeps the previous policy in force', async () => {
  const guard = await SafetyGuard.create(PISTOL, { encoder: enc });
  const before = guard.stamp;
  assert.is((await guard.checkPrompt('pistol')).action, 'block');
  for (const bad of [{ version: 'p2', concepts: [{ id: 'pistol', text: ['pistol'], threshold: 'high' }] }, { concepts: [] }, join(t.dir, 'nope.json')]) {
    await rejects(guard.update(bad), hasErrorCode('POLICY_INVALID'));
    assert.equal(guard.stamp, before);
    assert.is((await guard.checkPrompt('pistol')).action, 'block', 'the old policy still blocks');
  }
  const next = await guard.update({ version: 'p2', concepts: [] });
  assert.is(next.version, 'p2');
  assert.is((await guard.checkPrompt('pistol')).action, 'allow');
  guard.close();
});

test('prompt door on the default policy: the emoji names and paraphrases inside the vocabulary are caught; benign names pass; [UNK] words are blind', async () => {
  const guard = await SafetyGuard.create(repoPath('policies/default.json'), { encoder: enc });
  const caught: Record<string, string> = {
    'water pistol': 'concept:pistol',
    knife: 'concept:kitchen-knife',
    'skull and crossbones': 'concept:skull',
    'a bomb': 'concept:bomb',
    'middle finger hand': 'concept:middle-finger',
    'blood drop': 'concept:blood',
    'two swords': 'concept:crossed-swords',
  };
  for (const [prompt, rule] of Object.entries(caught)) {
    const d = await guard.checkPrompt(prompt);
    assert.is(d.action, 'block', `${prompt}: ${JSON.stringify(d)}`);
    assert.is(d.rule, rule, prompt);
    assert.ok(d.score! > 0);
  }
  for (const prompt of ['red heart', 'cat face', 'grinning face', 'automobile', 'snowman']) {
    const d = await guard.checkPrompt(prompt);
    assert.is(d.action, 'allow', `${prompt}: ${JSON.stringify(d)}`);
    assert.ok(d.score! <= 0);
  }
  const vocab = readVocabulary(repoPath('models/tiny-emoji/tokenizer'));
  assert.equal(unknownWords(vocab, 'cigarette'), ['cigarette']);
  assert.equal(unknownWords(vocab, 'water pistol'), []);
  // "cigarette" alone is [UNK]: the text encoder sees nothing it can match (the output door remains).
  assert.is((await guard.checkPrompt('cigarette')).action, 'allow');
  guard.close();
});

test('prompt dilution: a concept inside benign words is caught by the word windows the default policy turns on; without them it slips through', async () => {
  const doc = JSON.parse(readFileSync(repoPath('policies/default.json'), 'utf8')) as { prompt?: { windows: number } };
  assert.is(doc.prompt?.windows, 3);
  const windowed = await SafetyGuard.create(repoPath('policies/default.json'), { encoder: enc });
  const whole = await SafetyGuard.create({ ...doc, prompt: { windows: 0 } }, { encoder: enc, baseDir: repoPath('policies') });
  for (const [prompt, rule] of [['a cat with a pistol', 'concept:pistol'], ['smiling face with a bomb', 'concept:bomb'], ['red heart and skull', 'concept:skull']]) {
    const d = await windowed.checkPrompt(prompt);
    assert.is(d.action, 'block', prompt);
    assert.is(d.rule, rule, prompt);
    assert.is((await whole.checkPrompt(prompt)).action, 'allow', `${prompt}: diluted below the whole-prompt threshold`);
  }
  for (const prompt of ['banana', 'cat face', 'automobile', 'snowman on a sunny day']) assert.is((await windowed.checkPrompt(prompt)).action, 'allow', prompt);
});

test('policies/default.json is what the calibration wrote: versioned, for the tiny-emoji encoder, every concept with a threshold and anchors', () => {
  const doc = JSON.parse(readFileSync(repoPath('policies/default.json'), 'utf8')) as { version: string; encoder: string; concepts: { id: string; images: string[]; threshold: number }[] };
  const v = validatePolicy(doc);
  assert.ok(v.concepts.length >= 8);
  assert.is(doc.encoder, enc.id);
  for (const c of v.concepts) assert.ok(c.images.length >= 2 && c.threshold > 0 && c.threshold < 1, c.id);
});

test.run();
