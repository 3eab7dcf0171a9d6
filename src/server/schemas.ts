/**
 * JSON schemas of the request bodies and query strings (fastify validates
 * them with ajv before a handler runs; a mismatch is a 400 naming the field).
 * Limits live here so the schema and the page agree on them.
 */
import { RETRIEVAL_MODES } from '../rag/index.js';
import { SAMPLERS } from '../pipeline/params.js';
import type { FromSchema } from './from-schema.js';

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
const unit = { type: 'number', minimum: 0, maximum: 1 } as const;
const scale = { type: 'number', minimum: -100, maximum: 100 } as const;
/** An image sent inline, with what the provenance records about it. */
const inlineImage = {
  type: 'object',
  additionalProperties: false,
  required: ['b64_json'],
  properties: {
    b64_json: { type: 'string', minLength: 1, description: 'the encoded image (PNG, JPEG, WebP, GIF, AVIF, TIFF), base64' },
    name: { type: 'string', maxLength: 500 },
    source: { type: 'string', maxLength: 200 },
    licence: { type: 'string', maxLength: 100 },
    attribution: { type: 'string', maxLength: 1000 },
  },
} as const;

/**
 * `retrieval` as an object: every option of the library's RetrievalOptions
 * (src/rag/types.ts) in snake_case; the library checks the values against the
 * bundle (k against its slots, modes it supports) and names the field.
 */
export function retrievalOptions(l: Limits) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: {
      k: { type: 'integer', minimum: 1, maximum: 16, description: 'references used, pinned ones included' },
      mode: { type: 'string', enum: [...RETRIEVAL_MODES] },
      query: {
        description: 'what to search with (default: the prompt): text, an image, or an embedding of the store\'s width',
        anyOf: [
          { type: 'string', minLength: 1, maxLength: l.promptChars },
          { type: 'object', additionalProperties: false, required: ['b64_json'], properties: { b64_json: { type: 'string', minLength: 1 } } },
          { type: 'object', additionalProperties: false, required: ['embedding'], properties: { embedding: { type: 'array', minItems: 1, maxItems: 4096, items: { type: 'number' } } } },
        ],
      },
      references: {
        type: 'array',
        maxItems: l.references,
        description: 'pinned references, always used ahead of retrieved ones: a store id, { id }, or an inline image',
        items: { anyOf: [id, { type: 'object', additionalProperties: false, required: ['id'], properties: { id } }, inlineImage] },
      },
      exclude: { type: 'array', maxItems: l.exclude, items: id },
      sources: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 200 } },
      licences: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 100 } },
      tags: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 200 } },
      min_score: { type: 'number', minimum: -1, maximum: 1 },
      scales: {
        type: 'object',
        additionalProperties: false,
        properties: { text: { type: 'number', minimum: 0, maximum: 50 }, retrieval: { type: 'number', minimum: 0, maximum: 50 } },
      },
      query_in_first_slot: { type: 'boolean' },
      neighbour_weighting: { type: 'string', enum: ['uniform', 'score'] },
      mixture: {
        type: 'object',
        additionalProperties: false,
        description: 'ReMoDiffuse condition mixture (mode "mixture")',
        properties: {
          coarse_scale: scale,
          fine_below: { type: 'number', minimum: 0, maximum: 100_000 },
          fine: { type: 'object', additionalProperties: false, required: ['both', 'text', 'retrieval'], properties: { both: scale, text: scale, retrieval: scale } },
        },
      },
      interleave: { type: 'object', additionalProperties: false, description: 'Re-Imagen interleaved guidance (mode "interleaved")', properties: { text_share: unit } },
      reference_init: {
        anyOf: [
          { type: 'boolean', const: false },
          { type: 'object', additionalProperties: false, properties: { strength: { type: 'number', exclusiveMinimum: 0, maximum: 1 }, blend: { type: 'integer', minimum: 1, maximum: 16 } } },
        ],
      },
      reference_attention: {
        description: 'attend to the references\' latent (false: off, where the bundle turns it on by default)',
        anyOf: [
          { type: 'boolean', const: false },
          {
            type: 'object',
            additionalProperties: false,
            properties: { fidelity: unit, blend: { type: 'integer', minimum: 1, maximum: 16 }, branches: { type: 'string', enum: ['prompt', 'retrieval'] } },
          },
        ],
      },
      reflective: {
        description: 're-rank against a cheap draft: sim(query, ref) − lambda·sim(draft, ref)',
        anyOf: [
          { type: 'boolean' },
          {
            type: 'object',
            additionalProperties: false,
            properties: { lambda: { type: 'number', minimum: 0, maximum: 10 }, draft_steps: { type: 'integer', minimum: 1, maximum: 100 }, candidates: { type: 'integer', minimum: 1, maximum: 1000 } },
          },
        ],
      },
      retrieve_only: {
        type: 'object',
        additionalProperties: false,
        required: ['above'],
        description: 'answer with the best stored image when it scores at least "above" (and generate too with also_generate)',
        properties: { above: { type: 'number', minimum: -1, maximum: 1 }, also_generate: { type: 'boolean' } },
      },
    },
  } as const;
}

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
      model: { type: 'string', maxLength: 200, description: 'a model GET /v1/models lists (others are 404 model_not_found)' },
      user: { type: 'string', maxLength: 200 },
      seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
      steps: { type: 'integer', minimum: 1, maximum: l.steps },
      guidance_scale: { type: 'number', minimum: 0, maximum: 50 },
      sampler: { type: 'string', enum: [...SAMPLERS] },
      karras: { type: 'boolean' },
      stream: { type: 'boolean' },
      retrieval: { description: 'true (default with a store): retrieve by the prompt; false: none; an object: the options', anyOf: [{ type: 'boolean' }, retrievalOptions(l)] },
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
export type IdParams = FromSchema<typeof idParams>;
export const thumbQuery = { type: 'object', additionalProperties: false, properties: { size: { type: 'string', pattern: '^[0-9]{2,3}$' } } } as const;
export const removeQuery = { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 500 } } } as const;
