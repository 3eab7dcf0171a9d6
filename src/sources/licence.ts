/**
 * Licence names as sources spell them ("by-sa" + "4.0", "CC BY-SA 4.0",
 * "cc-by-sa-4.0", "Public domain", a creativecommons.org URL) reduced to one
 * SPDX-like id, so one licence filter applies to every source.
 */

const CC_KINDS = ['by', 'by-sa', 'by-nd', 'by-nc', 'by-nc-sa', 'by-nc-nd'] as const;

/** A normalised id, or 'unknown' when the text names no licence we recognise. */
export function normaliseLicence(raw: string | undefined | null, version?: string | null): string {
  if (typeof raw !== 'string' || raw.trim() === '') return 'unknown';
  let s = raw.trim().toLowerCase();
  const url = /creativecommons\.org\/(licenses|publicdomain)\/([a-z-]+)\/(\d(?:\.\d)?)/.exec(s);
  if (url) {
    if (url[1] === 'publicdomain') return url[2] === 'zero' ? 'CC0-1.0' : 'PDM';
    s = `cc-${url[2]}-${url[3]}`;
  }
  s = s.replace(/[\s_]+/g, '-').replace(/^cc-?/, '');
  if (s === '0' || s === 'zero' || s.startsWith('0-') || s === 'cc0') return 'CC0-1.0';
  if (/^(pdm|public-?domain|pd(-.*)?)$/.test(s)) return 'PDM';
  const m = /^(by(?:-(?:nc|nd|sa))*)(?:-(\d(?:\.\d)?))?$/.exec(s);
  if (m && (CC_KINDS as readonly string[]).includes(m[1]!)) {
    let v = m[2] ?? version?.trim() ?? '';
    if (/^\d$/.test(v)) v = `${v}.0`;
    return `CC-${m[1]!.toUpperCase()}${v ? `-${v}` : ''}`;
  }
  return 'unknown';
}

/** Licences under which an image may not be used without crediting its creator. */
export function requiresAttribution(licence: string): boolean {
  return licence.startsWith('CC-BY');
}

/** True when the candidate's licence passes the filter (absent filter: everything known passes). */
export function licenceAllowed(licence: string, filter: readonly string[] | undefined): boolean {
  if (!filter || filter.length === 0) return true;
  return filter.some((f) => normaliseLicence(f) === licence || f === licence);
}

/** A credit line: "title" by creator (licence). */
export function attributionLine(title: string, creator: string, licence: string): string {
  const who = creator ? ` by ${creator}` : '';
  return `${title ? `"${title}"` : 'image'}${who}, ${licence}`;
}
