/**
 * `GET /openapi.json`: the API described from the routes' own JSON schemas
 * (@fastify/swagger collects them as routes are added, so it is registered
 * before them). OpenAPI 3.1, whose schemas are JSON Schema: the document shows
 * exactly what ajv checks. Routes that need a key say so when keys are set.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Access } from './auth.js';

export async function registerOpenApi(app: FastifyInstance, o: { packageRoot: string; keys: boolean; model: string }): Promise<void> {
  let version = '0.0.0';
  try {
    version = (JSON.parse(readFileSync(join(o.packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // Embedded without its package.json: the document still describes the routes.
  }
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ragdiff',
        version,
        description: `Retrieval-augmented image generation (model ${o.model}). POST /v1/images/generations follows OpenAI's images API where it fits, plus "retrieval". Errors: { error: { code, message } } with codes from docs/errors.md.`,
      },
      components: o.keys ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an API key (write keys may also upload and remove references)' } } } : {},
    },
    transform: ({ schema, url, route }) => {
      const access = (route.config as { access?: Access } | undefined)?.access;
      const described = { ...(schema ?? {}) } as Record<string, unknown>;
      if (o.keys && access) described.security = [{ bearer: [] }];
      return { schema: described, url };
    },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
