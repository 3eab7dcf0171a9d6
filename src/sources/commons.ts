/**
 * Wikimedia Commons through the MediaWiki Action API
 * (https://commons.wikimedia.org/w/api.php): a search in the File namespace
 * as a generator, with each file's imageinfo — url, a thumbnail of the asked
 * width and `extmetadata` (LicenseShortName, LicenseUrl, Artist as HTML,
 * ObjectName, AttributionRequired). Both answer layouts are read (formatversion
 * 1: `query.pages` an object keyed by page id; 2: an array). Wikimedia's policy
 * asks for a User-Agent that names the tool and a contact.
 */
import { RagdiffError } from '../errors.js';
import { getJson, str } from './http-json.js';
import { attributionLine, licenceAllowed, normaliseLicence } from './licence.js';
import type { LiveSource, SearchOptions, SourceCandidate, SourceContext } from './types.js';

export const COMMONS_URL = 'https://commons.wikimedia.org/w/api.php';
/** Thumbnail width asked for: the encoders look at 224 px at most. */
const THUMB_WIDTH = 512;

/** HTML (as Commons' Artist field holds it) to plain text: tags dropped, entities decoded, space collapsed. */
export function htmlToText(html: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
  return html
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return Number.isFinite(cp) && cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
      }
      return named[e.toLowerCase()] ?? m;
    })
    .replace(/\s+/g, ' ')
    .trim();
}

const meta = (ext: Record<string, unknown> | undefined, key: string): string => str((ext?.[key] as { value?: unknown } | undefined)?.value);

export function commonsSource(ctx: SourceContext, endpoint = COMMONS_URL, name = 'commons'): LiveSource {
  return {
    name,
    async search(query: string, o: SearchOptions): Promise<SourceCandidate[]> {
      const u = new URL(endpoint);
      const params: Record<string, string> = {
        action: 'query', format: 'json', generator: 'search', gsrsearch: `${query} filetype:bitmap`, gsrnamespace: '6',
        gsrlimit: String(Math.min(Math.max(o.k * 2, o.k), 50)), prop: 'imageinfo', iiprop: 'url|mime|size|extmetadata',
        iiurlwidth: String(THUMB_WIDTH), iiextmetadatafilter: 'LicenseShortName|LicenseUrl|License|Artist|ObjectName|AttributionRequired',
      };
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
      const { body } = await getJson(u.href, ctx, o.signal);
      const b = body as { query?: { pages?: unknown }; error?: { info?: string } };
      if (b?.error) throw new RagdiffError('SOURCE_BAD_ANSWER', `${name} answered an error: ${str(b.error.info).slice(0, 200)}`);
      if (b === null || typeof b !== 'object') throw new RagdiffError('SOURCE_BAD_ANSWER', `${name} answered something other than an object`);
      if (b.query === undefined) return []; // MediaWiki leaves out `query` when the search finds nothing
      const pagesRaw = b.query?.pages;
      const pages = Array.isArray(pagesRaw) ? pagesRaw : pagesRaw && typeof pagesRaw === 'object' ? Object.values(pagesRaw) : null;
      if (!pages) throw new RagdiffError('SOURCE_BAD_ANSWER', `${name} answered without query.pages`);
      // The generator's order is the `index` field, not the object's key order.
      const ordered = (pages as Record<string, unknown>[]).filter((p) => p && typeof p === 'object').sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0));
      const out: SourceCandidate[] = [];
      for (const p of ordered) {
        const info = Array.isArray(p.imageinfo) ? (p.imageinfo[0] as Record<string, unknown> | undefined) : undefined;
        if (!info) continue;
        const url = str(info.url);
        if (!url || !str(info.mime).startsWith('image/')) continue;
        const ext = info.extmetadata as Record<string, unknown> | undefined;
        const licence = normaliseLicence(meta(ext, 'License') || meta(ext, 'LicenseShortName') || meta(ext, 'LicenseUrl'));
        if (!licenceAllowed(licence, o.licences)) continue;
        const creator = htmlToText(meta(ext, 'Artist')).slice(0, 500);
        const title = htmlToText(meta(ext, 'ObjectName')) || str(p.title).replace(/^File:/, '').replace(/\.[a-z0-9]+$/i, '');
        out.push({
          url, ...(str(info.thumburl) ? { thumbnailUrl: str(info.thumburl) } : {}), title, creator, licence,
          ...(meta(ext, 'LicenseUrl') ? { licenceUrl: meta(ext, 'LicenseUrl') } : {}),
          ...(str(info.descriptionurl) ? { landingUrl: str(info.descriptionurl) } : {}),
          attribution: creator ? attributionLine(title, creator, licence) : '', source: name,
        });
        if (out.length >= o.k) break;
      }
      return out;
    },
  };
}
