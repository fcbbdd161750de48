/**
 * Every error the browser SDK reports, with a stable code. None is thrown into the application: they
 * reach `client.on('error')`, `client.lastError` and — for a refused key — `waitForReady`.
 */
export const SDK_ERRORS = {
  /** `createClient` was given no server (`url` or `urls`); thrown by `createClient`. */
  VIGIL_SDK_INVALID_OPTIONS: 'invalid client options',
  /** The server does not know the client key (close code 4401 or HTTP 401); the client stops retrying. */
  VIGIL_SDK_UNAUTHORIZED: 'client key refused',
  /** The key is known but may not use the SDK endpoints (4403 or HTTP 403); the client stops retrying. */
  VIGIL_SDK_FORBIDDEN: 'client key not allowed',
  /** The bootstrap object is not a snapshot; it is ignored. */
  VIGIL_SDK_BOOTSTRAP: 'bootstrap unusable',
  /** The server sent something that is not a valid message; the client reconnects for a fresh snapshot. */
  VIGIL_SDK_PROTOCOL: 'invalid message from the server',
  /** The stream could not be opened or was lost; the client reconnects (and may poll meanwhile). */
  VIGIL_SDK_STREAM: 'stream unavailable',
  /** `GET /v1/flags` failed; the client keeps its last known flags and polls again. */
  VIGIL_SDK_POLL: 'polling failed',
  /** `POST /v1/metrics` failed or was refused. */
  VIGIL_SDK_METRICS: 'metrics not delivered',
  /** `waitForReady` timed out before any flags arrived. */
  VIGIL_SDK_TIMEOUT: 'not ready in time',
  /** The client was closed. */
  VIGIL_SDK_CLOSED: 'client closed',
  /** An event listener threw (it is reported, the others still run). */
  VIGIL_SDK_LISTENER: 'event listener threw',
} as const;

export type SdkErrorCode = keyof typeof SDK_ERRORS;

/** An SDK error with a stable `code`; `status` is the HTTP status or WebSocket close code involved, if any. */
export class VigilSdkError extends Error {
  readonly code: SdkErrorCode;
  readonly status: number | undefined;

  constructor(code: SdkErrorCode, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(
      `${SDK_ERRORS[code]}: ${message}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'VigilSdkError';
    this.code = code;
    this.status = options.status;
  }
}

/** True for a `VigilSdkError`, optionally of one code. */
export function isVigilSdkError(error: unknown, code?: SdkErrorCode): error is VigilSdkError {
  return error instanceof VigilSdkError && (code === undefined || error.code === code);
}

/** A short description of anything thrown, for error messages. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
