/**
 * Every error the flag server reports, with a stable code and HTTP status. The REST error body
 * `{ error: { code, message, details } }` is built from these in one Fastify error handler.
 */
export const ERRORS = {
  VIGIL_BAD_REQUEST: 400,
  VIGIL_INVALID_CONFIG: 400,
  VIGIL_UNAUTHORIZED: 401,
  VIGIL_FORBIDDEN: 403,
  /** A console (session cookie) write without its CSRF token, or from another origin. */
  VIGIL_CSRF: 403,
  VIGIL_NOT_FOUND: 404,
  VIGIL_ALREADY_EXISTS: 409,
  /** The target is still referenced (a prerequisite, a segment in a rule, the last admin token). */
  VIGIL_IN_USE: 409,
  /** The target's state does not allow the request (e.g. pausing a completed schedule). */
  VIGIL_INVALID_STATE: 409,
  VIGIL_VERSION_CONFLICT: 412,
  VIGIL_PRECONDITION_REQUIRED: 428,
  VIGIL_PAYLOAD_TOO_LARGE: 413,
  /** The request's headers are larger than the server reads (answered before any route is chosen). */
  VIGIL_HEADERS_TOO_LARGE: 431,
  /** The request did not arrive in time (answered before any route is chosen). */
  VIGIL_REQUEST_TIMEOUT: 408,
  VIGIL_UNSUPPORTED_MEDIA_TYPE: 415,
  VIGIL_RATE_LIMITED: 429,
  VIGIL_INTERNAL: 500,
  /** The store could not be reached and the write was not applied (it never reached the store). */
  VIGIL_STORE_UNAVAILABLE: 503,
  /**
   * The write reached the store but its reply did not come back (a timeout, a connection lost): it may
   * or may not be applied. Retry it with the same `Idempotency-Key` to learn which.
   */
  VIGIL_WRITE_OUTCOME_UNKNOWN: 503,
  /** An `Idempotency-Key` already used for another request (another route, target or body). */
  VIGIL_IDEMPOTENCY_KEY_REUSED: 422,
  /** The server's own configuration (env vars, config file) is invalid; stops start-up, never sent over HTTP. */
  VIGIL_SERVER_CONFIG: 500,
  /** The embedded store's data directory is held by another running process; stops start-up, never sent over HTTP. */
  VIGIL_DATA_DIR_LOCKED: 500,
  /** The embedded store's database is damaged (SQLite's check failed); stops start-up, never sent over HTTP. */
  VIGIL_DATA_DIR_DAMAGED: 500,
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code; `details` (e.g. the bad fields) reaches the client as is. */
export class VigilError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VigilError';
    this.code = code;
    this.statusCode = ERRORS[code];
    this.details = details;
  }
}

/** True for a `VigilError` with the given code. */
export function isVigilError(error: unknown, code?: ErrorCode): error is VigilError {
  return error instanceof VigilError && (code === undefined || error.code === code);
}
