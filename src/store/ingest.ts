/**
 * Ingest: items → read + decode (once) + hash → duplicate check and the
 * pre-embedding screen (in input order) → bytes written → embed in large
 * batches → post-embedding screen → rows committed → vectors added.
 *
 * The stages overlap: decodes run ahead of the item being checked (on
 * sharp's threads), and up to `embedInFlight` encoder calls run while the
 * next batch is decoded, so decode and embedding use the cores at the same
 * time. Commits stay in batch order, one transaction per batch.
 *
 * Crash safety is unchanged: bytes are in place (temp + rename) before the
 * row that references them commits; bytes without a row (an item that then
 * failed, or a process killed before its commit) are deleted here or swept
 * by the next writer to open the store.
 */
import { RagdiffError } from '../errors.js';
import { DEFAULT_MAX_PIXELS } from '../image/decode.js';
import type { ImageTextEncoder } from '../models/encoders.js';
import type { BlobStore } from './blobs.js';
import type { Catalogue, Known, NewImageRow } from './catalogue.js';
import { decodeCandidate, embedAndScreen, runScreen, DEFAULT_MAX_INPUT_BYTES, type DecodedCandidate, type ImageScreen, type ScreenCandidate } from './gate.js';
import { HashTable } from './phash.js';
import { embeddingToBlob, type ImageStatus } from './schema.js';
import type { AddItemResult, AddProgress, AddReport } from './types.js';
import type { Item } from './walk.js';

export interface IngestContext {
  encoder: ImageTextEncoder;
  catalogue: Catalogue;
  blobs: BlobStore;
  screen?: ImageScreen;
  near?: { maxDistance: number; maxColourDifference: number };
  batchSize: number;
  decodeConcurrency: number;
  embedInFlight: number;
  maxPixels?: number;
  maxInputBytes?: number;
  checkpoint(name: string): void;
  /** Called after each batch commits, with the rows that became active (label + embedding). */
  committed(active: { label: number; embedding: Float32Array }[], rows: number): void;
}

export function errorInfo(e: unknown): { code: string; message: string } {
  const err = e as { code?: unknown; message?: unknown };
  return { code: typeof err?.code === 'string' ? err.code : 'INTERNAL', message: String(err?.message ?? e) };
}

/** The verdict on a known image an item duplicates. */
function verdictOf(k: Known, distance?: number): Omit<AddItemResult, 'input'> {
  const extra = distance === undefined ? {} : { distance };
  if (k.status === 'removed') return { status: 'removed', duplicateOf: k.id, reason: 'matches an image removed from the store', ...extra };
  if (k.status === 'blocked') return { status: 'blocked', duplicateOf: k.id, reason: k.reason ?? 'blocked', ...extra };
  return { status: distance !== undefined ? 'near-duplicate' : 'duplicate', duplicateOf: k.id, ...extra };
}

interface Accepted {
  i: number;
  c: DecodedCandidate;
  id: string;
  screenInfo: ScreenCandidate;
  embedding?: Float32Array;
  blocked?: string;
  /** Bytes written to the blob store for this item (deleted again if it does not commit). */
  wroteBlob: boolean;
}

type Decoded = { c: DecodedCandidate } | { error: unknown };

/** A counting semaphore. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  return async (fn) => {
    if (running >= n) await new Promise<void>((r) => queue.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      queue.shift()?.();
    }
  };
}

export async function ingest(ctx: IngestContext, items: Item[], onProgress?: (p: AddProgress) => void, signal?: AbortSignal): Promise<AddReport> {
  const report: AddReport = { added: 0, skipped: 0, failed: 0, items: [] };
  const results: (AddItemResult | undefined)[] = new Array(items.length);
  const gate = { maxPixels: ctx.maxPixels ?? DEFAULT_MAX_PIXELS, maxBytes: ctx.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES };
  const cat = ctx.catalogue;
  let done = 0;
  const emit = (i: number, r: AddItemResult) => {
    results[i] = r;
    done++;
    if (r.status === 'added') report.added++;
    else if (r.status === 'failed') report.failed++;
    else report.skipped++;
    try {
      onProgress?.({ done, total: items.length, added: report.added, skipped: report.skipped, failed: report.failed, item: r });
    } catch {
      // a throwing progress callback must not corrupt an ingest
    }
  };
  const fail = (i: number, e: unknown) => emit(i, { input: items[i]!.input, status: 'failed', error: errorInfo(e) });

  // Decodes run ahead of the item being checked, `decodeConcurrency` at a time.
  const decodeLimit = limiter(ctx.decodeConcurrency);
  const ahead = ctx.batchSize + 2 * ctx.decodeConcurrency;
  const decodes: (Promise<Decoded> | undefined)[] = new Array(items.length);
  let started = 0;
  const startDecodes = (upTo: number) => {
    for (; started < Math.min(items.length, upTo); started++) {
      const item = items[started]!;
      if (item.error) continue;
      decodes[started] = decodeLimit(async () => {
        try {
          return { c: await decodeCandidate(await item.load(), ctx.encoder, gate) };
        } catch (error) {
          return { error };
        }
      });
    }
  };

  const pending = new Map<string, string>(); // sha256 → id, accepted in this call
  const pendingIds = new Set<string>();
  const pendingHashes = new HashTable<string>();
  const newId = (sha256: string) => {
    let n = 16;
    while (cat.hasId(sha256.slice(0, n)) || pendingIds.has(sha256.slice(0, n))) n += 4;
    return sha256.slice(0, n);
  };
  const duplicateOf = (c: DecodedCandidate): Omit<AddItemResult, 'input'> | undefined => {
    const known = cat.bySha(c.sha256);
    if (known) return verdictOf(known);
    const p = pending.get(c.sha256);
    if (p) return { status: 'duplicate', duplicateOf: p };
    const near = ctx.near;
    if (!near) return undefined;
    const hit = cat.nearest(c.phash, near.maxDistance, near.maxColourDifference);
    const pendingHit = pendingHashes.nearest(c.phash, near.maxDistance, near.maxColourDifference);
    if (hit && (!pendingHit || hit.distance <= pendingHit.distance)) return verdictOf(cat.byLabel(hit.label)!, hit.distance);
    if (pendingHit) return { status: 'near-duplicate', duplicateOf: pendingHit.key, distance: pendingHit.distance };
    return undefined;
  };

  const embed = (batch: Accepted[]) => embedAndScreen(ctx.encoder, ctx.screen, batch, fail);

  const dropBlob = (a: Accepted) => {
    if (!a.wroteBlob) return;
    a.wroteBlob = false;
    try {
      ctx.blobs.delete(a.c.sha256);
    } catch {
      // swept by the next writer to open the store
    }
  };

  /** Commits an embedded batch: rows in one transaction, then the vectors. */
  const commit = (batch: Accepted[]): void => {
    const rows = batch.filter((a) => a.blocked !== undefined || a.embedding !== undefined);
    for (const a of batch) if (a.blocked !== undefined || a.embedding === undefined) dropBlob(a); // blocked images keep no bytes
    if (rows.length === 0) return;
    let committed;
    try {
      ctx.checkpoint('after-blobs');
      const at = new Date().toISOString();
      committed = cat.insert(rows.map((a): NewImageRow => {
        const item = items[a.i]!;
        const m = item.meta;
        return {
          id: a.id, sha256: a.c.sha256, phash: a.c.phash.hash, colour: a.c.phash.colour,
          source: m.source, licence: m.licence, attribution: m.attribution, name: m.name, tags: JSON.stringify(m.tags),
          width: a.c.width, height: a.c.height, format: a.c.format, bytes: a.c.bytes.byteLength,
          origin: item.input, path: a.blocked ? null : item.refPath ?? null, added_at: at,
          status: (a.blocked ? 'blocked' : 'active') as ImageStatus, reason: a.blocked ?? null, status_at: a.blocked ? at : null,
          embedding: a.blocked ? null : embeddingToBlob(a.embedding!),
        };
      }));
      ctx.checkpoint('after-commit');
    } catch (e) {
      for (const a of rows) {
        dropBlob(a);
        fail(a.i, new RagdiffError('STORE_WRITE_FAILED', `could not write to the store: ${(e as Error).message}`, { cause: e }));
      }
      return;
    }
    const active: { label: number; embedding: Float32Array }[] = [];
    committed.forEach((row, j) => {
      if (row.status === 'active') active.push({ label: row.label, embedding: rows[j]!.embedding! });
    });
    ctx.committed(active, committed.length);
    ctx.checkpoint('after-index-add');
    for (const a of rows) {
      const input = items[a.i]!.input;
      emit(a.i, a.blocked ? { input, status: 'blocked', id: a.id, reason: a.blocked } : { input, status: 'added', id: a.id });
    }
  };

  // Batches in flight: each embeds as soon as it is full; commits follow in batch order.
  const inFlight: Promise<void>[] = [];
  let commits: Promise<void> = Promise.resolve();
  let commitError: unknown;
  const dispatch = async (batch: Accepted[]) => {
    while (inFlight.length >= ctx.embedInFlight) await inFlight.shift();
    const embedded = embed(batch);
    commits = commits.then(() => embedded).then(() => commit(batch)).catch((e) => {
      commitError ??= e;
    });
    inFlight.push(commits);
  };

  let batch: Accepted[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (signal?.aborted) {
      for (let j = i; j < items.length; j++) fail(j, new RagdiffError('ABORTED', 'the ingest was aborted before this item'));
      break;
    }
    if (item.error) {
      if (item.skipped) emit(i, { input: item.input, status: 'skipped', reason: item.error.message, error: errorInfo(item.error) });
      else fail(i, item.error);
      continue;
    }
    startDecodes(i + ahead);
    const d = await decodes[i]!;
    decodes[i] = undefined;
    if ('error' in d) {
      fail(i, d.error);
      continue;
    }
    const c = d.c;
    const dup = duplicateOf(c);
    if (dup) {
      emit(i, { ...dup, input: item.input });
      continue;
    }
    const id = newId(c.sha256);
    pending.set(c.sha256, id);
    pendingIds.add(id);
    pendingHashes.add(id, c.phash);
    const screenInfo: ScreenCandidate = { purpose: 'ingest', sha256: c.sha256, phash: c.phash, orientedHashes: c.orientedHashes, width: c.width, height: c.height, format: c.format, meta: item.meta, origin: item.input };
    const v = await runScreen(ctx.screen?.beforeEmbed?.bind(ctx.screen), screenInfo);
    const a: Accepted = { i, c, id, screenInfo, blocked: v.allow ? undefined : v.reason, wroteBlob: false };
    if (!a.blocked && !item.refPath) {
      // Bytes first: in place before the row that will reference them commits.
      try {
        ctx.blobs.put(c.sha256, c.bytes);
        a.wroteBlob = true;
      } catch (e) {
        fail(i, new RagdiffError('STORE_WRITE_FAILED', `could not write the image bytes: ${(e as Error).message}`, { cause: e }));
        continue;
      }
    }
    batch.push(a);
    if (batch.length >= ctx.batchSize) {
      await dispatch(batch);
      batch = [];
    }
  }
  if (batch.length) await dispatch(batch);
  await commits;
  if (commitError) throw commitError;
  // Items appear in the report in input order.
  report.items = results.filter((r): r is AddItemResult => r !== undefined);
  return report;
}
