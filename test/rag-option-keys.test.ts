// Misspelt nested options are UNKNOWN_OPTION naming their path, and a reference
// with both an id and an image is refused: nothing is silently ignored.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normalizeRetrieval, type BundleRetrieval } from '../src/rag/options.js';
import { normalizeRequest } from '../src/pipeline/params.js';
import { prepareTrajectory } from '../src/trajectory/request.js';

// Only the shape normalizeRetrieval checks; nothing is queried.
const store = { query() {}, get() {}, readImage() {}, embedReference() {}, stats() {}, width: 4 };
const bundle: BundleRetrieval = { slots: 4, embedDim: 8, canImg2Img: true, referenceAttention: true, encoderId: 'x', defaults: {} };
const png = new Uint8Array([137, 80, 78, 71]);

function code(f: () => unknown): { code?: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  return { message: 'no error' };
}

function unknownAt(retrieval: Record<string, unknown>, path: string): void {
  const e = code(() => normalizeRetrieval({ store, ...retrieval }, 'cat', 7, bundle));
  assert.is(e.code, 'UNKNOWN_OPTION', `${path}: ${e.message}`);
  assert.ok(e.message.includes(path), `the message names ${path}: ${e.message}`);
}

test('every nested retrieval option refuses a key it does not know, naming its path', () => {
  unknownAt({ scales: { txt: 3 } }, 'retrieval.scales.txt');
  unknownAt({ scales: { text: 3, retreival: 2 } }, 'retrieval.scales.retreival');
  unknownAt({ mixture: { coarse: 1 } }, 'retrieval.mixture.coarse');
  unknownAt({ mixture: { fine: { both: 1, text: 1, retrieval: 1, extra: 0 } } }, 'retrieval.mixture.fine.extra');
  unknownAt({ mode: 'interleaved', interleave: { share: 0.5 } }, 'retrieval.interleave.share');
  unknownAt({ referenceInit: { strenght: 0.5 } }, 'retrieval.referenceInit.strenght');
  unknownAt({ referenceAttention: { fidelty: 0.5 } }, 'retrieval.referenceAttention.fidelty');
  unknownAt({ reflective: { lamda: 1 } }, 'retrieval.reflective.lamda');
  unknownAt({ retrieveOnly: { above: 0.9, also: true } }, 'retrieval.retrieveOnly.also');
  unknownAt({ references: [{ id: 'abc', nmae: 'x' }] }, 'retrieval.references[0].nmae');
  unknownAt({ references: [{ image: png, licence: 'x', licnse: 'y' }] }, 'retrieval.references[0].licnse');
  unknownAt({ colour: 'red' }, 'retrieval.colour');
});

test('the known keys still pass', () => {
  const r = normalizeRetrieval({ store, scales: { text: 3, retrieval: 2 }, referenceInit: { strength: 0.5, blend: 1 }, retrieveOnly: { above: 0.9, alsoGenerate: true },
    references: [{ id: 'abc' }, { image: png, name: 'n', source: 's', licence: 'l', attribution: 'a' }] } as never, 'cat', 7, bundle);
  assert.equal([r.textScale, r.retrievalScale, r.referenceInit, r.retrieveOnly, r.references.length], [3, 2, { strength: 0.5, blend: 1 }, { above: 0.9, alsoGenerate: true }, 2]);
});

test('a reference with both an id and an image is ambiguous: INVALID_VALUE naming it', () => {
  const e = code(() => normalizeRetrieval({ store, references: [{ id: 'abc' }, { id: 'def', image: png }] } as never, 'cat', 7, bundle));
  assert.is(e.code, 'INVALID_VALUE', e.message);
  assert.match(e.message, /retrieval\.references\[1\] has id and image/);
  const u = code(() => normalizeRetrieval({ store, references: [{ image: png, url: 'https://example.org/a.png' }] } as never, 'cat', 7, bundle));
  assert.is(u.code, 'INVALID_VALUE', u.message);
  assert.match(u.message, /retrieval\.references\[0\] has image and url/);
  // A URL reference's own keys are known; a misspelt one is named.
  const m = code(() => normalizeRetrieval({ store, references: [{ url: 'https://example.org/a.png', creater: 'x' }] } as never, 'cat', 7, bundle));
  assert.is(m.code, 'UNKNOWN_OPTION', m.message);
  assert.match(m.message, /retrieval\.references\[0\]\.creater/);
});

test('generate\'s nested options: startFrom, guidance, initImages, referenceAttention, trajectory', () => {
  const defaults = { steps: 10, guidanceScale: 7, sampler: 'ddim' } as never;
  const latent = new Float32Array(4);
  for (const [req, path] of [
    [{ startFrom: { step: 1, latent, histroy: null } }, 'startFrom.histroy'],
    [{ guidance: { branches: [], weights: new Float32Array(0), lable: 'x' } }, 'guidance.lable'],
    [{ initImages: { images: [png], weights: [1], weight: [1] } }, 'initImages.weight'],
    [{ referenceAttention: { images: [png], weights: [1], fidelity: 1, branches: 'prompt' } }, 'referenceAttention.branches'],
  ] as [Record<string, unknown>, string][]) {
    const e = code(() => normalizeRequest({ prompt: 'cat', ...req }, defaults));
    assert.is(e.code, 'UNKNOWN_OPTION', `${path}: ${e.message}`);
    assert.ok(e.message.includes(path), `${path}: ${e.message}`);
  }
  const t = code(() => prepareTrajectory({ kb: 'x.rdkb', keystep: 2 }, {} as never, 10, 1));
  assert.is(t.code, 'UNKNOWN_OPTION');
  assert.ok(t.message.includes('trajectory.keystep'), t.message);
});

test.run();
