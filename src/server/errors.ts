/**
 * The one mapping from ragdiff error codes to HTTP statuses, and the one
 * shape of an error reply: `{ error: { code, message } }` (never a stack).
 *
 * Kept in this one file so the closed ErrorCode set (src/errors.ts, when it
 * lands) can replace `httpStatusOf` at merge without touching the routes.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { httpStatusOf as libraryStatusOf, isErrorCode } from '../error-codes.js';

/** Codes the server itself raises (all in the closed table of src/error-codes.ts, which maps every code to its status). */
export type ServerCode =
  | 'INVALID_REQUEST' | 'INVALID_JSON' | 'UNSUPPORTED_MEDIA_TYPE' | 'PAYLOAD_TOO_LARGE' | 'NOT_FOUND' | 'JOB_NOT_FOUND'
  | 'UNAUTHORIZED' | 'FORBIDDEN' | 'PROMPT_BLOCKED' | 'NOT_AN_IMAGE' | 'SHUTTING_DOWN' | 'NO_STORE' | 'INTERNAL'
  | 'INVALID_MULTIPART' | 'MODEL_NOT_FOUND';

/** HTTP status for a ragdiff error code: the one mapping, src/error-codes.ts; unknown codes are server faults (500). */
export function httpStatusOf(code: string | undefined): number {
  return libraryStatusOf(code);
}

/** An error the routes throw: a code from the mapping and a message safe to show. */
export class HttpError extends Error {
  /** `fields`: OpenAI's `type` and `param`, where an OpenAI client looks for them (e.g. MODEL_NOT_FOUND). */
  constructor(readonly code: ServerCode | string, message: string, readonly headers: Record<string, string> = {}, readonly fields: OpenAiErrorFields = {}) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Fastify's own errors (router, parser, limits, validation) in ragdiff's terms: a closed-set code, never FST_*. */
function fromFastify(e: FastifyError): { code: string; message: string } | undefined {
  if (e.validation) return { code: 'INVALID_REQUEST', message: e.message };
  switch (e.code) {
    case 'FST_ERR_BAD_URL':
      return { code: 'INVALID_REQUEST', message: 'the URL path is not valid (bad percent-encoding)' };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { code: 'INVALID_REQUEST', message: `a path parameter is longer than ${MAX_PARAM_LENGTH} characters` };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { code: 'INVALID_JSON', message: `the body is not valid JSON: ${e.message}` };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return { code: 'PAYLOAD_TOO_LARGE', message: e.message };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return { code: 'UNSUPPORTED_MEDIA_TYPE', message: e.message };
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return { code: 'INVALID_REQUEST', message: e.message };
  return undefined;
}

/** Longest path parameter (ids): the same limit as the routes' id schema. */
export const MAX_PARAM_LENGTH = 200;
export interface OpenAiErrorFields {
  type?: string;
  param?: string | null;
}

export interface ErrorBody {
  error: { code: string; message: string } & OpenAiErrorFields;
}

/**
 * Status, headers and body for any thrown value. Server faults are logged and
 * answered without detail; `redact` rewrites the server's paths out of the message.
 */
export function errorReply(e: unknown, log?: (e: unknown) => void, redact: (s: string) => string = (s) => s): { status: number; headers: Record<string, string>; body: ErrorBody } {
  const err = e as FastifyError & { code?: unknown; headers?: Record<string, string> };
  // Fastify's and its plugins' errors: FST_* codes, schema errors, and client errors a plugin raises with only a status (e.g. 416 from @fastify/static).
  const clientOnly = !isErrorCode(err?.code) && typeof err?.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500;
  const fast = (typeof err?.code === 'string' && err.code.startsWith('FST_')) || err?.validation || clientOnly ? fromFastify(err) : undefined;
  const code = fast?.code ?? (typeof err?.code === 'string' ? err.code : 'INTERNAL');
  const status = fast ? httpStatusOf(fast.code) : httpStatusOf(code);
  if (status >= 500 && status !== 503) {
    log?.(e);
    return { status, headers: {}, body: { error: { code: code === 'INTERNAL' || !isErrorCode(code) ? 'INTERNAL' : code, message: 'internal error; see the server log' } } };
  }
  const message = fast?.message ?? (typeof err?.message === 'string' ? err.message : String(e));
  return { status, headers: err instanceof HttpError ? err.headers : {}, body: { error: { code, message: redact(message), ...(err instanceof HttpError ? err.fields : {}) } } };
}

/** Fastify error handler using the mapping (also fastify's `frameworkErrors`: bad URLs, over-long parameters). */
export function errorHandler(redact: (s: string) => string) {
  return function handleError(e: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    const r = errorReply(e, (x) => request.log.error({ err: x }, 'request failed'), redact);
    void reply.code(r.status).headers(r.headers).send(r.body);
  };
}

