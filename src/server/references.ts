/**
 * Reference routes: search the store, see a reference's pixels, upload one
 * (through the store's gate: decode, size and pixel caps, hashes, screens,
 * duplicate and opted-out checks), and opt one out (store.remove: its bytes
 * and embedding are deleted and it never comes back).
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { MultipartFile } from '@fastify/multipart';
import sharp from 'sharp';
import type { ImageStore, StoredImage } from '../store/index.js';
import type { ServerContext } from './context.js';
import { HttpError } from './errors.js';
import { checkImageHeader } from './image-header.js';
import { storedView } from './references-view.js';
import type { FromSchema } from './from-schema.js';
import { idParams, removeQuery, searchQuery, thumbQuery, type IdParams } from './schemas.js';

const MIME: Record<string, string> = { png: 'image/png', jpeg: 'image/jpeg', jpg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', avif: 'image/avif', tiff: 'image/tiff', heif: 'image/heif' };
const UPLOAD_FIELDS = ['name', 'source', 'licence', 'attribution'] as const;

/**
 * The multipart parser (busboy) throws plain Errors without a code for a body
 * that does not parse: no boundary, garbage, a part cut short. Those are the
 * client's fault (400 INVALID_MULTIPART, logged at info without a stack);
 * coded errors (limits, our own HttpErrors) pass through unchanged.
 */
export function malformedMultipart(e: unknown, log: FastifyBaseLogger): unknown {
  // Only the parser's plain Errors: a TypeError from a bug here stays a 500.
  if (!(e instanceof Error) || Object.getPrototypeOf(e) !== Error.prototype || typeof (e as { code?: unknown }).code === 'string') return e;
  log.info({ code: 'INVALID_MULTIPART', reason: e.message }, 'malformed multipart body');
  return new HttpError('INVALID_MULTIPART', `the multipart/form-data body does not parse: ${e.message}`);
}

function storeOf(ctx: ServerContext): ImageStore {
  if (!ctx.store) throw new HttpError('NO_STORE', 'this server has no reference store; start it with --store <dir> or --demo-store');
  return ctx.store;
}

/**
 * A stored image's pixels pass the same reference screen as at generation: a
 * store built before (or without) the policy in force may hold images it now
 * refuses, and serving them would bypass the retrieval door.
 */
async function screenStored(ctx: ServerContext, store: ImageStore, im: StoredImage): Promise<void> {
  const screen = ctx.safety.screen;
  if (!screen) return;
  const embedding = store.embeddingOf(im.id);
  let verdict: { allow: boolean; reason?: string };
  try {
    verdict = embedding ? await screen({ kind: 'stored', id: im.id, sha256: im.sha256, source: im.source, licence: im.licence, tags: im.tags, pinned: false, embedding, phash: im.phash }) : { allow: false, reason: 'no embedding to screen' };
  } catch (e) {
    verdict = { allow: false, reason: `the screen failed: ${(e as Error)?.message ?? String(e)}` };
  }
  ctx.metrics.screening.inc({ stage: 'image', decision: verdict.allow ? 'allow' : 'refuse' });
  if (!verdict.allow) throw new HttpError('IMAGE_BLOCKED', `this reference is refused by the safety policy: ${verdict.reason}`);
}

export function registerReferenceRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/v1/references', { schema: { querystring: searchQuery(ctx.limits) }, config: { access: 'read' } }, async (request) => {
    const store = storeOf(ctx);
    const raw = request.query as FromSchema<ReturnType<typeof searchQuery>>;
    const q = { ...raw, k: raw.k === undefined ? 12 : Number(raw.k), offset: Number(raw.offset ?? 0) };
    if (q.k < 1 || q.k > ctx.limits.searchK) throw new HttpError('INVALID_REQUEST', `k must be 1..${ctx.limits.searchK}, got ${q.k}`);
    const excludeIds = q.exclude ? q.exclude.split(',').filter(Boolean) : undefined;
    if (q.q === undefined) {
      const list = store.list({ status: 'active', limit: q.k, offset: q.offset }).filter((im) => !excludeIds?.includes(im.id));
      return { object: 'list', total: store.size, data: list.map((im) => storedView(im)) };
    }
    if (q.q.trim() === '') throw new HttpError('INVALID_REQUEST', 'q must not be blank');
    if (store.size === 0) return { object: 'list', total: 0, data: [] };
    const screen = ctx.safety.screen;
    const hits = await store.query({ text: q.q, k: Math.min(q.k, store.size), excludeIds, withEmbeddings: screen !== undefined });
    const data = [];
    for (const h of hits) {
      // The same screen generation applies, shown beforehand so the page can say what will be refused.
      let verdict: { allow: boolean; reason?: string } | undefined;
      if (screen) {
        try {
          verdict = await screen({ kind: 'stored', id: h.id, sha256: h.sha256, source: h.source, licence: h.licence, tags: h.tags, pinned: false, embedding: h.embedding! });
        } catch (e) {
          verdict = { allow: false, reason: `the screen failed: ${(e as Error)?.message ?? String(e)}` };
        }
        ctx.metrics.screening.inc({ stage: 'search', decision: verdict.allow ? 'allow' : 'refuse' });
        if (verdict.reason) verdict.reason = ctx.redact(verdict.reason);
      }
      data.push(storedView(h, verdict));
    }
    return { object: 'list', total: store.size, data };
  });

  app.get('/v1/references/:id', { schema: { params: idParams }, config: { access: 'read' } }, async (request) => {
    const im = storeOf(ctx).get((request.params as IdParams).id);
    if (!im) throw new HttpError('IMAGE_NOT_FOUND', 'no reference with this id');
    return storedView(im);
  });

  app.get('/v1/references/:id/image', { schema: { params: idParams, querystring: thumbQuery }, config: { access: 'read' } }, async (request, reply) => {
    const store = storeOf(ctx);
    const { id } = request.params as IdParams;
    const im = store.get(id);
    if (!im) throw new HttpError('IMAGE_NOT_FOUND', 'no reference with this id');
    if (im.status === 'removed') throw new HttpError('IMAGE_REMOVED', 'this reference was removed at its owner\'s request');
    if (im.status === 'blocked') throw new HttpError('IMAGE_BLOCKED', `this reference is blocked: ${im.reason ?? 'by policy'}`);
    await screenStored(ctx, store, im);
    const bytes = store.readImage(id);
    const sizeText = (request.query as FromSchema<typeof thumbQuery>).size;
    const size = sizeText === undefined ? undefined : Number(sizeText);
    if (size !== undefined && (size < 16 || size > 512)) throw new HttpError('INVALID_REQUEST', `size must be 16..512, got ${size}`);
    reply.header('cache-control', 'private, max-age=3600');
    reply.header('x-content-type-options', 'nosniff');
    if (size !== undefined && (im.width > size || im.height > size)) {
      const thumb = await sharp(bytes, { pages: 1 }).resize(size, size, { fit: 'inside' }).png().toBuffer();
      return reply.type('image/png').send(thumb);
    }
    return reply.type(MIME[im.format] ?? 'application/octet-stream').send(bytes);
  });

  app.post('/v1/references', { config: { access: 'write' } }, async (request, reply) => {
    const store = storeOf(ctx);
    if (!request.isMultipart()) throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'upload a reference as multipart/form-data with a "file" part (and optional name, source, licence, attribution fields)');
    const fields: Record<string, string> = {};
    let bytes: Buffer | undefined;
    let filename = '';
    try {
      for await (const part of request.parts({ limits: { fileSize: ctx.limits.uploadBytes, files: 1, fields: 10, fieldSize: 2000 } })) {
        if (part.type === 'file') {
          if (part.fieldname !== 'file') throw new HttpError('INVALID_REQUEST', `the file part must be named "file", got "${part.fieldname}"`);
          bytes = await (part as MultipartFile).toBuffer(); // throws 413 past fileSize
          filename = part.filename ?? '';
        } else {
          if (!(UPLOAD_FIELDS as readonly string[]).includes(part.fieldname)) throw new HttpError('INVALID_REQUEST', `unknown field "${part.fieldname}"; allowed: file, ${UPLOAD_FIELDS.join(', ')}`);
          fields[part.fieldname] = String(part.value);
        }
      }
    } catch (e) {
      throw malformedMultipart(e, request.log);
    }
    if (!bytes || bytes.length === 0) throw new HttpError('INVALID_REQUEST', 'no file: send the image in a part named "file"');
    // Header only: a cheap refusal of non-images and pixel floods before the store decodes anything.
    await checkImageHeader(bytes, ctx.limits.uploadPixels, 'the file');
    const name = fields.name ?? filename.replace(/\.[A-Za-z0-9]+$/, '');
    const report = await store.add([{ bytes, origin: 'upload', meta: { name, source: fields.source || 'upload', licence: fields.licence ?? '', attribution: fields.attribution ?? '' } }]);
    const item = report.items[0]!;
    switch (item.status) {
      case 'added':
        ctx.metrics.screening.inc({ stage: 'upload', decision: 'allow' });
        return reply.code(201).send({ status: 'added', reference: storedView(store.get(item.id!)!) });
      case 'duplicate':
      case 'near-duplicate': {
        const existing = store.get(item.duplicateOf!);
        return reply.code(200).send({ status: item.status, reference: existing ? storedView(existing) : { id: item.duplicateOf } });
      }
      case 'removed':
        throw new HttpError('IMAGE_REMOVED', `the image matches one removed at its owner's request: ${item.reason ?? 'opted out'}`);
      case 'blocked':
        ctx.metrics.screening.inc({ stage: 'upload', decision: 'refuse' });
        throw new HttpError('IMAGE_BLOCKED', `the image was refused: ${item.reason ?? 'by policy'}`);
      default:
        throw new HttpError(item.error?.code ?? 'INTERNAL', item.error?.message ?? 'the image could not be added');
    }
  });

  app.delete('/v1/references/:id', { schema: { params: idParams, querystring: removeQuery }, config: { access: 'write' } }, async (request) => {
    const store = storeOf(ctx);
    const { id } = request.params as IdParams;
    const reason = (request.query as FromSchema<typeof removeQuery>).reason ?? 'opted out through the HTTP API';
    const removed = await store.remove(id, reason); // IMAGE_NOT_FOUND → 404
    return { id, removed, status: 'removed' };
  });
}
