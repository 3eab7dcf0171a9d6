/**
 * The served model(s), as OpenAI-compatible servers list them:
 * - `GET /v1/models` → `{ object: 'list', data: [{ id, object: 'model', created, owned_by }] }`
 * - `GET /v1/models/:model` → one of them, or 404 MODEL_NOT_FOUND.
 * A generation request naming another model is refused the same way, in
 * OpenAI's error shape (type invalid_request_error, param model), so a client
 * that asks for `dall-e-3` learns it is not here instead of getting tiny-emoji.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { HttpError } from './errors.js';
import type { FromSchema } from './from-schema.js';

const modelObject = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'object', 'created', 'owned_by'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', const: 'model' },
    created: { type: 'integer', description: 'Unix seconds: when the bundle was written' },
    owned_by: { type: 'string' },
  },
} as const;
const modelList = {
  type: 'object',
  additionalProperties: false,
  required: ['object', 'data'],
  properties: { object: { type: 'string', const: 'list' }, data: { type: 'array', items: modelObject } },
} as const;
const modelParams = { type: 'object', required: ['model'], properties: { model: { type: 'string', minLength: 1, maxLength: 200 } } } as const;

export type ModelObject = FromSchema<typeof modelObject>;

/** The served bundle as an OpenAI model object; `created` is its model_index.json's time (stable across restarts). */
export function servedModels(ctx: ServerContext): ModelObject[] {
  const info = ctx.generator.info();
  let created = 0;
  try {
    // A queue's model is on the workers' disks: created stays 0.
    if (info.dir) created = Math.floor(statSync(join(info.dir, 'model_index.json')).mtimeMs / 1000);
  } catch {
    // A bundle without the file on disk any more: still listed.
  }
  return [{ id: info.name, object: 'model', created, owned_by: 'ragdiff' }];
}

export function modelNotFound(model: string, ctx: ServerContext): HttpError {
  const served = servedModels(ctx).map((m) => m.id);
  return new HttpError('MODEL_NOT_FOUND', `the model ${JSON.stringify(model)} does not exist here; this server serves ${served.map((id) => JSON.stringify(id)).join(', ')} (GET /v1/models)`, {}, { type: 'invalid_request_error', param: 'model' });
}

/** Throws MODEL_NOT_FOUND unless `model` is absent or served. */
export function checkModel(ctx: ServerContext, model: string | undefined): void {
  if (model !== undefined && !servedModels(ctx).some((m) => m.id === model)) throw modelNotFound(model, ctx);
}

export function registerModelRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/v1/models', { schema: { response: { 200: modelList } }, config: { access: 'read' } }, async () => ({ object: 'list', data: servedModels(ctx) }));
  app.get('/v1/models/:model', { schema: { params: modelParams, response: { 200: modelObject } }, config: { access: 'read' } }, async (request) => {
    const { model } = request.params as FromSchema<typeof modelParams>;
    const found = servedModels(ctx).find((m) => m.id === model);
    if (!found) throw modelNotFound(model, ctx);
    return found;
  });
}
