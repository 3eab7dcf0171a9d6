export { fetchImage, checkUrlForm, sniffImageFormat, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_MS, DEFAULT_MAX_REDIRECTS, DEFAULT_CONTENT_TYPES } from './fetch.js';
export type { FetchImageOptions, FetchedImage, Resolver, ResolvedAddress, Connector, ConnectTarget } from './fetch.js';
export { parseAddress, parseIPv4, parseIPv6, classifyAddress, formatAddress, isLocalHostName } from './address.js';
export type { AddressClass, ParsedAddress } from './address.js';
