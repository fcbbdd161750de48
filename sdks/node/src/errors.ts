/**
 * Every error the Node SDK reports, with a stable code. None is thrown into the application's request
 * path: they reach `client.on('error')`, the logger, and — for a refused key only — `waitForReady`.
 */
export const SDK_ERRORS = {
  /** `createClient` was given options it cannot use (thrown by `createClient`). */
  VIGIL_SDK_INVALID_OPTIONS: 'invalid client options',
  /** The server does not know the SDK key (close code 4401 or HTTP 401); the client stops retrying. */
  VIGIL_SDK_UNAUTHORIZED: 'SDK key refused',
  /** The key is known but may not use the SDK endpoints (4403 or HTTP 403); the client stops retrying. */
  VIGIL_SDK_FORBIDDEN: 'SDK key not allowed',
  /** The bootstrap file or object could not be read or is not a valid snapshot. */
  VIGIL_SDK_BOOTSTRAP: 'bootstrap unusable',
  /** The server sent a message that is not valid JSON or not a valid message; the client resyncs. */
  VIGIL_SDK_PROTOCOL: 'invalid message from the server',
  /** The stream could not be opened or was lost; the client reconnects (and may poll meanwhile). */
  VIGIL_SDK_STREAM: 'stream unavailable',
  /** `GET /v1/flags` failed; the client keeps its last known flags and polls again. */
  VIGIL_SDK_POLL: 'polling failed',
  /** `POST /v1/metrics` failed or was refused; summaries are retried on the next flush or dropped. */
  VIGIL_SDK_METRICS: 'metrics not delivered',
} as const;

export type SdkErrorCode = keyof typeof SDK_ERRORS;

/** An SDK error with a stable `code`; `status` is the HTTP status or WebSocket close code involved, if any. */
export class VigilSdkError extends Error {
  readonly code: SdkErrorCode;
  readonly status: number | undefined;
  readonly details: unknown;

  constructor(
    code: SdkErrorCode,
    message: string,
    options: { status?: number; details?: unknown; cause?: unknown } = {},
  ) {
    super(
      `${SDK_ERRORS[code]}: ${message}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'VigilSdkError';
    this.code = code;
    this.status = options.status;
    this.details = options.details;
  }
}

/** True for a `VigilSdkError`, optionally of one code. */
export function isVigilSdkError(error: unknown, code?: SdkErrorCode): error is VigilSdkError {
  return error instanceof VigilSdkError && (code === undefined || error.code === code);
}

/** A short description of anything thrown, for logs and error messages. */
export function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const code = (cause as { code?: unknown } | undefined)?.code ?? (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
