/** Process exit codes: scripts and on-call runbooks branch on these, so they never change meaning. */
export const EXIT = {
  OK: 0,
  /** The server answered with a Vigil error (`{ error: { code, message } }`): it refused the request. */
  REFUSED: 1,
  /** The command line or the environment is wrong (unknown command, missing VIGIL_TOKEN, bad URL). */
  USAGE: 2,
  /** No answer: connection refused, DNS failure, reset, timeout. */
  UNREACHABLE: 3,
  /** An answer this CLI cannot read: not Vigil at that URL, or a server of another version. */
  BAD_RESPONSE: 4,
  /** A bug in the CLI itself (EX_SOFTWARE). */
  INTERNAL: 70,
} as const;

/** Every error the CLI raises itself, with its exit code. Server refusals keep the server's own code. */
export const CLI_ERRORS = {
  VIGIL_CLI_USAGE: EXIT.USAGE,
  VIGIL_CLI_BAD_OPTION: EXIT.USAGE,
  VIGIL_CLI_NO_TOKEN: EXIT.USAGE,
  VIGIL_CLI_BAD_URL: EXIT.USAGE,
  VIGIL_CLI_UNREACHABLE: EXIT.UNREACHABLE,
  VIGIL_CLI_TIMEOUT: EXIT.UNREACHABLE,
  VIGIL_CLI_BAD_RESPONSE: EXIT.BAD_RESPONSE,
  VIGIL_CLI_INTERNAL: EXIT.INTERNAL,
} as const;

export type CliErrorCode = keyof typeof CLI_ERRORS;

export interface CliErrorOptions {
  /** HTTP status of the answer, when there was one. */
  status?: number;
  details?: unknown;
  /** What to do about it, for people. */
  hint?: string;
  cause?: unknown;
}

/**
 * An error the CLI reports and exits on. `code` is a `VIGIL_CLI_*` code, or the server's own `VIGIL_*`
 * code when the server refused the request (exit 1).
 */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly status: number | undefined;
  readonly details: unknown;
  readonly hint: string | undefined;

  constructor(code: string, exitCode: number, message: string, options: CliErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.code = code;
    this.exitCode = exitCode;
    this.status = options.status;
    this.details = options.details;
    this.hint = options.hint;
  }

  /** The error as `--json` prints it on stderr. */
  toJSON(): { code: string; message: string; status?: number; details?: unknown; hint?: string } {
    return {
      code: this.code,
      message: this.message,
      ...(this.status === undefined ? {} : { status: this.status }),
      ...(this.details === undefined ? {} : { details: this.details }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    };
  }
}

/** A CLI error with one of the `VIGIL_CLI_*` codes; its exit code follows from the code. */
export function cliError(code: CliErrorCode, message: string, options?: CliErrorOptions): CliError {
  return new CliError(code, CLI_ERRORS[code], message, options);
}

const HINTS: Record<string, string> = {
  VIGIL_UNAUTHORIZED: 'check VIGIL_TOKEN: the server does not know this token (or it was revoked)',
  VIGIL_FORBIDDEN:
    'use a token with the scope or environment the message names (kill, revive, schedules and incidents need ops)',
  VIGIL_RATE_LIMITED: 'wait a moment and retry',
  VIGIL_STORE_UNAVAILABLE:
    "the server cannot reach its store and did not apply the change; retry, and see the runbook's Redis outage section",
  VIGIL_WRITE_OUTCOME_UNKNOWN:
    'the change reached the store but its outcome is unknown, and the retries with the same Idempotency-Key found no answer; check with a read command (`vigil flags get`, `vigil incidents show`) before running it again',
};

/** The server refused the request with `{ error: { code, message, details } }`. */
export function serverRefused(status: number, code: string, message: string, details: unknown): CliError {
  const hint = HINTS[code];
  return new CliError(code, EXIT.REFUSED, message, {
    status,
    ...(details === undefined ? {} : { details }),
    ...(hint === undefined ? {} : { hint }),
  });
}

/** Any thrown value as a `CliError`; anything unexpected is a bug in the CLI. */
export function toCliError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return cliError('VIGIL_CLI_INTERNAL', `unexpected error: ${message}`, { cause: error });
}
