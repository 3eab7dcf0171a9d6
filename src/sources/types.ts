/**
 * The live-source port: something that answers a text query with candidate
 * images found online (Openverse, Wikimedia Commons, an operator's own search
 * API, plain URLs). A connector only searches; fetching, decoding, screening
 * and embedding the images is the retrieval layer's job (live-references.ts).
 */
import type { Connector, Resolver } from '../net/index.js';
import type { HostLimiter } from './politeness.js';

/** One image a source offers, with what is needed to credit it. */
export interface SourceCandidate {
  /** The full image. */
  url: string;
  /** A smaller rendition, fetched in preference when present. */
  thumbnailUrl?: string;
  title: string;
  creator: string;
  /** Normalised (CC0-1.0, CC-BY-4.0, CC-BY-SA-4.0, PDM, …) or 'unknown'. */
  licence: string;
  licenceUrl?: string;
  /** The page that describes the image (where a reader checks the licence). */
  landingUrl?: string;
  /** A ready-made credit line ("title" by creator, licence). */
  attribution: string;
  /** The connector's name. */
  source: string;
}

export interface SearchBudget {
  /** Wall time for the whole live retrieval, in ms. */
  ms?: number;
  /** Image bytes fetched at most (search answers are capped apart, SourceContext.maxAnswerBytes). */
  bytes?: number;
  /** Images fetched at most over all sources. */
  images?: number;
}

export interface SearchOptions {
  k: number;
  /** Normalised licence ids wanted; a candidate under any other licence is dropped. */
  licences?: readonly string[];
  signal?: AbortSignal;
  budget?: SearchBudget;
}

/** How connectors reach the network: always the SSRF-checked fetcher (src/net). */
export interface SourceContext {
  /** Hosts exempt from the private-address checks (a mirror, a loopback fake). */
  allowHosts: readonly string[];
  userAgent: string;
  /** Largest search answer accepted, in bytes. */
  maxAnswerBytes: number;
  timeoutMs: number;
  limiter: HostLimiter;
  resolve?: Resolver;
  connect?: Connector;
}

export interface LiveSource {
  readonly name: string;
  search(query: string, options: SearchOptions): Promise<SourceCandidate[]>;
}
