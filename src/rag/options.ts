/**
 * Validation and defaults of `request.retrieval`. Runs before any store or
 * model work, so bad input fails at once and changes nothing.
 */
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { normaliseEmbedding } from '../store/index.js';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertPlainObject, assertString } from '../validate.js';
import { REMODIFFUSE_FINE, TOKEN_MODES, type MixtureOptions } from './modes/index.js';
import { RETRIEVAL_MODES, type ReferenceChoice, type ReferenceSource, type RetrievalMode, type RetrievalOptions } from './types.js';

/** What the bundle offers retrieval (from the pipeline's model info and model_index.json). */
export interface BundleRetrieval {
  /** UNet neighbour slots after the text tokens (0: plain SD). */
  slots: number;
  /** image_proj input width (0: no image_proj). */
  embedDim: number;
  canImg2Img: boolean;
  /** The bundle has a reference-attention UNet variant. */
  referenceAttention: boolean;
  /** The id a store built with this bundle's encoders carries, or null without an image encoder. */
  encoderId: string | null;
  defaults: {
    mode?: RetrievalMode; textScale?: number; retrievalScale?: number; strength?: number; blend?: number; fidelity?: number;
    /** Add reference attention to the token modes unless the request says `referenceAttention: false`. */
    referenceAttention?: boolean;
    /** Which guidance branches attend to the reference (see RetrievalOptions.referenceAttention.branches). */
    attentionBranches?: 'prompt' | 'retrieval';
  };
}

export interface NormalizedRetrieval {
  store: ReferenceSource;
  mode: RetrievalMode;
  k: number;
  query: { text: string } | { image: Uint8Array } | { embedding: Float32Array };
  queryKind: 'prompt' | 'text' | 'image' | 'embedding';
  filters: { sources?: string[]; licences?: string[]; tags?: string[]; excludeIds?: string[]; minScore?: number };
  references: ReferenceChoice[];
  textScale: number;
  retrievalScale: number;
  queryInFirstSlot: boolean;
  neighbourWeighting: 'uniform' | 'score';
  mixture: MixtureOptions;
  textShare: number;
  referenceInit: { strength: number; blend: number } | null;
  referenceAttention: { fidelity: number; blend: number; branches: 'prompt' | 'retrieval' } | null;
  reflective: { lambda: number; draftSteps: number; candidates: number } | null;
  retrieveOnly: { above: number; alsoGenerate: boolean } | null;
}

const KNOWN = new Set([
  'store', 'k', 'query', 'sources', 'licences', 'tags', 'excludeIds', 'minScore', 'references', 'mode', 'scales',
  'queryInFirstSlot', 'neighbourWeighting', 'mixture', 'interleave', 'referenceInit', 'referenceAttention', 'reflective', 'retrieveOnly',
]);

export const MAX_REFERENCES = 64;
export const MAX_UPLOAD_BYTES = 20 * 1024 * 1024;

/** Modes a bundle supports, for error messages. */
export function supportedModes(b: BundleRetrieval): RetrievalMode[] {
  return RETRIEVAL_MODES.filter((m) =>
    TOKEN_MODES.includes(m) ? b.slots > 0 && b.embedDim > 0 : m === 'reference-attention' ? b.referenceAttention : b.canImg2Img,
  );
}

function strings(name: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 10_000) throw typeError('INVALID_TYPE', `${name} must be an array of at most 10000 strings`);
  v.forEach((s, i) => assertString(`${name}[${i}]`, s, 1000));
  return [...(v as string[])];
}

function isStore(s: unknown): s is ReferenceSource {
  const o = s as Partial<ReferenceSource> | null;
  return typeof o === 'object' && o !== null && typeof o.query === 'function' && typeof o.get === 'function' &&
    typeof o.readImage === 'function' && typeof o.embedReference === 'function' && typeof o.stats === 'function';
}

export function normalizeRetrieval(r: unknown, prompt: string, guidanceScale: number, bundle: BundleRetrieval): NormalizedRetrieval {
  assertPlainObject('retrieval', r);
  for (const key of Object.keys(r)) if (!KNOWN.has(key)) throw rangeError('UNKNOWN_OPTION', `unknown retrieval option ${JSON.stringify(key)}`);
  const o = r as unknown as RetrievalOptions;
  if (!isStore(o.store)) throw typeError('INVALID_TYPE', 'retrieval.store must be an open ImageStore (query, get, readImage, embedReference, stats)');

  const mode = o.mode ?? bundle.defaults.mode ?? (bundle.slots > 0 && bundle.embedDim > 0 ? 'tokens' : 'reference-init');
  assertOneOf('retrieval.mode', mode, RETRIEVAL_MODES);
  const supported = supportedModes(bundle);
  if (!supported.includes(mode)) {
    // What adds it: the converter of issue 24 (IP-Adapter tokens, the reference-attention UNet variant), or a VAE encoder export.
    const why = TOKEN_MODES.includes(mode) ? 'has no neighbour slots or no image_proj model; `ragdiff convert ip-adapter` adds them'
      : mode === 'reference-attention' ? 'declares no reference-attention UNet variant; `ragdiff convert reference-attention` adds it' : 'has no VAE encoder; export vae_encoder with the bundle';
    throw new RagdiffError('UNSUPPORTED', `retrieval mode "${mode}" needs what this bundle lacks (it ${why}); it supports: ${supported.length ? supported.join(', ') : 'none'}`);
  }
  const tokenMode = TOKEN_MODES.includes(mode);

  const queryInFirstSlot = o.queryInFirstSlot ?? false;
  assertBoolean('retrieval.queryInFirstSlot', queryInFirstSlot);
  if (queryInFirstSlot && !tokenMode) throw rangeError('INVALID_VALUE', `retrieval.queryInFirstSlot applies to the token modes, not "${mode}"`);
  const maxK = tokenMode ? bundle.slots - (queryInFirstSlot ? 1 : 0) : MAX_REFERENCES;
  const k = o.k ?? (tokenMode ? maxK : 1);
  assertInteger('retrieval.k', k, 1, Math.max(1, maxK));
  if (tokenMode && k > maxK) throw rangeError('OUT_OF_RANGE', `retrieval.k must be at most ${maxK} (the bundle's neighbour slots) in mode "${mode}"`);

  let query: NormalizedRetrieval['query'];
  let queryKind: NormalizedRetrieval['queryKind'];
  if (o.query === undefined) {
    query = { text: prompt };
    queryKind = 'prompt';
  } else if (typeof o.query === 'string') {
    assertString('retrieval.query', o.query, 10_000);
    query = { text: o.query };
    queryKind = 'text';
  } else if (o.query instanceof Float32Array) {
    // Checked here, before any store work (an empty store would otherwise skip the check).
    query = { embedding: normaliseEmbedding(o.query, o.store.width, 'retrieval.query') };
    queryKind = 'embedding';
  } else if (o.query instanceof Uint8Array) {
    if (o.query.length > MAX_UPLOAD_BYTES) throw rangeError('IMAGE_TOO_LARGE', `retrieval.query image is ${o.query.length} bytes, over ${MAX_UPLOAD_BYTES}`);
    query = { image: o.query };
    queryKind = 'image';
  } else {
    throw typeError('INVALID_TYPE', 'retrieval.query must be a string, image bytes (Uint8Array) or an embedding (Float32Array)');
  }
  if (queryKind === 'prompt' && prompt.trim() === '') throw rangeError('INVALID_VALUE', 'retrieval needs a query: the prompt is empty and no retrieval.query was given');

  const filters: NormalizedRetrieval['filters'] = {
    sources: strings('retrieval.sources', o.sources),
    licences: strings('retrieval.licences', o.licences),
    tags: strings('retrieval.tags', o.tags),
    excludeIds: strings('retrieval.excludeIds', o.excludeIds),
  };
  if (o.minScore !== undefined) {
    assertNumber('retrieval.minScore', o.minScore, -1, 1);
    filters.minScore = o.minScore;
  }

  const references: ReferenceChoice[] = [];
  if (o.references !== undefined) {
    if (!Array.isArray(o.references)) throw typeError('INVALID_TYPE', 'retrieval.references must be an array of { id } or { image } objects');
    if (o.references.length > k) throw rangeError('OUT_OF_RANGE', `retrieval.references has ${o.references.length} references, more than k = ${k}`);
    o.references.forEach((ref, i) => {
      const name = `retrieval.references[${i}]`;
      assertPlainObject(name, ref);
      if ('id' in ref) {
        assertString(`${name}.id`, ref.id, 200);
        if (ref.id.length === 0) throw rangeError('INVALID_VALUE', `${name}.id is empty`);
        references.push({ id: ref.id });
      } else if ('image' in ref) {
        if (!(ref.image instanceof Uint8Array)) throw typeError('INVALID_TYPE', `${name}.image must be a Buffer or Uint8Array of encoded image bytes`);
        if (ref.image.length > MAX_UPLOAD_BYTES) throw rangeError('IMAGE_TOO_LARGE', `${name}.image is ${ref.image.length} bytes, over ${MAX_UPLOAD_BYTES}`);
        for (const f of ['name', 'source', 'licence', 'attribution'] as const) if (ref[f] !== undefined) assertString(`${name}.${f}`, ref[f], 1000);
        references.push({ image: ref.image, name: ref.name, source: ref.source, licence: ref.licence, attribution: ref.attribution });
      } else {
        throw typeError('INVALID_TYPE', `${name} must have an id (a stored image) or an image (bytes)`);
      }
    });
  }

  let textScale = bundle.defaults.textScale ?? guidanceScale;
  let retrievalScale = bundle.defaults.retrievalScale ?? 4;
  if (o.scales !== undefined) {
    assertPlainObject('retrieval.scales', o.scales);
    if (o.scales.text !== undefined) textScale = o.scales.text;
    if (o.scales.retrieval !== undefined) retrievalScale = o.scales.retrieval;
  }
  assertNumber('retrieval.scales.text', textScale, 0, 100);
  assertNumber('retrieval.scales.retrieval', retrievalScale, -100, 100);

  const neighbourWeighting = o.neighbourWeighting ?? 'uniform';
  assertOneOf('retrieval.neighbourWeighting', neighbourWeighting, ['uniform', 'score'] as const);

  const mixture: MixtureOptions = { coarseScale: 6.5, fineBelow: 100, fine: { ...REMODIFFUSE_FINE } };
  if (o.mixture !== undefined) {
    assertPlainObject('retrieval.mixture', o.mixture);
    if (o.mixture.coarseScale !== undefined) mixture.coarseScale = o.mixture.coarseScale;
    if (o.mixture.fineBelow !== undefined) mixture.fineBelow = o.mixture.fineBelow;
    if (o.mixture.fine !== undefined) {
      assertPlainObject('retrieval.mixture.fine', o.mixture.fine);
      mixture.fine = { both: o.mixture.fine.both, text: o.mixture.fine.text, retrieval: o.mixture.fine.retrieval };
    }
  }
  assertNumber('retrieval.mixture.coarseScale', mixture.coarseScale, -100, 100);
  assertNumber('retrieval.mixture.fineBelow', mixture.fineBelow, 0, 100_000);
  for (const f of ['both', 'text', 'retrieval'] as const) assertNumber(`retrieval.mixture.fine.${f}`, mixture.fine[f], -100, 100);

  let textShare = 0.5;
  if (o.interleave !== undefined) {
    assertPlainObject('retrieval.interleave', o.interleave);
    if (o.interleave.textShare !== undefined) textShare = o.interleave.textShare;
  }
  assertNumber('retrieval.interleave.textShare', textShare, 0, 1);

  let referenceInit: NormalizedRetrieval['referenceInit'] = null;
  if (mode === 'reference-init' || (o.referenceInit !== undefined && o.referenceInit !== false)) {
    const ri = o.referenceInit === undefined || o.referenceInit === false ? {} : o.referenceInit;
    assertPlainObject('retrieval.referenceInit', ri);
    const strength = ri.strength ?? bundle.defaults.strength ?? 0.7;
    assertNumber('retrieval.referenceInit.strength', strength, 0, 1);
    if (strength === 0) throw rangeError('OUT_OF_RANGE', 'retrieval.referenceInit.strength must be in (0, 1], got 0');
    const blend = ri.blend ?? (mode === 'reference-init' ? Math.min(k, 16) : Math.min(k, bundle.defaults.blend ?? 1));
    assertInteger('retrieval.referenceInit.blend', blend, 1, Math.min(k, 16));
    if (!bundle.canImg2Img) throw new RagdiffError('UNSUPPORTED', 'retrieval.referenceInit needs a bundle with a VAE encoder; this one has none');
    referenceInit = { strength, blend };
  }

  let referenceAttention: NormalizedRetrieval['referenceAttention'] = null;
  // The bundle's default attention joins the token modes (where it was measured); the other modes stay as published.
  const attentionByDefault = o.referenceAttention === undefined && bundle.defaults.referenceAttention === true && bundle.referenceAttention && TOKEN_MODES.includes(mode);
  if (mode === 'reference-attention' || attentionByDefault || (o.referenceAttention !== undefined && o.referenceAttention !== false)) {
    const ra = o.referenceAttention === undefined || o.referenceAttention === false ? {} : o.referenceAttention;
    assertPlainObject('retrieval.referenceAttention', ra);
    const fidelity = ra.fidelity ?? bundle.defaults.fidelity ?? 1;
    assertNumber('retrieval.referenceAttention.fidelity', fidelity, 0, 1);
    const blend = ra.blend ?? (mode === 'reference-attention' ? Math.min(k, 16) : 1);
    assertInteger('retrieval.referenceAttention.blend', blend, 1, Math.min(k, 16));
    const branches = ra.branches ?? bundle.defaults.attentionBranches ?? 'prompt';
    if (branches !== 'prompt' && branches !== 'retrieval') throw rangeError('INVALID_VALUE', `retrieval.referenceAttention.branches must be 'prompt' or 'retrieval', got ${JSON.stringify(branches)}`);
    if (!bundle.referenceAttention) throw new RagdiffError('UNSUPPORTED', 'retrieval.referenceAttention needs a bundle with a reference-attention UNet variant (ragdiff.variants.reference_attention)');
    referenceAttention = { fidelity, blend, branches };
  }

  let reflective: NormalizedRetrieval['reflective'] = null;
  if (o.reflective !== undefined && o.reflective !== false) {
    const rf = o.reflective === true ? {} : o.reflective;
    assertPlainObject('retrieval.reflective', rf);
    reflective = { lambda: rf.lambda ?? 0.5, draftSteps: rf.draftSteps ?? 6, candidates: rf.candidates ?? Math.max(4 * k, 16) };
    assertNumber('retrieval.reflective.lambda', reflective.lambda, 0, 10);
    assertInteger('retrieval.reflective.draftSteps', reflective.draftSteps, 1, 100);
    assertInteger('retrieval.reflective.candidates', reflective.candidates, k, 1000);
  }

  let retrieveOnly: NormalizedRetrieval['retrieveOnly'] = null;
  if (o.retrieveOnly !== undefined) {
    assertPlainObject('retrieval.retrieveOnly', o.retrieveOnly);
    assertNumber('retrieval.retrieveOnly.above', o.retrieveOnly.above, -1, 1);
    const alsoGenerate = o.retrieveOnly.alsoGenerate ?? false;
    assertBoolean('retrieval.retrieveOnly.alsoGenerate', alsoGenerate);
    retrieveOnly = { above: o.retrieveOnly.above, alsoGenerate };
  }

  return {
    store: o.store, mode, k, query, queryKind, filters, references, textScale, retrievalScale, queryInFirstSlot,
    neighbourWeighting, mixture, textShare, referenceInit, referenceAttention, reflective, retrieveOnly,
  };
}
