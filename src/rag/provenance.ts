/**
 * Provenance: every output says which references shaped it. The record goes
 * into the PNG's `ragdiff` JSON chunk (through the pipeline's `provenance`
 * field) and comes back out with {@link readProvenance} (`ragdiff explain`).
 */
import { basename } from 'node:path';
import { RagdiffError } from '../errors.js';
import { readPngText } from '../image/png-text.js';
import type { NormalizedRetrieval } from './options.js';
import type { ReferenceUse, RetrievalMode, ReferenceSource } from './types.js';

export interface ProvenanceRecord {
  retrieval: {
    mode: RetrievalMode;
    k: number;
    query: { kind: NormalizedRetrieval['queryKind']; text?: string };
    scales: { text: number; retrieval: number };
    queryInFirstSlot?: boolean;
    referenceInit?: { strength: number; blend: number };
    referenceAttention?: { fidelity: number; blend: number };
    reflective?: { lambda: number; draftSteps: number };
    /** The store: its folder name, encoder and change sequence at query time. */
    store: { name: string; encoderId: string; seq: number };
    skipped?: string;
  };
  references: ReferenceUse[];
  /** The safety policy in force when the image was made. */
  policy?: { version: string; hash: string };
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

export function provenanceRecord(r: NormalizedRetrieval, store: ReferenceSource, refs: ReferenceUse[], skipped?: string, policy?: { version: string; hash: string }): ProvenanceRecord {
  const st = store.stats();
  return {
    retrieval: {
      mode: r.mode,
      k: r.k,
      query: { kind: r.queryKind, ...('text' in r.query ? { text: r.query.text.slice(0, 1000) } : {}) },
      scales: { text: r.textScale, retrieval: r.retrievalScale },
      ...(r.queryInFirstSlot ? { queryInFirstSlot: true } : {}),
      ...(r.referenceInit ? { referenceInit: r.referenceInit } : {}),
      ...(r.referenceAttention ? { referenceAttention: r.referenceAttention } : {}),
      ...(r.reflective ? { reflective: { lambda: r.reflective.lambda, draftSteps: r.reflective.draftSteps } } : {}),
      store: { name: basename(store.dir), encoderId: st.encoderId, seq: st.seq },
      ...(skipped ? { skipped } : {}),
    },
    references: refs.map((u) => ({ ...u, score: round(u.score), influence: round(u.influence) })),
    ...(policy ? { policy: { version: policy.version, hash: policy.hash } } : {}),
  };
}

export interface ExplainedImage {
  /** The generation parameters (prompt, seed, steps, model hash, …). */
  parameters: Record<string, unknown>;
  /** Present when the image was generated with retrieval. */
  provenance?: ProvenanceRecord;
  /** The safety policy in force (with or without retrieval). */
  policy?: { version: string; hash: string };
}

/** Reads the parameters and the provenance record back from a ragdiff PNG. */
export function readProvenance(png: Uint8Array): ExplainedImage {
  const text = readPngText(png);
  const raw = text.ragdiff;
  if (raw === undefined) throw new RagdiffError('NO_PROVENANCE', 'the PNG has no ragdiff chunk: it was not made by ragdiff, or its metadata was stripped');
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(raw) as Record<string, unknown>;
  } catch (e) {
    throw new RagdiffError('NO_PROVENANCE', `the PNG's ragdiff chunk is not valid JSON: ${(e as Error).message}`);
  }
  const { provenance, ...parameters } = parsed;
  const p = provenance as Partial<ProvenanceRecord> | undefined;
  // Plain generation under a policy records { policy } only: not a retrieval record.
  return { parameters, ...(p?.retrieval ? { provenance: p as ProvenanceRecord } : {}), ...(p?.policy ? { policy: p.policy } : {}) };
}
