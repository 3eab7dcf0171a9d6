/**
 * `ragdiff index …`: the image store from the command line, over the same API.
 *
 *   ragdiff index add <paths…> --store DIR [--source S --licence L --attribution A --tags a,b]
 *   ragdiff index add-url <urls…> --store DIR [--allow-host H]…
 *   ragdiff index query "<text>" --store DIR [-k N] [--image FILE] [--source S]… [--tag T]…
 *   ragdiff index remove <ids…> --store DIR
 *   ragdiff index rebuild --store DIR [--reembed]
 *   ragdiff index info --store DIR
 *   ragdiff index migrate-schema --store postgres://…
 *   ragdiff index migrate --from DIR --to postgres://…   (resumable: run it again after an interruption)
 *
 * --store takes a directory or a postgres:// URL (add, query, remove, info, migrate-schema; add-url and rebuild are local only).
 *
 * `--json` prints one JSON document on stdout (errors too, as {"error": {code, message}}).
 * The exit code is 1 when anything failed (a failed item, an unknown id, an error), else 0.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { RagdiffError } from '../errors.js';
import { loadClipEncoders, type ImageTextEncoder } from '../models/encoders.js';
import { openDemoStore } from '../store/demo.js';
import { isPostgresUrl } from '../store/pg/connect.js';
import { copyLocalStore } from '../store/pg/copy-local.js';
import { PgReferenceStore } from '../store/pg/store.js';
import type { ReferenceStore } from '../store/reference-store.js';
import { ImageStore, type AddProgress, type AddReport, type ImageMeta, type ImageStoreOptions } from '../store/store.js';
import { intOption, numberOption } from './options.js';
import { DEFAULT_MAX_USER_FILE_BYTES, readUserFileSync } from '../io/user-file.js';
import { checkPromptLength } from '../pipeline/params.js';
import { policyForCli } from '../safety/cli.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DEFAULT_MODEL_DIR = join(packageRoot, 'models', 'tiny-emoji');

interface CommonOptions {
  store?: string;
  demo?: boolean;
  model: string;
  encoder?: string;
  json?: boolean;
}

interface MetaOptions {
  source?: string;
  licence?: string;
  attribution?: string;
  name?: string;
  tags?: string;
}


const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];

/** Loads the encoder: a JS module (`--encoder`, exporting createEncoder() or a default factory) or an ONNX bundle (`--model`). */
async function loadEncoder(o: CommonOptions): Promise<ImageTextEncoder> {
  if (o.encoder) {
    const mod = (await import(pathToFileURL(resolve(o.encoder)).href)) as { createEncoder?: () => unknown; default?: unknown };
    const factory = mod.createEncoder ?? mod.default;
    const enc = (await (typeof factory === 'function' ? (factory as () => unknown)() : factory)) as ImageTextEncoder | undefined;
    if (!enc || typeof enc.embedImages !== 'function') throw new RagdiffError('ENCODER_INVALID', `${o.encoder} does not export createEncoder() returning an encoder`);
    return enc;
  }
  return loadClipEncoders(o.model);
}

/** A local store (directory or --demo): for the commands only the local backend has (add-url, rebuild). */
async function openStore(o: CommonOptions, extra: Partial<ImageStoreOptions> = {}): Promise<ImageStore> {
  if (isPostgresUrl(o.store)) throw new RagdiffError('INVALID_ARGUMENT', 'this command works on local stores (--store DIR) only, not on a postgres:// store');
  const encoder = await loadEncoder(o);
  if (o.demo) return openDemoStore({ encoder, store: extra });
  if (!o.store) throw new RagdiffError('INVALID_ARGUMENT', 'say which store: --store DIR or postgres://… (or --demo for the emoji demo store)');
  return ImageStore.open(o.store, { ...extra, encoder });
}

/** Either backend: --store DIR, --store postgres://…, or --demo. */
async function openAnyStore(o: CommonOptions, extra: Partial<ImageStoreOptions> = {}): Promise<ReferenceStore> {
  if (!isPostgresUrl(o.store)) return openStore(o, extra);
  const { nearDuplicates, screen, readOnly } = extra;
  return PgReferenceStore.open(o.store, { encoder: await loadEncoder(o), nearDuplicates, screen, readOnly, ownsEncoder: true });
}

function metaOf(o: MetaOptions): ImageMeta {
  const meta: ImageMeta = {};
  if (o.source !== undefined) meta.source = o.source;
  if (o.licence !== undefined) meta.licence = o.licence;
  if (o.attribution !== undefined) meta.attribution = o.attribution;
  if (o.name !== undefined) meta.name = o.name;
  if (o.tags !== undefined) meta.tags = o.tags.split(',').map((s) => s.trim()).filter(Boolean);
  return meta;
}

function out(o: { json?: boolean }, json: unknown, text: string): void {
  process.stdout.write(o.json ? JSON.stringify(json, null, 2) + '\n' : text + (text.endsWith('\n') || text === '' ? '' : '\n'));
}

/** Runs a command body; errors become exit code 1 (and a JSON error document with --json). */
async function run(o: { json?: boolean }, body: () => Promise<boolean>): Promise<void> {
  try {
    const ok = await body();
    if (!ok) process.exitCode = 1;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (o.json) {
      process.stdout.write(JSON.stringify({ error: { code: err.code ?? 'INTERNAL', message: err.message ?? String(e) } }, null, 2) + '\n');
    } else {
      process.stderr.write(`ragdiff: ${err.code ? `[${err.code}] ` : ''}${err.message ?? String(e)}\n`);
    }
    process.exitCode = 1;
  }
}

/** A progress bar on stderr when it is a terminal and output is not JSON. */
function progress(o: { json?: boolean }): { update(p: AddProgress): void; done(): void } {
  const stream = process.stderr;
  if (o.json || !stream.isTTY) return { update() {}, done() {} };
  let drawn = false;
  return {
    update(p) {
      const width = 30;
      const filled = Math.round((p.done / Math.max(1, p.total)) * width);
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total} added ${p.added} skipped ${p.skipped} failed ${p.failed}\x1b[K`);
      drawn = true;
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}

function reportText(r: AddReport): string {
  const lines = r.items.map((i) => {
    switch (i.status) {
      case 'added':
        return `added      ${i.id}  ${i.input}`;
      case 'failed':
        return `FAILED     ${i.input}  [${i.error!.code}] ${i.error!.message}`;
      case 'blocked':
        return `blocked    ${i.input}  ${i.reason ?? ''}`;
      case 'skipped':
        return `skipped    ${i.input}  [${i.error?.code ?? ''}] ${i.reason ?? ''}`;
      default:
        return `${i.status.padEnd(10)} ${i.input}  (of ${i.duplicateOf}${i.distance !== undefined ? `, distance ${i.distance}` : ''})`;
    }
  });
  lines.push(`${r.added} added, ${r.skipped} skipped, ${r.failed} failed`);
  return lines.join('\n');
}

function common(cmd: Command, requireStore = true): Command {
  return cmd
    .option('--store <dir|url>', requireStore ? 'the store: a directory (created if missing) or a postgres:// URL' : 'the store: a directory or a postgres:// URL')
    .option('--model <dir>', 'encoder bundle (text_encoder, image_encoder, tokenizer, feature_extractor)', DEFAULT_MODEL_DIR)
    .option('--encoder <module>', 'a JS module exporting createEncoder() (instead of --model)')
    .option('--json', 'print the result as JSON');
}

function metaOptions(cmd: Command): Command {
  return cmd
    .option('--source <s>', 'where the images come from')
    .option('--licence <l>', 'licence identifier, e.g. CC-BY-4.0')
    .option('--attribution <a>', 'credit line')
    .option('--name <n>', 'caption')
    .option('--tags <list>', 'comma-separated tags');
}

export function registerIndexCommands(program: Command): void {
  const index = program.command('index').description('manage an image store: add, add-url, query, remove, rebuild, info');

  metaOptions(common(index.command('add').argument('<paths...>', 'image files or directories').description('add images from files and directories')))
    .option('--no-copy', 'reference files by path instead of copying them into the store')
    .option('--no-near-duplicates', 'only skip exact duplicates')
    .option('--near-distance <n>', 'perceptual-hash distance (0..64) counted as a near-duplicate', intOption('near-distance', 0))
    .option('--policy <file>', 'safety policy JSON: matching images are stored as blocked (rule and score recorded)')
    .action(async (paths: string[], o: CommonOptions & MetaOptions & { copy: boolean; nearDuplicates: boolean; nearDistance?: number; policy?: string }) => {
      await run(o, async () => {
        const near = o.nearDuplicates === false ? false : o.nearDistance !== undefined ? { maxDistance: o.nearDistance } : undefined;
        const safety = o.policy ? await policyForCli(o.policy, o.model) : undefined;
        const store = await openAnyStore(o, { nearDuplicates: near, ...(safety ? { screen: safety.guard.imageScreen() } : {}) }).catch(async (e) => { await safety?.close(); throw e; });
        try {
          const bar = progress(o);
          const report = await store.add(paths, metaOf(o), { copy: o.copy, onProgress: (p) => bar.update(p) });
          bar.done();
          out(o, report, reportText(report));
          return report.failed === 0;
        } finally {
          await store.close();
          await safety?.close();
        }
      });
    });

  metaOptions(common(index.command('add-url').argument('<urls...>', 'http(s) URLs of images').description('fetch images from URLs (loopback, private and metadata addresses are refused) and add them')))
    .option('--allow-host <host>', 'permit this host (host or host:port) even if it is local or private; repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--max-bytes <n>', 'largest response accepted', intOption('max-bytes', 1))
    .option('--timeout <ms>', 'time limit per URL, redirects included', intOption('timeout', 1))
    .action(async (urls: string[], o: CommonOptions & MetaOptions & { allowHost?: string[]; maxBytes?: number; timeout?: number }) => {
      await run(o, async () => {
        const store = await openStore(o);
        try {
          const bar = progress(o);
          const report = await store.addUrl(urls, metaOf(o), {
            allowHosts: o.allowHost,
            maxBytes: o.maxBytes,
            timeoutMs: o.timeout,
            onProgress: (p) => bar.update(p),
          });
          bar.done();
          out(o, report, reportText(report));
          return report.failed === 0;
        } finally {
          await store.close();
        }
      });
    });

  common(index.command('query').argument('[text]', 'what to look for').description('find the images closest to a text (or --image)'))
    .option('--demo', 'query the emoji demo store (built on first use)')
    .option('-k, --k <n>', 'number of results', intOption('k', 1))
    .option('--image <file>', 'query by an image file instead of text (not stored)')
    .option('--source <s>', 'only these sources (repeatable or comma-separated)', collect)
    .option('--licence <l>', 'only these licences (repeatable or comma-separated)', collect)
    .option('--tag <t>', 'only images with one of these tags (repeatable)', collect)
    .option('--exclude-tag <t>', 'never images with these tags (repeatable)', collect)
    .option('--exclude-id <id>', 'never these images (repeatable)', collect)
    .option('--min-score <x>', 'drop results scoring below x', numberOption('min-score'))
    .action(async (text: string | undefined, o: CommonOptions & { k?: number; image?: string; source?: string[]; licence?: string[]; tag?: string[]; excludeTag?: string[]; excludeId?: string[]; minScore?: number }) => {
      await run(o, async () => {
        if ((text === undefined) === (o.image === undefined)) throw new RagdiffError('INVALID_ARGUMENT', 'give a query text or --image FILE (one of them)');
        if (text !== undefined) checkPromptLength('query text', text);
        // Read through the file gate before the store opens: a FIFO, device or huge file fails at once.
        const image = o.image !== undefined ? new Uint8Array(readUserFileSync(o.image, { maxBytes: DEFAULT_MAX_USER_FILE_BYTES, what: 'query image' })) : undefined;
        const store = await openAnyStore(o, { readOnly: true }); // a reader: works beside a writer
        try {
          const hits = await store.query({
            ...(text !== undefined ? { text } : { image: image! }),
            k: o.k,
            sources: o.source,
            licences: o.licence,
            tags: o.tag,
            excludeTags: o.excludeTag,
            excludeIds: o.excludeId,
            minScore: o.minScore,
          });
          const lines = hits.map((h, i) => `${String(i + 1).padStart(3)}. ${h.score.toFixed(4)}  ${h.id}  ${h.name || h.origin}  [${[h.source, h.licence].filter(Boolean).join(', ')}]`);
          out(o, hits, lines.join('\n') || 'no results');
          return true;
        } finally {
          await store.close();
        }
      });
    });

  common(index.command('remove').argument('<ids...>', 'image ids').description('remove images (opt-out): never returned again, bytes deleted'))
    .option('--reason <text>', 'recorded with the removal', 'removed on request')
    .action(async (ids: string[], o: CommonOptions & { reason: string }) => {
      await run(o, async () => {
        const store = await openAnyStore(o);
        const results: { id: string; status: 'removed' | 'already-removed' | 'failed'; error?: { code: string; message: string } }[] = [];
        try {
          for (const id of ids) {
            try {
              results.push({ id, status: (await store.remove(id, o.reason)) ? 'removed' : 'already-removed' });
            } catch (e) {
              const err = e as { code?: string; message?: string };
              results.push({ id, status: 'failed', error: { code: err.code ?? 'INTERNAL', message: err.message ?? String(e) } });
            }
          }
        } finally {
          await store.close();
        }
        out(o, results, results.map((r) => (r.error ? `FAILED   ${r.id}  [${r.error.code}] ${r.error.message}` : `${r.status.padEnd(8)} ${r.id}`)).join('\n'));
        return results.every((r) => r.status !== 'failed');
      });
    });

  common(index.command('rebuild').description('recreate the vector index from the metadata (and, with --reembed, the stored images)'))
    .option('--reembed', 're-decode and re-embed every image with the current encoder (after an encoder change)')
    .action(async (o: CommonOptions & { reembed?: boolean }) => {
      await run(o, async () => {
        const store = await openStore(o, { onEncoderMismatch: o.reembed ? 'reembed' : 'error' });
        try {
          const report = store.reembeddedOnOpen ?? (await store.rebuild({ reembed: o.reembed === true }));
          out(o, report, [`indexed ${report.indexed}, re-embedded ${report.reembedded}, failed ${report.failed.length}`, ...report.failed.map((f) => `FAILED ${f.id} [${f.code}] ${f.message}`)].join('\n'));
          return report.failed.length === 0;
        } finally {
          await store.close();
        }
      });
    });

  common(index.command('info').description('what the store holds'))
    .option('--demo', 'the emoji demo store')
    .action(async (o: CommonOptions) => {
      await run(o, async () => {
        const store = await openAnyStore(o, { readOnly: true }); // a reader: works beside a writer
        try {
          const s = await store.stats();
          out(o, s, `${s.dir}\n${s.active} active, ${s.removed} removed, ${s.blocked} blocked; width ${s.dim}; encoder ${s.encoderId}; hnsw M=${s.hnsw.M} efConstruction=${s.hnsw.efConstruction} efSearch=${s.hnsw.efSearch}`);
          return true;
        } finally {
          await store.close();
        }
      });
    });
  common(index.command('migrate-schema').description('apply pending schema migrations to a postgres:// store (a deploy step; stores also migrate on open)'))
    .option('--hnsw-m <n>', 'HNSW graph degree, fixed when the store is created', intOption('hnsw-m', 2))
    .option('--hnsw-ef-construction <n>', 'HNSW build-time candidate list, fixed when the store is created', intOption('hnsw-ef-construction', 4))
    .action(async (o: CommonOptions & { hnswM?: number; hnswEfConstruction?: number }) => {
      await run(o, async () => {
        if (!isPostgresUrl(o.store)) throw new RagdiffError('INVALID_ARGUMENT', 'migrate-schema needs --store postgres://… (local stores migrate themselves on open)');
        const hnsw = { ...(o.hnswM !== undefined ? { M: o.hnswM } : {}), ...(o.hnswEfConstruction !== undefined ? { efConstruction: o.hnswEfConstruction } : {}) };
        const r = await PgReferenceStore.migrateSchema(o.store, { encoder: await loadEncoder(o), hnsw, ownsEncoder: true });
        out(o, r, `${r.location}: schema ${r.from} → ${r.to}${r.applied.length ? ` (applied ${r.applied.join(', ')})` : ' (up to date)'}; pgvector ${r.vectorVersion}`);
        return true;
      });
    });
  index.command('migrate').description('copy a local store (provenance and opt-outs included) into a postgres:// store; run again to resume')
    .requiredOption('--from <dir>', 'the local store directory')
    .requiredOption('--to <url>', 'the postgres:// store (created if empty)')
    .option('--model <dir>', 'encoder bundle (must be the local store\'s encoder)', DEFAULT_MODEL_DIR)
    .option('--encoder <module>', 'a JS module exporting createEncoder() (instead of --model)')
    .option('--json', 'print the result as JSON')
    .action(async (o: CommonOptions & { from: string; to: string }) => {
      await run(o, async () => {
        if (!isPostgresUrl(o.to)) throw new RagdiffError('INVALID_ARGUMENT', `--to must be a postgres:// URL, got ${JSON.stringify(o.to)}`);
        const encoder = await loadEncoder(o);
        const from = await ImageStore.open(o.from, { encoder, readOnly: true });
        try {
          const to = await PgReferenceStore.open(o.to, { encoder });
          try {
            const bar = progress(o);
            const r = await copyLocalStore(from, to, { onProgress: (p) => bar.update({ ...p, added: 0, skipped: 0, failed: 0, item: { input: '', status: 'added' } }) });
            bar.done();
            out(o, r, `copied ${r.copied}, already present ${r.present}${r.missingBytes.length ? `, without bytes (gone locally): ${r.missingBytes.join(' ')}` : ''}`);
            return true;
          } finally {
            await to.close();
          }
        } finally {
          await from.close();
          await (encoder as { close?(): Promise<void> }).close?.();
        }
      });
    });
}
