/**
 * An operator's own image search service, described rather than coded: a URL
 * template (`{query}` and `{k}` are filled in, URL-encoded), the path of the
 * results array in the answer, and the path of each field inside one result.
 * A path the answer does not have is SOURCE_CONFIG naming it: a wrong config
 * should be fixed, not silently yield nothing.
 */
import { RagdiffError } from '../errors.js';
import { getJson, readPath, str } from './http-json.js';
import { attributionLine, licenceAllowed, normaliseLicence } from './licence.js';
import type { LiveSource, SearchOptions, SourceCandidate, SourceContext } from './types.js';

export interface GenericJsonConfig {
  name: string;
  /** e.g. "https://search.intranet/api?q={query}&limit={k}" */
  url: string;
  /** Path of the results array ("" when the answer is the array). */
  results: string;
  fields: { url: string; thumbnailUrl?: string; title?: string; creator?: string; licence?: string; licenceUrl?: string; landingUrl?: string };
  /** A licence for results that carry none (a private catalogue's own terms). */
  defaultLicence?: string;
}

const FIELDS = ['url', 'thumbnailUrl', 'title', 'creator', 'licence', 'licenceUrl', 'landingUrl'] as const;

export function checkGenericConfig(c: unknown, where: string): GenericJsonConfig {
  const bad = (msg: string) => new RagdiffError('SOURCE_CONFIG', `${where}: ${msg}`);
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw bad('must be an object');
  const o = c as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['name', 'type', 'url', 'results', 'fields', 'defaultLicence'].includes(k)) throw bad(`unknown key ${JSON.stringify(k)}`);
  if (typeof o.name !== 'string' || !/^[a-z][a-z0-9-]{0,39}$/.test(o.name)) throw bad('name must be 1-40 lower-case letters, digits or dashes');
  if (typeof o.url !== 'string' || !o.url.includes('{query}')) throw bad('url must be a string with a {query} placeholder');
  // The query fills the path or the query string, never the scheme or host: a prompt must not choose where requests go.
  const origin = /^https?:\/\/[^/?#]*/i.exec(o.url);
  if (!origin || origin[0].includes('{')) throw bad('url must start with http(s)://host, with {query} and {k} only in its path or query string');
  if (typeof o.results !== 'string') throw bad('results must be the path of the results array ("" for the answer itself)');
  const f = o.fields as Record<string, unknown> | undefined;
  if (!f || typeof f !== 'object' || typeof f.url !== 'string' || f.url === '') throw bad('fields.url (the path of the image URL in one result) is required');
  for (const k of Object.keys(f)) {
    if (!(FIELDS as readonly string[]).includes(k)) throw bad(`unknown field ${JSON.stringify(k)} (known: ${FIELDS.join(', ')})`);
    if (typeof f[k] !== 'string') throw bad(`fields.${k} must be a path string`);
  }
  if (o.defaultLicence !== undefined && typeof o.defaultLicence !== 'string') throw bad('defaultLicence must be a string');
  return { name: o.name, url: o.url, results: o.results, fields: f as GenericJsonConfig['fields'], ...(o.defaultLicence ? { defaultLicence: o.defaultLicence } : {}) };
}

export function genericJsonSource(ctx: SourceContext, config: GenericJsonConfig): LiveSource {
  return {
    name: config.name,
    async search(query: string, o: SearchOptions): Promise<SourceCandidate[]> {
      const url = config.url.replaceAll('{query}', encodeURIComponent(query)).replaceAll('{k}', String(o.k));
      const { body } = await getJson(url, ctx, o.signal);
      const list = config.results === '' ? body : readPath(body, config.results);
      if (list === undefined) throw new RagdiffError('SOURCE_CONFIG', `${config.name}: the answer has no field at results path ${JSON.stringify(config.results)}`);
      if (!Array.isArray(list)) throw new RagdiffError('SOURCE_BAD_ANSWER', `${config.name}: ${JSON.stringify(config.results)} is not an array`);
      const out: SourceCandidate[] = [];
      for (const [i, item] of list.entries()) {
        const get = (f: (typeof FIELDS)[number]) => {
          const path = config.fields[f];
          if (path === undefined) return '';
          const v = readPath(item, path);
          if (v === undefined && f === 'url') throw new RagdiffError('SOURCE_CONFIG', `${config.name}: result ${i} has no field at fields.url path ${JSON.stringify(path)}`);
          return str(v);
        };
        const imageUrl = get('url');
        if (!imageUrl) continue;
        const licence = normaliseLicence(get('licence') || config.defaultLicence);
        if (!licenceAllowed(licence, o.licences)) continue;
        const title = get('title');
        const creator = get('creator');
        const thumb = get('thumbnailUrl');
        const licenceUrl = get('licenceUrl');
        const landing = get('landingUrl');
        out.push({
          url: imageUrl, ...(thumb ? { thumbnailUrl: thumb } : {}), title, creator, licence, ...(licenceUrl ? { licenceUrl } : {}),
          ...(landing ? { landingUrl: landing } : {}), attribution: creator ? attributionLine(title, creator, licence) : '', source: config.name,
        });
        if (out.length >= o.k) break;
      }
      return out;
    },
  };
}
