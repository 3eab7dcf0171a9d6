/**
 * The request and result of retrieval-augmented generation, and the narrow view
 * of an image store the retrieval layer needs. `ImageStore` satisfies
 * {@link ReferenceSource}; a later backend (PostgreSQL/pgvector) only has to
 * provide these methods.
 */
import type { GenerateRequest, GenerateResult, GenerateStats, GeneratedImage } from '../pipeline/index.js';
import type { QueryHit, QueryRequest, ReferenceEmbedding, StoredImage } from '../store/index.js';
import type { SourceStats } from '../sources/live-references.js';

/** What the retrieval layer reads from a store. */
export interface ReferenceSource {
  readonly dir: string;
  /** Active (searchable) images. */
  readonly size: number;
  /** Embedding width. */
  readonly width: number;
  stats(): { encoderId: string; dim: number; seq: number };
  query(request: QueryRequest): Promise<QueryHit[]>;
  get(id: string): StoredImage | undefined;
  embeddingOf(id: string): Float32Array | undefined;
  readImage(id: string): Buffer;
  embedReference(bytes: Uint8Array, options?: { purpose?: 'reference' | 'query' }): Promise<ReferenceEmbedding>;
}

/**
 * How retrieved references enter generation (see ../../shared/METHODS.md):
 * - `tokens`: RDM / kNN-Diffusion — projected neighbour embeddings fill the UNet's neighbour slots,
 *   eps = e(∅,0) + s_t·(e(T,0) − e(∅,0)) + s_r·(e(T,R) − e(T,0)).
 * - `mixture`: ReMoDiffuse condition mixture over both / text / retrieval / none branches.
 * - `interleaved`: Re-Imagen — steps alternate between text guidance and retrieval guidance.
 * - `reference-init`: SDEdit-style start from the references' noised VAE latent, then text CFG
 *   (works on any bundle with a VAE encoder). `referenceInit` adds the same start to the other modes.
 * - `reference-attention`: training-free "reference-only" attention — the UNet's self-attention also
 *   attends to the reference's noised latent (needs the bundle's reference-attention UNet variant) in
 *   every branch that carries the prompt, then text CFG. `referenceAttention` adds it to the other modes.
 */
export type RetrievalMode = 'tokens' | 'mixture' | 'interleaved' | 'reference-init' | 'reference-attention';
export const RETRIEVAL_MODES: readonly RetrievalMode[] = ['tokens', 'mixture', 'interleaved', 'reference-init', 'reference-attention'];

/** A reference the user chose: a stored image by id, or image bytes uploaded for this request only. */
export type ReferenceChoice =
  | { id: string }
  | { image: Uint8Array; name?: string; source?: string; licence?: string; attribution?: string }
  /** An image URL, fetched for this request through the SSRF-checked fetcher (src/sources/plain-url.ts). */
  | { url: string; title?: string; creator?: string; licence?: string; licenceUrl?: string; landingUrl?: string };

export interface RetrievalOptions {
  store: ReferenceSource;
  /** References used (pinned ones included). Token modes: at most the bundle's neighbour slots. Default: the slots (4 for tiny-emoji), or 1 for reference-init. */
  k?: number;
  /** What to search with. Default: the prompt. A string is a text query, bytes an image query, a Float32Array an embedding. */
  query?: string | Uint8Array | Float32Array;
  sources?: string[];
  licences?: string[];
  tags?: string[];
  excludeIds?: string[];
  /** Retrieved references scoring below this are not used. */
  minScore?: number;
  /** Pinned: always used, ahead of retrieved ones. */
  references?: ReferenceChoice[];
  mode?: RetrievalMode;
  /** s_t (text) and s_r (retrieval) guidance scales. Defaults: the bundle's `ragdiff.retrieval.scales`, else text = guidanceScale, retrieval = 4. */
  scales?: { text?: number; retrieval?: number };
  /** RDM's sample_with_query: the query's own embedding in the first neighbour slot (token modes). */
  queryInFirstSlot?: boolean;
  /** Relevance weights per neighbour slot: 'uniform' (default) or 'score' (softmax of scores / temperature 0.05). */
  neighbourWeighting?: 'uniform' | 'score';
  /** ReMoDiffuse: coarse scale for t > fineBelow; fine constants for t ≤ fineBelow (published HumanML3D fit by default). */
  mixture?: { coarseScale?: number; fineBelow?: number; fine?: { both: number; text: number; retrieval: number } };
  /** Re-Imagen: share of steps that guide on text (the rest guide on retrieval). Default 0.5. */
  interleave?: { textShare?: number };
  /** Start from the blended VAE latent of the top `blend` references at `strength` (mode reference-init, or added to any mode). */
  referenceInit?: { strength?: number; blend?: number } | false;
  /**
   * Reference attention with `fidelity` ∈ [0, 1] over the blended latent of the top `blend` references (mode reference-attention, or added to any mode).
   * `branches`: 'prompt' (default) — every guidance branch that carries the prompt attends to the reference;
   * 'retrieval' — only the branches that carry neighbour tokens (token modes), so the retrieval scale s_r
   * amplifies the reference as it amplifies the neighbour tokens (in modes without such a branch, same as 'prompt').
   */
  referenceAttention?: { fidelity?: number; blend?: number; branches?: 'prompt' | 'retrieval' } | false;
  /** RealRAG-style training-free re-ranking against a cheap draft: sim(query, ref) − λ·sim(draft, ref). */
  reflective?: boolean | { lambda?: number; draftSteps?: number; candidates?: number };
  /** TIGeR: when the best reference scores ≥ `above`, return it flagged `retrieved` (and generate too only with alsoGenerate). */
  retrieveOnly?: { above: number; alsoGenerate?: boolean };
  /**
   * Where to search: 'store' and/or live sources the operator enabled ('openverse', 'commons', a configured one),
   * each a name or { source, k, required }. Default ['store']: without it, nothing goes online.
   */
  from?: (string | { source: string; k?: number; required?: boolean })[];
  /** Bounds on the live sources: wall ms, bytes and images fetched (defaults 15 000 ms, 64 MiB, 32). */
  budget?: { ms?: number; bytes?: number; images?: number };
  /** Write the live references used into a store (true: the retrieval store), with their provenance. Default: nothing is written. */
  cache?: boolean | { add: ImageStoreAdd };
}
type ImageStoreAdd = (inputs: readonly { bytes: Uint8Array; origin?: string; meta?: { source?: string; licence?: string; attribution?: string; name?: string } }[]) => Promise<{ added: number; skipped: number; failed: number }>;

export type RagRequest = Omit<GenerateRequest, 'guidance' | 'initImage' | 'initImages' | 'provenance'> & {
  /** Without it, plain generation. */
  retrieval?: RetrievalOptions;
  /** Plain image-to-image; cannot be combined with retrieval's reference-init. */
  initImage?: Uint8Array;
};

/** How a reference shaped the images. */
export type ReferenceUsage =
  | { as: 'token-slot'; slot: number; weight: number }
  | { as: 'init-latent'; weight: number; strength: number }
  | { as: 'attention'; weight: number; fidelity: number }
  | { as: 'query-slot'; slot: 0 }
  | { as: 'retrieved-answer' };

/** One reference in the result and the provenance record. */
export interface ReferenceUse {
  kind: 'stored' | 'upload';
  /** Store id (stored images). */
  id?: string;
  sha256: string;
  /** Cosine similarity to the query (re-ranked score with reflective). */
  score: number;
  /** 1-based position among the references used, in order of influence. */
  rank: number;
  pinned: boolean;
  source: string;
  licence: string;
  attribution: string;
  name: string;
  /** Live references: the image URL, its page, its creator and licence text (src/sources). */
  url?: string;
  landingUrl?: string;
  creator?: string;
  licenceUrl?: string;
  usage: ReferenceUsage[];
  /** Share of the retrieval conditioning this reference carried (sums to 1 over the references). */
  influence: number;
}

export interface RetrievalStats {
  mode: RetrievalMode;
  k: number;
  /** Why retrieval was skipped (e.g. an empty store), when it was. */
  skipped?: string;
  candidates: number;
  /** References a screen refused (id or upload hash, reason). */
  screened: { ref: string; reason: string }[];
  queryMs: number;
  searchMs: number;
  uploadsMs: number;
  screenMs: number;
  /** Reflective re-ranking: the draft generation, and the re-ranking itself. */
  draftMs: number;
  rerankMs: number;
  planMs: number;
  /** Everything the retrieval layer did before handing the request to the pipeline. */
  totalMs: number;
  /** Live sources asked (src/sources): per source asked, answered, fetched, screenedOut, used, ms, error code. */
  sources?: SourceStats[];
  /** Wall time of the live stage (searches, fetches, gate, screens, embeddings). */
  liveMs?: number;
  /** retrieval.cache: what was written into the store. */
  cached?: { added: number; skipped: number; failed: number };
}

export type RagImage = GeneratedImage & { references: ReferenceUse[] };

export interface RagResult extends Omit<GenerateResult, 'images' | 'stats' | 'parameters'> {
  /** The generation parameters (absent when retrieve-only answered without generating). */
  parameters?: GenerateResult['parameters'];
  images: RagImage[];
  /** The references used, in order of influence (the same for every image of the batch). */
  references: ReferenceUse[];
  /** Retrieve-only: the stored image that answered the query. */
  retrieved?: { png: Buffer; reference: ReferenceUse };
  /** Generated images the output screen refused (left out of `images`). Present when an output screen is set. */
  blocked?: { seed: number; index: number; rule: string; score: number }[];
  /** The safety policy in force (also in every image's provenance). */
  policy?: { version: string; hash: string };
  stats: Partial<GenerateStats> & { retrieval?: RetrievalStats; outputScreenMs?: number };
}
