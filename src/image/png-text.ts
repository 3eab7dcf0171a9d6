/**
 * PNG text chunks: write the generation parameters into an encoded PNG the way
 * other image generators do (a `parameters` chunk that A1111-style readers
 * show), and read them back.
 *
 * Latin-1 text goes in a `tEXt` chunk; anything else in an uncompressed UTF-8
 * `iTXt` chunk (PNG 1.2 §11.3.4). New chunks are inserted right after IHDR so
 * readers that stop early still see them. The CRC is zlib's CRC-32.
 */
import { crc32 } from 'node:zlib';
import { RagdiffError, rangeError, typeError } from '../errors.js';

export const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** One PNG chunk: length, type, data, CRC-32 over type and data. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export interface PngChunk {
  type: string;
  /** Offset of the chunk's length field in the file. */
  offset: number;
  data: Uint8Array;
}

function corrupt(message: string): RagdiffError {
  return new RagdiffError('IMAGE_CORRUPT', `PNG: ${message}`);
}

/** Lists the chunks of a PNG, checking the signature, lengths and the IHDR-first / IEND-last structure (not CRCs). */
export function pngChunks(png: Uint8Array): PngChunk[] {
  if (!(png instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'png must be a Buffer or Uint8Array');
  if (png.length < 8 || PNG_SIGNATURE.some((b, i) => png[i] !== b)) throw corrupt('missing PNG signature');
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: PngChunk[] = [];
  let at = 8;
  while (at < png.length) {
    if (at + 12 > png.length) throw corrupt(`truncated chunk header at byte ${at}`);
    const length = view.getUint32(at);
    const type = String.fromCharCode(png[at + 4]!, png[at + 5]!, png[at + 6]!, png[at + 7]!);
    if (at + 12 + length > png.length) throw corrupt(`chunk ${type} at byte ${at} runs past the end of the file`);
    chunks.push({ type, offset: at, data: png.subarray(at + 8, at + 8 + length) });
    at += 12 + length;
    if (type === 'IEND') break;
  }
  if (chunks[0]?.type !== 'IHDR') throw corrupt('first chunk is not IHDR');
  if (chunks[chunks.length - 1]?.type !== 'IEND') throw corrupt('no IEND chunk');
  return chunks;
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || c === 0) return false;
  }
  return true;
}

function checkKeyword(keyword: string): void {
  if (typeof keyword !== 'string') throw typeError('INVALID_TYPE', 'PNG text keyword must be a string');
  // PNG: 1-79 Latin-1 printable characters, no leading/trailing/double spaces.
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword) || /^ | $| {2}/.test(keyword)) {
    throw rangeError('INVALID_VALUE', `PNG text keyword must be 1-79 printable Latin-1 characters without leading, trailing or double spaces, got ${JSON.stringify(keyword)}`);
  }
}

/** Builds one tEXt (Latin-1 text) or iTXt (any other text, UTF-8, uncompressed) chunk, length and CRC included. */
export function textChunk(keyword: string, text: string): Uint8Array {
  checkKeyword(keyword);
  if (typeof text !== 'string') throw typeError('INVALID_TYPE', 'PNG text must be a string');
  let type: string;
  let body: Uint8Array;
  const key = Buffer.from(keyword, 'latin1');
  if (isLatin1(text)) {
    type = 'tEXt';
    body = Buffer.concat([key, Uint8Array.of(0), Buffer.from(text, 'latin1')]);
  } else {
    type = 'iTXt';
    // keyword \0 compression-flag(0) compression-method(0) language-tag \0 translated-keyword \0 text
    body = Buffer.concat([key, Uint8Array.of(0, 0, 0, 0, 0), Buffer.from(text, 'utf8')]);
  }
  if (body.length > 0x7fffffff) throw rangeError('OUT_OF_RANGE', 'PNG text chunk is too large');
  return pngChunk(type, body);
}

/**
 * Returns a new PNG with the given text entries inserted after IHDR. Existing
 * text chunks with the same keywords are removed, so re-tagging replaces.
 */
export function withPngText(png: Uint8Array, entries: Record<string, string>): Buffer {
  const chunks = pngChunks(png);
  const keys = Object.keys(entries);
  for (const k of keys) checkKeyword(k);
  const parts: Uint8Array[] = [png.subarray(0, 8)];
  for (const c of chunks) {
    const end = c.offset + 12 + c.data.length;
    if ((c.type === 'tEXt' || c.type === 'iTXt' || c.type === 'zTXt') && keys.includes(keywordOf(c.data))) continue;
    parts.push(png.subarray(c.offset, end));
    if (c.type === 'IHDR') for (const k of keys) parts.push(textChunk(k, entries[k]!));
  }
  return Buffer.concat(parts);
}

function keywordOf(data: Uint8Array): string {
  const nul = data.indexOf(0);
  return Buffer.from(data.subarray(0, nul < 0 ? data.length : nul)).toString('latin1');
}

/** Reads every tEXt and uncompressed iTXt entry (compressed iTXt and zTXt are skipped). */
export function readPngText(png: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of pngChunks(png)) {
    if (c.type === 'tEXt') {
      const nul = c.data.indexOf(0);
      if (nul < 0) continue;
      out[keywordOf(c.data)] = Buffer.from(c.data.subarray(nul + 1)).toString('latin1');
    } else if (c.type === 'iTXt') {
      const nul = c.data.indexOf(0);
      if (nul < 0 || c.data[nul + 1] !== 0) continue; // compressed: not written by ragdiff
      const lang = c.data.indexOf(0, nul + 3);
      const translated = lang < 0 ? -1 : c.data.indexOf(0, lang + 1);
      if (translated < 0) continue;
      out[keywordOf(c.data)] = Buffer.from(c.data.subarray(translated + 1)).toString('utf8');
    }
  }
  return out;
}
