/**
 * The live-source half of the command line: `generate --source openverse
 * --ref-url URL --allow-host HOST --sources-config FILE --budget-ms N`, and
 * `ragdiff sources search "query" --source commons --json` to see what a
 * source would give. `--source` keeps its old meaning for store labels: the
 * names `store` and those of enabled live sources choose where to search, any
 * other name filters the store's images by their source label.
 */
import type { Command } from 'commander';
import { RagdiffError } from '../errors.js';
import type { RetrievalOptions } from '../rag/index.js';
import { createSources, STORE_SOURCE, type SourceCandidate, type SourceRegistry } from '../sources/index.js';
import { intOption, listOption, repeatOption } from './options.js';

export interface LiveCliOptions {
  source?: string[];
  refUrl?: string[];
  allowHost?: string[];
  sourcesConfig?: string;
  budgetMs?: number;
  /** Write the live references used into this store (created if missing). */
  cacheInto?: string;
}

export function addLiveSourceOptions(cmd: Command): Command {
  return cmd
    .option('--ref-url <url>', 'fetch this image URL as a reference for this request only (repeatable; http(s), SSRF-checked)', repeatOption)
    .option('--allow-host <host>', 'let fetches reach this host even on a private or loopback address (a mirror; repeatable)', repeatOption)
    .option('--sources-config <file>', 'live-source endpoints and generic JSON connectors (JSON; see docs)')
    .option('--cache-into <dir>', 'write the live references used into this store, with their provenance (created if missing; deduplicated)')
    .option('--budget-ms <n>', 'wall-time budget of the live sources, in ms (default 15000)', intOption('budget-ms', 1));
}

/** The registry for these options (opens nothing). */
export function liveRegistry(o: LiveCliOptions): SourceRegistry {
  return createSources({ allowHosts: o.allowHost ?? [], ...(o.sourcesConfig ? { config: o.sourcesConfig } : {}) });
}

/** Routes --source names, --ref-url and --budget-ms into the retrieval request. */
export function applyLiveOptions(o: LiveCliOptions, r: RetrievalOptions, registry: SourceRegistry): void {
  const names = o.source ?? [];
  const from = names.filter((n) => n === STORE_SOURCE || registry.enabled.includes(n));
  const labels = names.filter((n) => !from.includes(n));
  if (labels.length) r.sources = labels;
  if (from.length) {
    if (labels.length && !from.includes(STORE_SOURCE)) throw new RagdiffError('INVALID_ARGUMENT', `--source ${labels.join(', ')} filter the store's images; add --source store to search the store too`);
    r.from = from;
  }
  if (o.refUrl?.length) r.references = [...(r.references ?? []), ...o.refUrl.map((url) => ({ url }))];
  if (o.budgetMs !== undefined) r.budget = { ms: o.budgetMs };
}

function candidateText(c: SourceCandidate, i: number): string {
  return `  ${i + 1}. ${c.title || '(untitled)'}  [${c.source}, ${c.licence}]${c.creator ? `  by ${c.creator}` : ''}\n     ${c.url}${c.landingUrl ? `\n     ${c.landingUrl}` : ''}`;
}

export function registerSourcesCommands(program: Command): void {
  const sources = program.command('sources').description('live image sources (Openverse, Wikimedia Commons, configured search APIs)');
  addLiveSourceOptions(
    sources
      .command('search <query>')
      .description('show what live sources answer for a query (searches only; nothing is fetched or stored)')
      .option('--source <s>', 'sources to ask (repeatable or comma-separated; default: every enabled one)', listOption)
      .option('-k, --k <n>', 'candidates per source (default 8)', intOption('k', 1))
      .option('--licence <l>', 'only these licences (repeatable or comma-separated)', listOption)
      .option('--json', 'print JSON'),
  ).action(async (query: string, o: LiveCliOptions & { k?: number; licence?: string[]; json?: boolean }) => {
    const registry = liveRegistry(o);
    const names = o.source?.length ? o.source : [...registry.enabled];
    const chosen = names.map((n) => ({ n, s: registry.get(n) })); // unknown / not enabled fail before any search
    const results = await Promise.all(chosen.map(async ({ n, s }) => {
      const t0 = performance.now();
      try {
        const candidates = await s.search(query, { k: o.k ?? 8, ...(o.licence ? { licences: o.licence } : {}) });
        return { source: n, ms: Math.round(performance.now() - t0), candidates };
      } catch (e) {
        return { source: n, ms: Math.round(performance.now() - t0), candidates: [] as SourceCandidate[], error: { code: (e as { code?: string }).code ?? 'FETCH_FAILED', message: (e as Error).message } };
      }
    }));
    if (o.json) console.log(JSON.stringify({ query, sources: results }, null, 2));
    else {
      for (const r of results) {
        console.log(`${r.source}: ${r.error ? `failed [${r.error.code}] ${r.error.message}` : `${r.candidates.length} candidate(s)`} (${r.ms} ms)`);
        r.candidates.forEach((c, i) => console.log(candidateText(c, i)));
      }
    }
    if (results.every((r) => r.error)) process.exitCode = 1;
  });
}
