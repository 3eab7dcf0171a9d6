/**
 * JSON schemas of the request bodies and query strings (fastify validates
 * them with ajv before a handler runs; a mismatch is a 400 naming the field).
 * Limits live here so the schema and the page agree on them.
 */
import { RETRIEVAL_MODES } from '../rag/index.js';
import { liveSchemas } from './live-sources.js';
import { SAMPLERS } from '../pipeline/params.js';

export interface Limits {
  /** Largest JSON body, bytes (inline reference images count). Default 4 MiB. */
  bodyBytes: number;
  /** Largest uploaded file, bytes. Default 8 MiB. */
  uploadBytes: number;
  /** Largest decoded upload, width × height. Default 16 M. */
  uploadPixels: number;
  promptChars: number;
  /** Images per request (OpenAI's `n`). */
  n: number;
  steps: number;
  /** Pinned references and exclusions per request. */
  references: number;
  exclude: number;
  /** Search results per query. */
  searchK: number;
}

export const DEFAULT_LIMITS: Limits = {
  bodyBytes: 4 * 1024 * 1024,
  uploadBytes: 8 * 1024 * 1024,
  uploadPixels: 16_000_000,
  promptChars: 1000,
  n: 4,
  steps: 100,
  references: 8,
  exclude: 256,
  searchK: 50,
};

const id = { type: 'string', minLength: 1, maxLength: 200 } as const;

/** The generation body; `size` is checked by the route (its message names the model's one size). */
export function generationBody(l: Limits) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      prompt: { type: 'string', minLength: 1, maxLength: l.promptChars },
      negative_prompt: { type: 'string', maxLength: l.promptChars },
      n: { type: 'integer', minimum: 1, maximum: l.n, default: 1 },
      size: { type: 'string', maxLength: 20 },
      response_format: { type: 'string', maxLength: 20 },
      model: { type: 'string', maxLength: 200 },
      user: { type: 'string', maxLength: 200 },
      seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
      steps: { type: 'integer', minimum: 1, maximum: l.steps },
      guidance_scale: { type: 'number', minimum: 0, maximum: 50 },
      sampler: { type: 'string', enum: [...SAMPLERS] },
      karras: { type: 'boolean' },
      stream: { type: 'boolean' },
      retrieval: {
        anyOf: [
          { type: 'boolean' },
          {
            type: 'object',
            additionalProperties: false,
            properties: {
              k: { type: 'integer', minimum: 1, maximum: 16 },
              mode: { type: 'string', enum: [...RETRIEVAL_MODES] },
              query: { type: 'string', minLength: 1, maxLength: l.promptChars },
              references: {
                type: 'array',
                maxItems: l.references,
                items: {
                  anyOf: [
                    id,
                    { type: 'object', additionalProperties: false, required: ['id'], properties: { id } },
                    {
                      type: 'object',
                      additionalProperties: false,
                      required: ['b64_json'],
                      properties: {
                        b64_json: { type: 'string', minLength: 1 },
                        name: { type: 'string', maxLength: 500 },
                        source: { type: 'string', maxLength: 200 },
                        licence: { type: 'string', maxLength: 100 },
                        attribution: { type: 'string', maxLength: 1000 },
                      },
                    },
                    liveSchemas.urlReference,
                  ],
                },
              },
              exclude: { type: 'array', maxItems: l.exclude, items: id },
              sources: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 200 } },
              licences: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 100 } },
              min_score: { type: 'number', minimum: -1, maximum: 1 },
              scales: {
                type: 'object',
                additionalProperties: false,
                properties: { text: { type: 'number', minimum: 0, maximum: 50 }, retrieval: { type: 'number', minimum: 0, maximum: 50 } },
              },
              reference_init: {
                anyOf: [
                  { type: 'boolean', const: false },
                  { type: 'object', additionalProperties: false, properties: { strength: { type: 'number', exclusiveMinimum: 0, maximum: 1 }, blend: { type: 'integer', minimum: 1, maximum: 16 } } },
                ],
              },
              query_in_first_slot: { type: 'boolean' },
              neighbour_weighting: { type: 'string', enum: ['uniform', 'score'] },
              reflective: { type: 'boolean' },
              from: liveSchemas.from,
              budget: liveSchemas.budget,
            },
          },
        ],
      },
    },
  } as const;
}

export function searchQuery(l: Limits) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: {
      q: { type: 'string', minLength: 1, maxLength: l.promptChars },
      // Query strings are text: integers are checked by pattern and parsed by the route (no type coercion anywhere).
      k: { type: 'string', pattern: '^[0-9]{1,3}$' },
      offset: { type: 'string', pattern: '^[0-9]{1,7}$' },
      exclude: { type: 'string', maxLength: 200 * 64 },
    },
  } as const;
}

export const idParams = { type: 'object', required: ['id'], properties: { id } } as const;
export const thumbQuery = { type: 'object', additionalProperties: false, properties: { size: { type: 'string', pattern: '^[0-9]{2,3}$' } } } as const;
export const removeQuery = { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 500 } } } as const;
