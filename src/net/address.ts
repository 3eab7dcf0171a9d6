/**
 * IP address parsing and classification for outbound requests.
 *
 * Hosts arrive in many spellings: `127.0.0.1`, `2130706433`, `0x7f.0.0.1`,
 * `0177.1`, `[::1]`, `[::ffff:127.0.0.1]`, `[::ffff:7f00:1]`, NAT64 and 6to4
 * forms that embed an IPv4 address. Each is reduced to bytes here and then
 * classified, so a check can never be bypassed by writing the same address
 * differently.
 */

export type AddressClass =
  | 'global'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'unspecified'
  | 'shared'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'reserved';

export interface ParsedAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/**
 * Parses an IPv4 address the way inet_aton (and the WHATWG URL parser) does:
 * one to four parts, each decimal, octal (leading 0) or hex (0x); the last
 * part fills the remaining bytes. Returns undefined when `s` is not one.
 */
export function parseIPv4(s: string): Uint8Array | undefined {
  let text = s;
  if (text.endsWith('.')) text = text.slice(0, -1);
  if (text.length === 0) return undefined;
  const parts = text.split('.');
  if (parts.length > 4) return undefined;
  const values: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) v = parseInt(p.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) v = Number(p);
    else return undefined;
    if (!Number.isSafeInteger(v)) return undefined;
    values.push(v);
  }
  const last = values.pop()!;
  for (const v of values) if (v > 255) return undefined;
  const lastBytes = 4 - values.length;
  if (last >= 2 ** (8 * lastBytes)) return undefined;
  const out = new Uint8Array(4);
  values.forEach((v, i) => (out[i] = v));
  for (let i = 0; i < lastBytes; i++) out[3 - i] = Math.floor(last / 2 ** (8 * i)) % 256;
  return out;
}

/** Parses an IPv6 address (brackets optional, no zone id); undefined when not one. */
export function parseIPv6(s: string): Uint8Array | undefined {
  let text = s;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (!text.includes(':') || text.includes('%')) return undefined;
  // An embedded dotted IPv4 tail becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(tail)) return undefined;
    const b = tail.split('.').map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = text.slice(0, lastColon + 1) + ((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  return out;
}

/** Parses any IP literal spelling (IPv4 forms, bracketed or bare IPv6). */
export function parseAddress(s: string): ParsedAddress | undefined {
  const v6 = parseIPv6(s);
  if (v6) return { family: 6, bytes: v6 };
  const v4 = parseIPv4(s);
  if (v4) return { family: 4, bytes: v4 };
  return undefined;
}

export function formatAddress(a: ParsedAddress): string {
  if (a.family === 4) return Array.from(a.bytes).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a.bytes[i]! << 8) | a.bytes[i + 1]!).toString(16));
  return groups.join(':');
}

function inV4(b: Uint8Array, prefix: [number, number, number, number], bits: number): boolean {
  for (let i = 0; i < 4; i++) {
    const take = Math.max(0, Math.min(8, bits - 8 * i));
    if (take === 0) return true;
    const mask = (0xff << (8 - take)) & 0xff;
    if ((b[i]! & mask) !== (prefix[i]! & mask)) return false;
  }
  return true;
}

/** Known cloud metadata endpoints (they also fall in link-local / shared / private ranges). */
const METADATA_V4 = ['169.254.169.254', '169.254.170.2', '169.254.169.253', '100.100.100.200', '192.0.0.192'];
const METADATA_V6 = ['fd00:ec2:0:0:0:0:0:254'];

function classifyV4(b: Uint8Array): AddressClass {
  const dotted = Array.from(b).join('.');
  if (METADATA_V4.includes(dotted)) return 'metadata';
  if (inV4(b, [0, 0, 0, 0], 8)) return 'unspecified';
  if (inV4(b, [127, 0, 0, 0], 8)) return 'loopback';
  if (inV4(b, [10, 0, 0, 0], 8) || inV4(b, [172, 16, 0, 0], 12) || inV4(b, [192, 168, 0, 0], 16)) return 'private';
  if (inV4(b, [169, 254, 0, 0], 16)) return 'link-local';
  if (inV4(b, [100, 64, 0, 0], 10)) return 'shared';
  if (inV4(b, [255, 255, 255, 255], 32)) return 'broadcast';
  if (inV4(b, [224, 0, 0, 0], 4)) return 'multicast';
  if (inV4(b, [192, 0, 2, 0], 24) || inV4(b, [198, 51, 100, 0], 24) || inV4(b, [203, 0, 113, 0], 24)) return 'documentation';
  if (inV4(b, [192, 0, 0, 0], 24) || inV4(b, [192, 88, 99, 0], 24) || inV4(b, [198, 18, 0, 0], 15) || inV4(b, [240, 0, 0, 0], 4)) {
    return 'reserved';
  }
  return 'global';
}

/** Classifies an address; IPv6 forms that embed IPv4 are classified by the embedded address. */
export function classifyAddress(a: ParsedAddress): AddressClass {
  const b = a.bytes;
  if (a.family === 4) return classifyV4(b);
  const word = (i: number) => (b[2 * i]! << 8) | b[2 * i + 1]!;
  const zeroUpTo = (n: number) => b.subarray(0, n).every((x) => x === 0);
  if (METADATA_V6.includes(formatAddress(a))) return 'metadata';
  if (zeroUpTo(15) && b[15] === 0) return 'unspecified';
  if (zeroUpTo(15) && b[15] === 1) return 'loopback';
  // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), ::ffff:0:a.b.c.d (translated), 64:ff9b::a.b.c.d (NAT64)
  if (zeroUpTo(10) && word(5) === 0xffff) return classifyV4(b.subarray(12));
  if (zeroUpTo(12)) return classifyV4(b.subarray(12));
  if (zeroUpTo(8) && word(4) === 0xffff && word(5) === 0) return classifyV4(b.subarray(12));
  if (word(0) === 0x64 && word(1) === 0xff9b && b.subarray(4, 12).every((x) => x === 0)) return classifyV4(b.subarray(12));
  if (word(0) === 0x64 && word(1) === 0xff9b && word(2) === 1) return 'private'; // local-use NAT64 (RFC 8215)
  if (word(0) === 0x2002) return classifyV4(b.subarray(2, 6)); // 6to4 embeds the IPv4 address in bits 16..48
  if (word(0) === 0x2001 && word(1) === 0) return 'reserved'; // Teredo: tunnels to an obfuscated IPv4 address
  if (word(0) === 0x2001 && word(1) === 0xdb8) return 'documentation';
  if ((b[0]! & 0xfe) === 0xfc) return 'private'; // fc00::/7 unique local
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local'; // fe80::/10
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 'private'; // fec0::/10 site-local (deprecated)
  if (b[0] === 0xff) return 'multicast';
  if ((b[0]! & 0xe0) !== 0x20) return 'reserved'; // outside 2000::/3 global unicast
  if (word(0) === 0x2001 && (word(1) & 0xfff0) === 0x10) return 'reserved'; // ORCHID
  if (word(0) === 0x100 && word(1) === 0 && word(2) === 0 && word(3) === 0) return 'reserved'; // discard-only
  return 'global';
}

/** Host names that always mean this machine or a metadata service, whatever DNS says. */
export function isLocalHostName(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h === 'localhost.localdomain' ||
    h === 'ip6-localhost' ||
    h === 'ip6-loopback' ||
    h === 'metadata' ||
    h === 'metadata.google.internal' ||
    h === 'instance-data' ||
    h.endsWith('.internal')
  );
}
