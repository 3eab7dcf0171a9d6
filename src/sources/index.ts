export type { LiveSource, SearchBudget, SearchOptions, SourceCandidate, SourceContext } from './types.js';
export { normaliseLicence, requiresAttribution, licenceAllowed } from './licence.js';
export { HostLimiter, sharedHostLimiter } from './politeness.js';
export { getJson, readPath, retryAfterMs } from './http-json.js';
export { openverseSource, OPENVERSE_URL } from './openverse.js';
export { commonsSource, COMMONS_URL, htmlToText } from './commons.js';
export { genericJsonSource, checkGenericConfig, type GenericJsonConfig } from './generic-json.js';
export { urlCandidate, type UrlReference } from './plain-url.js';
export { createSources, STORE_SOURCE, BUILTIN_SOURCES, USER_AGENT, type SourceRegistry, type SourcesOptions } from './registry.js';
