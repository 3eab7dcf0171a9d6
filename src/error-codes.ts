/**
 * The closed set of error codes ragdiff throws (JS and the native addon alike),
 * each with its meaning and the HTTP status a service answers with.
 *
 * `ErrorCode` is derived from this table, and RagdiffError / typeError /
 * rangeError accept only an ErrorCode, so a code that is not listed here does
 * not compile. docs/errors.md is the same table for readers; a test checks that
 * the two agree and that every code the addon throws is listed.
 *
 * TO ADD A CODE: add one line to the group it belongs to (input, files, images,
 * models, store, network, runtime), with a one-line meaning and its status, then
 * the same row in docs/errors.md. Statuses: 400 bad input, 403 refused by policy
 * or permissions, 404 not found, 408 too slow, 409 conflicting state (locked, mismatched),
 * 410 gone, 413 too large, 431 headers too large, 415 unsupported media, 422 undecodable, 429 busy,
 * 499 aborted by the caller, 500 internal or server-side setup, 501 not supported
 * by this model or build, 502/504 an upstream server failed, 503 closed.
 */

interface CodeInfo {
  readonly status: number;
  readonly meaning: string;
}

export const ERROR_CODES = {
  // ---- arguments and requests (the caller's input)
  INVALID_ARGUMENT: { status: 400, meaning: 'a required argument is missing or arguments conflict (CLI)' },
  INVALID_TYPE: { status: 400, meaning: 'an argument has the wrong type' },
  INVALID_VALUE: { status: 400, meaning: 'an argument has the right type but a value that is not allowed' },
  OUT_OF_RANGE: { status: 400, meaning: 'a number is outside its documented bounds' },
  LENGTH_MISMATCH: { status: 400, meaning: 'an array or tensor has the wrong number of elements' },
  NON_FINITE: { status: 400, meaning: 'a tensor or number holds NaN or ±Infinity' },
  UNKNOWN_OPTION: { status: 400, meaning: 'an options object has a key ragdiff does not know (misspelt?)' },
  UNSUPPORTED_OPTION: { status: 400, meaning: 'an option that does not apply to the chosen sampler' },
  PROMPT_TOO_LONG: { status: 400, meaning: 'a prompt is longer than MAX_PROMPT_CHARS (longer prompts are truncated to the text encoder, up to that cap)' },

  // ---- scheduler state (native samplers)
  INVALID_CONFIG: { status: 400, meaning: 'a scheduler config field has the wrong type or value' },
  UNSUPPORTED_CONFIG: { status: 400, meaning: 'a scheduler config asks for something ragdiff does not implement' },
  UNKNOWN_CONFIG_KEY: { status: 400, meaning: 'a scheduler config has a key diffusers does not define (misspelt?)' },
  TIMESTEPS_NOT_SET: { status: 409, meaning: 'a scheduler was stepped before setTimesteps()' },
  TIMESTEP_MISMATCH: { status: 400, meaning: 'step() got a timestep other than the current step\'s' },
  TIMESTEP_NOT_IN_SCHEDULE: { status: 400, meaning: 'a timestep that the current schedule does not contain' },
  SCHEDULE_FINISHED: { status: 409, meaning: 'every step of the schedule has been taken' },
  NOISE_REQUIRED: { status: 400, meaning: 'a stochastic step was called without noise' },
  HISTORY_REQUIRED: { status: 400, meaning: 'a multistep solver step was called without its history' },

  // ---- user files (readUserFile) and output paths
  FILE_NOT_FOUND: { status: 404, meaning: 'no file or directory at the given path (a dangling symlink included)' },
  IS_DIRECTORY: { status: 400, meaning: 'a path that must name a file names a directory' },
  FILE_NOT_REGULAR: { status: 400, meaning: 'a path names a FIFO, socket or device, not a regular file' },
  FILE_TOO_LARGE: { status: 413, meaning: 'a file is larger than the limit for its use' },
  FILE_UNREADABLE: { status: 403, meaning: 'a file or directory exists but cannot be read (permissions, I/O error)' },
  OUTPUT_NOT_WRITABLE: { status: 403, meaning: 'an output path cannot be created or written (parent not a directory, read-only, unreachable)' },
  SYMLINK_LOOP: { status: 400, meaning: 'a directory walk met a symlink cycle (reported, not followed)' },
  PATH_REPEATED: { status: 400, meaning: 'a directory walk met a directory already listed through another link (reported, skipped)' },

  // ---- images (decode and the store's gate)
  IMAGE_EMPTY: { status: 400, meaning: 'image input has 0 bytes' },
  IMAGE_TOO_LARGE: { status: 413, meaning: 'an image is over the byte or pixel limit (checked before decoding)' },
  IMAGE_UNSUPPORTED: { status: 415, meaning: 'bytes that are not an accepted image format' },
  IMAGE_CORRUPT: { status: 422, meaning: 'an image whose header parses but whose pixels do not decode' },
  IMAGE_BLOCKED: { status: 403, meaning: 'an image refused by a screen or matching a blocked image' },

  // ---- models and bundles (server-side setup)
  MODEL_FILE_MISSING: { status: 500, meaning: 'a file the model bundle needs does not exist' },
  MODEL_FILE_INVALID: { status: 500, meaning: 'a bundle file exists but cannot be parsed or is inconsistent' },
  MODEL_IO_MISMATCH: { status: 500, meaning: 'an ONNX model\'s inputs or outputs are not what the bundle layout needs' },
  MODEL_RUN_FAILED: { status: 500, meaning: 'ONNX Runtime failed while running a model' },
  UNSUPPORTED: { status: 501, meaning: 'this model cannot do what was asked (e.g. no vae_encoder for image-to-image)' },
  ENCODER_INVALID: { status: 500, meaning: 'an --encoder module does not export a usable encoder' },
  EMBED_FAILED: { status: 500, meaning: 'the image or text encoder failed or returned bad embeddings' },
  EMBEDDING_INVALID: { status: 500, meaning: 'an embedding is zero, non-finite or of the wrong width' },

  // ---- model conversion (src/convert: ragdiff convert)
  WEIGHTS_INVALID: { status: 422, meaning: 'a safetensors file is truncated or its header lies (offsets, overlaps, dtype/shape vs size, header size)' },
  WEIGHTS_PICKLED: { status: 415, meaning: 'a pickled weights file (.bin/.pt/.ckpt): loading it runs code; convert it to safetensors first' },
  WEIGHTS_MISMATCH: { status: 409, meaning: 'adapter weights do not fit the model (width, block count or family; the first mismatch is named)' },
  CONVERT_REFUSED: { status: 409, meaning: 'a model cannot be converted as asked (already converted, fused attention, no attention found, output inside the source)' },

  // ---- the image store
  STORE_NOT_FOUND: { status: 404, meaning: 'no store in the directory and create: false' },
  STORE_LOCKED: { status: 409, meaning: 'another process holds the store\'s lock' },
  STORE_CLOSED: { status: 503, meaning: 'the store was closed' },
  STORE_CORRUPT: { status: 500, meaning: 'the store\'s files are inconsistent or unreadable' },
  STORE_WRITE_FAILED: { status: 500, meaning: 'writing to the store failed (disk full, permissions)' },
  STORE_EMPTY: { status: 409, meaning: 'a query on a store with no active images' },
  ENCODER_MISMATCH: { status: 409, meaning: 'the store was embedded by another encoder; rebuild with --reembed' },
  IMAGE_NOT_FOUND: { status: 404, meaning: 'no active image with this id' },
  IMAGE_REMOVED: { status: 410, meaning: 'the image was removed (opt-out) and is never returned again' },
  IMAGE_MISSING: { status: 500, meaning: 'a stored image\'s bytes are gone from disk' },
  IMAGE_CHANGED: { status: 409, meaning: 'a referenced (--no-copy) file changed since it was added' },
  INVALID_STATE: { status: 409, meaning: 'the operation does not apply to the item\'s current state' },
  DEMO_DATA_MISSING: { status: 500, meaning: 'the demo store\'s emoji package is not installed' },
  DEMO_BUILD_FAILED: { status: 500, meaning: 'building the demo store failed' },
  STORE_READ_ONLY: { status: 409, meaning: 'a write was asked of a store opened read-only' },
  STORE_LOCK_FAILED: { status: 500, meaning: 'the store\'s writer lock file could not be opened or locked' },
  STORE_UNREACHABLE: { status: 502, meaning: 'the store\'s database refused, dropped or timed out the connection' },
  VECTOR_EXTENSION_MISSING: { status: 500, meaning: 'the PostgreSQL database lacks the pgvector extension (install it, then CREATE EXTENSION vector)' },
  SCHEMA_TOO_NEW: { status: 409, meaning: 'the store\'s database schema was written by a newer ragdiff' },

  // ---- retrieval-augmented generation (src/rag) and its evaluation (src/eval)
  REFERENCE_NOT_FOUND: { status: 404, meaning: 'a pinned reference id is not in the store (or has no embedding)' },
  REFERENCE_REMOVED: { status: 410, meaning: 'a pinned reference was removed at its owner\'s request' },
  REFERENCE_BLOCKED: { status: 403, meaning: 'a pinned or uploaded reference is blocked by policy or refused by the screen' },
  NO_PROVENANCE: { status: 422, meaning: 'a PNG carries no ragdiff provenance chunk (not made by ragdiff, or stripped)' },
  EVAL_SPLIT_MISSING: { status: 500, meaning: 'the bundle has no held-out split (split.json), or the store lacks its images' },
  EVAL_SEED_OVERLAP: { status: 400, meaning: 'evaluation seeds overlap the seeds used for tuning' },
  EVAL_SPLIT_INVALID: { status: 500, meaning: 'the bundle\'s split.json is malformed' },
  EVAL_ENCODER_MISMATCH: { status: 409, meaning: 'the evaluation\'s store was embedded by another encoder than the bundle\'s' },
  EVAL_UNKNOWN_NAME: { status: 400, meaning: 'an evaluation target is not a base emoji name' },
  EVAL_PROMPTS_MISMATCH: { status: 400, meaning: 'two arms\' per-prompt scores cover different prompts' },
  EVAL_DATA_MISSING: { status: 500, meaning: 'the emoji data the evaluation needs is not installed' },
  EVAL_DATA_INVALID: { status: 500, meaning: 'the emoji data the evaluation reads is malformed' },

  // ---- safety policies (src/safety)
  POLICY_INVALID: { status: 400, meaning: 'a safety policy is malformed (the field is named); the policy in force stays in force' },
  POLICY_MISMATCH: { status: 409, meaning: 'a safety policy was embedded by another encoder (embedding width differs)' },
  PROMPT_BLOCKED: { status: 403, meaning: 'the prompt matches a blocked concept of the safety policy (the rule is named)' },

  // ---- trajectory retrieval (src/trajectory: knowledge bases)
  UNSUPPORTED_SCHEDULER: { status: 400, meaning: 'a scheduler_config.json _class_name ragdiff has no sampler for, and no sampler was chosen explicitly' },
  KB_MISMATCH: { status: 409, meaning: 'a knowledge base was built for another model, scheduler, steps, guidance or shape (the field is named)' },
  KB_CORRUPT: { status: 422, meaning: 'a knowledge base fails its checksums' },
  KB_TRUNCATED: { status: 422, meaning: 'a knowledge base file ends early' },
  KB_NOT_A_BASE: { status: 415, meaning: 'the file is not a ragdiff knowledge base' },
  KB_VERSION: { status: 422, meaning: 'a knowledge base of a format version this build cannot read' },
  KB_NOT_FOUND: { status: 404, meaning: 'no knowledge base at the path' },
  KB_LOCKED: { status: 409, meaning: 'another process is appending to the knowledge base' },
  KB_EXISTS: { status: 409, meaning: 'a knowledge base already exists at the path' },
  KB_INVALID: { status: 400, meaning: 'a knowledge base header or record is not valid' },
  KB_EMPTY: { status: 409, meaning: 'the knowledge base holds no trajectories' },
  KB_CLOSED: { status: 503, meaning: 'the knowledge base was closed' },
  K_TOO_LARGE: { status: 400, meaning: 'k is larger than the knowledge base' },

  // ---- network (add-url)
  URL_INVALID: { status: 400, meaning: 'not a parseable URL' },
  URL_SCHEME: { status: 400, meaning: 'a URL scheme other than http or https' },
  URL_CREDENTIALS: { status: 400, meaning: 'a URL with user:password' },
  URL_ADDRESS_REFUSED: { status: 403, meaning: 'a URL resolving to a loopback, private or metadata address not allowed' },
  DNS_FAILED: { status: 502, meaning: 'the host name did not resolve' },
  FETCH_FAILED: { status: 502, meaning: 'the connection or transfer failed' },
  FETCH_STATUS: { status: 502, meaning: 'the server answered with a non-2xx status' },
  FETCH_REDIRECTS: { status: 502, meaning: 'too many redirects' },
  FETCH_TIMEOUT: { status: 504, meaning: 'the fetch ran past its time limit' },
  FETCH_TOO_LARGE: { status: 413, meaning: 'the response is larger than maxBytes' },
  FETCH_CONTENT_TYPE: { status: 415, meaning: 'the response\'s content type is not an image' },
  FETCH_NOT_IMAGE: { status: 415, meaning: 'the response bytes are not an image' },

  // ---- live sources (src/sources: Openverse, Commons, an operator's search API, plain URLs)
  SOURCE_UNKNOWN: { status: 400, meaning: 'a live source name that no connector has' },
  SOURCE_NOT_ENABLED: { status: 403, meaning: 'a live source the operator did not enable' },
  SOURCE_CONFIG: { status: 400, meaning: 'a source configuration is invalid (a field path the answer does not have is named)' },
  SOURCE_BAD_ANSWER: { status: 502, meaning: 'a search API answered malformed JSON or an unexpected shape' },
  SOURCE_RATE_LIMITED: { status: 429, meaning: 'a search API kept answering 429 within the budget' },
  SOURCE_FAILED: { status: 502, meaning: 'a live source the request marked required failed' },

  // ---- the HTTP service (src/server)
  INVALID_REQUEST: { status: 400, meaning: 'a request does not match the route\'s schema (the field is named)' },
  INVALID_JSON: { status: 400, meaning: 'the request body is not valid JSON' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'the request\'s content type is not accepted by the route' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'the request body or an uploaded file is over the service\'s limit' },
  NOT_AN_IMAGE: { status: 415, meaning: 'an uploaded file is not an image' },
  REQUEST_TIMEOUT: { status: 408, meaning: 'the request (headers and body) did not arrive within the service\'s request timeout; the connection is closed' },
  HEADERS_TOO_LARGE: { status: 431, meaning: 'the request\'s headers are larger than the service accepts' },
  INVALID_MULTIPART: { status: 400, meaning: 'a multipart/form-data body that does not parse (no boundary, garbage, a part cut short)' },
  NOT_FOUND: { status: 404, meaning: 'no such route' },
  JOB_NOT_FOUND: { status: 404, meaning: 'no generation job with this id (finished results are kept a short while)' },
  MODEL_NOT_FOUND: { status: 404, meaning: 'a request names a model this service does not serve (GET /v1/models lists them)' },
  UNAUTHORIZED: { status: 401, meaning: 'a missing or wrong API key' },
  FORBIDDEN: { status: 403, meaning: 'the API key may not use this route (e.g. a generate-only key writing references)' },
  NO_STORE: { status: 409, meaning: 'the service runs without a store; reference routes are unavailable' },
  SHUTTING_DOWN: { status: 503, meaning: 'the service is shutting down and takes no new work' },

  // ---- the generation queue (BullMQ on Redis) and its workers
  QUEUE_UNAVAILABLE: { status: 503, meaning: 'the queue\'s Redis cannot be reached' },
  QUEUE_MISCONFIGURED: { status: 500, meaning: 'Redis is configured so that queued jobs could be lost (maxmemory-policy other than noeviction)' },
  JOB_INVALID: { status: 500, meaning: 'a queued job\'s payload is malformed (edited in Redis or from another version); it is failed, not retried' },
  MODEL_MISMATCH: { status: 409, meaning: 'a queued job asks for a model other than the worker\'s (the worker does not run it)' },
  NO_WORKER: { status: 503, meaning: 'no queue worker has announced the model the server was started for' },
  RESULT_EXPIRED: { status: 410, meaning: 'a queued job\'s images are no longer in the blob directory (expired or removed)' },

  // ---- runtime
  BUSY: { status: 429, meaning: 'the pipeline\'s queue is full; retry later' },
  ABORTED: { status: 499, meaning: 'the caller\'s AbortSignal fired' },
  CLOSED: { status: 503, meaning: 'the pipeline is closed' },
  WORKER_FAILED: { status: 500, meaning: 'an inference worker failed to start or died' },
  ADDON_NOT_BUILT: { status: 500, meaning: 'the native addon file does not exist' },
  ADDON_LOAD_FAILED: { status: 500, meaning: 'the native addon exists but does not load' },
  CUDA_UNAVAILABLE: { status: 501, meaning: 'CUDA was asked for but the build or machine has none' },
  CUDA_ERROR: { status: 500, meaning: 'a CUDA call failed' },
  INTERNAL: { status: 500, meaning: 'a bug: an invariant did not hold, or an error without a code' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Every code, in table order. */
export const ALL_ERROR_CODES = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.hasOwn(ERROR_CODES, v);
}

/**
 * The HTTP status for an error code; 500 for anything that is not a known code
 * (an error without a code is a bug as far as a client can tell).
 */
export function httpStatusOf(code: unknown): number {
  return isErrorCode(code) ? ERROR_CODES[code].status : 500;
}

/** The HTTP status for any thrown value, by its `code`. */
export function httpStatusOfError(e: unknown): number {
  return httpStatusOf(typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined);
}
