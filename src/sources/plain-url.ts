/**
 * A reference given as an image URL (`references: [{ url }]`, `--ref-url`):
 * no search, one candidate. Its form is checked at once (scheme, credentials,
 * literal private addresses) so bad input fails before any work.
 */
import { checkUrlForm } from '../net/index.js';
import { assertPlainObject, assertString } from '../validate.js';
import { attributionLine, normaliseLicence } from './licence.js';
import type { SourceCandidate } from './types.js';

export interface UrlReference {
  url: string;
  title?: string;
  creator?: string;
  licence?: string;
  licenceUrl?: string;
  landingUrl?: string;
}

export function urlCandidate(ref: UrlReference, where: string, allowHosts: readonly string[] = []): SourceCandidate {
  assertPlainObject(where, ref);
  assertString(`${where}.url`, ref.url, 4096);
  for (const f of ['title', 'creator', 'licence', 'licenceUrl', 'landingUrl'] as const) if (ref[f] !== undefined) assertString(`${where}.${f}`, ref[f], 1000);
  const u = checkUrlForm(ref.url, allowHosts);
  const licence = normaliseLicence(ref.licence);
  let title = ref.title ?? (u.pathname.split('/').pop() || u.host);
  try {
    title = decodeURIComponent(title);
  } catch {
    // keep the encoded form
  }
  title = title.slice(0, 200);
  const creator = ref.creator ?? '';
  return {
    url: u.href, title, creator, licence, ...(ref.licenceUrl ? { licenceUrl: ref.licenceUrl } : {}),
    landingUrl: ref.landingUrl ?? u.href, attribution: creator ? attributionLine(title, creator, licence) : '', source: 'url',
  };
}
