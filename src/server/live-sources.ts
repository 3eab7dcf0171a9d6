/**
 * Live sources over HTTP: which online sources the operator enabled
 * (`GET /v1/sources`; none unless `serve --sources` or `createServer({ sources })`
 * says so), and the live half of a generation body — `retrieval.from`,
 * `retrieval.budget` and `references: [{ url }]` — checked against that list
 * before anything is fetched.
 */
import type { FastifyInstance } from 'fastify';
import type { RetrievalOptions } from '../rag/index.js';
import { STORE_SOURCE, type SourceRegistry } from '../sources/index.js';
import type { ServerContext } from './context.js';
import { HttpError } from './errors.js';

export type LiveBody = {
  from?: (string | { source: string; k?: number; required?: boolean })[];
  budget?: { ms?: number; bytes?: number; images?: number };
};
export type UrlReferenceBody = { url: string; title?: string; creator?: string; licence?: string; licence_url?: string; landing_url?: string };

/** The enabled online sources (an empty list when the operator enabled none). */
export function enabledSources(sources: SourceRegistry | undefined): string[] {
  return sources ? [...sources.enabled] : [];
}

/** The live options of a body, refused (403 SOURCE_NOT_ENABLED) unless the operator enabled them. */
export function liveRetrieval(sources: SourceRegistry | undefined, o: LiveBody, urlRefs: number): Partial<RetrievalOptions> {
  const enabled = enabledSources(sources);
  for (const f of o.from ?? []) {
    const name = typeof f === 'string' ? f : f.source;
    if (name !== STORE_SOURCE && !enabled.includes(name)) {
      throw new HttpError('SOURCE_NOT_ENABLED', `the source ${JSON.stringify(name)} is not enabled on this server (enabled: ${[STORE_SOURCE, ...enabled].join(', ')})`);
    }
  }
  if (urlRefs > 0 && !sources) throw new HttpError('SOURCE_NOT_ENABLED', 'image URLs as references are not enabled on this server (serve --sources url)');
  return { ...(o.from ? { from: o.from } : {}), ...(o.budget ? { budget: o.budget } : {}) };
}

export function urlReference(r: UrlReferenceBody) {
  return {
    url: r.url, ...(r.title !== undefined ? { title: r.title } : {}), ...(r.creator !== undefined ? { creator: r.creator } : {}),
    ...(r.licence !== undefined ? { licence: r.licence } : {}), ...(r.licence_url !== undefined ? { licenceUrl: r.licence_url } : {}),
    ...(r.landing_url !== undefined ? { landingUrl: r.landing_url } : {}),
  };
}

/** JSON schema pieces for the generation body. */
export const liveSchemas = {
  from: {
    type: 'array', minItems: 1, maxItems: 16,
    items: {
      anyOf: [
        { type: 'string', minLength: 1, maxLength: 100 },
        { type: 'object', additionalProperties: false, required: ['source'], properties: { source: { type: 'string', minLength: 1, maxLength: 100 }, k: { type: 'integer', minimum: 1, maximum: 50 }, required: { type: 'boolean' } } },
      ],
    },
  },
  budget: {
    type: 'object', additionalProperties: false,
    properties: { ms: { type: 'integer', minimum: 0, maximum: 600_000 }, bytes: { type: 'integer', minimum: 0 }, images: { type: 'integer', minimum: 0, maximum: 256 } },
  },
  urlReference: {
    type: 'object', additionalProperties: false, required: ['url'],
    properties: {
      url: { type: 'string', minLength: 1, maxLength: 4096 }, title: { type: 'string', maxLength: 500 }, creator: { type: 'string', maxLength: 500 },
      licence: { type: 'string', maxLength: 100 }, licence_url: { type: 'string', maxLength: 4096 }, landing_url: { type: 'string', maxLength: 4096 },
    },
  },
} as const;

export function registerSourceRoutes(app: FastifyInstance, ctx: ServerContext & { sources?: SourceRegistry }): void {
  app.get('/v1/sources', { config: { access: 'read' } }, async () => ({
    sources: [...(ctx.store ? [STORE_SOURCE] : []), ...enabledSources(ctx.sources)],
    urls: ctx.sources !== undefined,
  }));
}
