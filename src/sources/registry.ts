/**
 * Which live sources exist and which the operator enabled. Endpoints come
 * from the environment (`RAGDIFF_OPENVERSE_URL`, `RAGDIFF_COMMONS_URL`) or a
 * config file (JSON: `{ "openverse": { "url" }, "commons": { "url" },
 * "generic": [ { name, url, results, fields } ], "allowHosts": [...] }`), so an
 * operator can point at a mirror and tests at a loopback fake. Nothing here
 * opens a socket: sources only connect when searched.
 */
import { readFileSync } from 'node:fs';
import { RagdiffError, typeError } from '../errors.js';
import type { Connector, Resolver } from '../net/index.js';
import { COMMONS_URL, commonsSource } from './commons.js';
import { checkGenericConfig, genericJsonSource } from './generic-json.js';
import { OPENVERSE_URL, openverseSource } from './openverse.js';
import { sharedHostLimiter, type HostLimiter } from './politeness.js';
import type { LiveSource, SourceContext } from './types.js';

/** The name the store takes in a list of sources. */
export const STORE_SOURCE = 'store';
export const BUILTIN_SOURCES = ['openverse', 'commons'] as const;
export const USER_AGENT = 'ragdiff/1 (retrieval-augmented image generation; https://github.com/ragdiff/ragdiff) node';

export interface SourcesOptions {
  /** Online sources enabled (default: every built-in and configured one). */
  enable?: readonly string[];
  /** A config file path, or its parsed contents. */
  config?: string | Record<string, unknown>;
  /** Hosts exempt from the private-address checks (added to the config's). */
  allowHosts?: readonly string[];
  userAgent?: string;
  /** Environment to read endpoints from (default process.env). */
  env?: Record<string, string | undefined>;
  maxAnswerBytes?: number;
  timeoutMs?: number;
  limiter?: HostLimiter;
  resolve?: Resolver;
  connect?: Connector;
}

export interface SourceRegistry {
  /** The online sources enabled, in order. */
  readonly enabled: readonly string[];
  readonly context: SourceContext;
  /** The named source; SOURCE_UNKNOWN / SOURCE_NOT_ENABLED otherwise. */
  get(name: string): LiveSource;
}

function readConfig(config: SourcesOptions['config']): Record<string, unknown> {
  if (config === undefined) return {};
  if (typeof config !== 'string') return config;
  let text: string;
  try {
    text = readFileSync(config, 'utf8');
  } catch (e) {
    throw new RagdiffError('SOURCE_CONFIG', `cannot read the sources config ${config}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new RagdiffError('SOURCE_CONFIG', `the sources config ${config} is not valid JSON: ${(e as Error).message}`);
  }
}

function endpoint(cfg: Record<string, unknown>, key: string, envValue: string | undefined, fallback: string): string {
  const fromFile = (cfg[key] as { url?: unknown } | undefined)?.url;
  if (fromFile !== undefined && typeof fromFile !== 'string') throw new RagdiffError('SOURCE_CONFIG', `${key}.url must be a string`);
  return envValue || (fromFile as string | undefined) || fallback;
}

export function createSources(options: SourcesOptions = {}): SourceRegistry {
  if (options === null || typeof options !== 'object') throw typeError('INVALID_TYPE', 'sources options must be an object');
  const env = options.env ?? process.env;
  const cfg = readConfig(options.config);
  for (const k of Object.keys(cfg)) if (!['openverse', 'commons', 'generic', 'allowHosts'].includes(k)) throw new RagdiffError('SOURCE_CONFIG', `unknown key ${JSON.stringify(k)} in the sources config`);
  const cfgHosts = cfg.allowHosts ?? [];
  if (!Array.isArray(cfgHosts) || cfgHosts.some((h) => typeof h !== 'string')) throw new RagdiffError('SOURCE_CONFIG', 'allowHosts must be an array of host names');
  const context: SourceContext = {
    allowHosts: [...(options.allowHosts ?? []), ...(cfgHosts as string[])],
    userAgent: options.userAgent ?? USER_AGENT,
    maxAnswerBytes: options.maxAnswerBytes ?? 4 * 1024 * 1024,
    timeoutMs: options.timeoutMs ?? 10_000,
    limiter: options.limiter ?? sharedHostLimiter,
    ...(options.resolve ? { resolve: options.resolve } : {}),
    ...(options.connect ? { connect: options.connect } : {}),
  };
  const all = new Map<string, LiveSource>();
  all.set('openverse', openverseSource(context, endpoint(cfg, 'openverse', env.RAGDIFF_OPENVERSE_URL, OPENVERSE_URL)));
  all.set('commons', commonsSource(context, endpoint(cfg, 'commons', env.RAGDIFF_COMMONS_URL, COMMONS_URL)));
  const generic = cfg.generic ?? [];
  if (!Array.isArray(generic)) throw new RagdiffError('SOURCE_CONFIG', 'generic must be an array of connector descriptions');
  generic.forEach((g, i) => {
    const c = checkGenericConfig(g, `generic[${i}]`);
    if (all.has(c.name) || c.name === STORE_SOURCE || c.name === 'url') throw new RagdiffError('SOURCE_CONFIG', `generic[${i}].name ${JSON.stringify(c.name)} is taken`);
    all.set(c.name, genericJsonSource(context, c));
  });
  const enabled = [...(options.enable ?? all.keys())];
  for (const n of enabled) if (!all.has(n)) throw new RagdiffError('SOURCE_UNKNOWN', `unknown live source ${JSON.stringify(n)} (known: ${[...all.keys()].join(', ')})`);
  return {
    enabled,
    context,
    get(name: string): LiveSource {
      const s = all.get(name);
      if (!s) throw new RagdiffError('SOURCE_UNKNOWN', `unknown source ${JSON.stringify(name)} (known: ${[STORE_SOURCE, ...all.keys()].join(', ')})`);
      if (!enabled.includes(name)) throw new RagdiffError('SOURCE_NOT_ENABLED', `the source ${JSON.stringify(name)} is not enabled here (enabled: ${[STORE_SOURCE, ...enabled].join(', ')})`);
      return s;
    },
  };
}
