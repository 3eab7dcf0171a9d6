/**
 * Openverse (https://api.openverse.org/v1/images/): openly licensed images.
 * Answers `{ result_count, page_count, page_size, page, results: [{ url,
 * thumbnail, title, creator, license, license_version, license_url,
 * foreign_landing_url, attribution, mature, … }] }`. Mature results are
 * dropped; a 429 is retried once after its Retry-After (http-json.ts).
 */
import { RagdiffError } from '../errors.js';
import { getJson, str } from './http-json.js';
import { attributionLine, licenceAllowed, normaliseLicence } from './licence.js';
import type { LiveSource, SearchOptions, SourceCandidate, SourceContext } from './types.js';

export const OPENVERSE_URL = 'https://api.openverse.org';

/** Openverse's `license` parameter spells licences as cc0, by, by-sa, pdm, …. */
function licenceParam(ids: readonly string[]): string {
  const out = new Set<string>();
  for (const id of ids) {
    const n = normaliseLicence(id);
    if (n === 'CC0-1.0') out.add('cc0');
    else if (n === 'PDM') out.add('pdm');
    else if (n.startsWith('CC-')) out.add(n.slice(3).replace(/-\d.*$/, '').toLowerCase());
  }
  return [...out].join(',');
}

export function openverseSource(ctx: SourceContext, base = OPENVERSE_URL, name = 'openverse'): LiveSource {
  return {
    name,
    async search(query: string, o: SearchOptions): Promise<SourceCandidate[]> {
      const u = new URL('v1/images/', base.endsWith('/') ? base : `${base}/`);
      u.searchParams.set('q', query);
      u.searchParams.set('page_size', String(Math.min(Math.max(o.k * 2, o.k), 50)));
      u.searchParams.set('mature', 'false');
      if (o.licences?.length) {
        const l = licenceParam(o.licences);
        if (l) u.searchParams.set('license', l);
      }
      const { body } = await getJson(u.href, ctx, o.signal);
      const results = (body as { results?: unknown })?.results;
      if (!Array.isArray(results)) throw new RagdiffError('SOURCE_BAD_ANSWER', `${name} answered without a results array`);
      const out: SourceCandidate[] = [];
      for (const r of results as Record<string, unknown>[]) {
        if (!r || typeof r !== 'object' || r.mature === true) continue;
        const url = str(r.url);
        if (!url) continue;
        const licence = normaliseLicence(str(r.license), str(r.license_version));
        if (!licenceAllowed(licence, o.licences)) continue;
        const title = str(r.title);
        const creator = str(r.creator);
        out.push({
          url, ...(str(r.thumbnail) ? { thumbnailUrl: str(r.thumbnail) } : {}), title, creator, licence,
          ...(str(r.license_url) ? { licenceUrl: str(r.license_url) } : {}),
          ...(str(r.foreign_landing_url) ? { landingUrl: str(r.foreign_landing_url) } : {}),
          attribution: str(r.attribution) || (creator ? attributionLine(title, creator, licence) : ''), source: name,
        });
        if (out.length >= o.k) break;
      }
      return out;
    },
  };
}
