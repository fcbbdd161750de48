import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { errorBodySchema } from '@vigil/proto';
import { type Config, displayUrl } from './config.js';
import { CliError, cliError, serverRefused } from './errors.js';

// Resolves from src/ (tsx) and from dist/ (the build) alike: both sit one level below package.json.
const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** The CLI's version, as `--version` prints it and the User-Agent carries it. */
export const CLI_VERSION = version;

/** A successful answer (2xx), body unread as JSON. */
export interface HttpAnswer {
  status: number;
  contentType: string;
  text: string;
  /** The body as it came (e.g. a database file from `POST /api/v1/backup`). */
  bytes: Uint8Array;
  /** `GET /api/v1/...`, for messages. */
  what: string;
}

export type Method = 'GET' | 'POST';

/** Why a request got no answer: the network error's code (ECONNREFUSED, ENOTFOUND, ...) and message. */
function networkCause(error: unknown): string {
  const cause = (error as { cause?: unknown })?.cause as
    | { code?: string; message?: string; errors?: { code?: string; message?: string }[] }
    | undefined;
  const first = cause?.errors?.[0];
  const code = cause?.code ?? first?.code;
  const message = cause?.message || first?.message || (error as Error)?.message || String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The first characters of a body, for messages about an answer that is not Vigil's. */
export function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 160 ? `${flat.slice(0, 160)}…` : flat;
}

/** How many times a write whose outcome the server could not know is sent again (with its key). */
export const WRITE_RETRIES = 3;
/** The wait before the first of those retries; it doubles after each. */
const WRITE_RETRY_DELAY_MS = 250;

/**
 * One request to the flag server with the bearer token and the timeout. Resolves with 2xx answers;
 * rejects with a `CliError`: the server's refusal (its `VIGIL_*` code, exit 1), no answer (exit 3)
 * or an answer that is not a Vigil error body (exit 4).
 *
 * Every write (POST) carries a fresh `Idempotency-Key`. When the server answers 503
 * `VIGIL_WRITE_OUTCOME_UNKNOWN` (the write reached its store, the reply did not come back) the same
 * request is sent again with the same key, up to {@link WRITE_RETRIES} times (also through
 * `VIGIL_STORE_UNAVAILABLE` answers that follow, which speak only for their own attempt): the server
 * applies it at most once and answers a repeat with the first response. Retries exhausted, the
 * outcome is reported as unknown.
 */
export async function request(
  config: Config,
  method: Method,
  path: string,
  body?: unknown,
): Promise<HttpAnswer> {
  const key = method === 'GET' ? undefined : randomUUID();
  let unknown: CliError | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestOnce(config, method, path, body, key);
    } catch (error) {
      const code = error instanceof CliError ? error.code : undefined;
      if (code === 'VIGIL_WRITE_OUTCOME_UNKNOWN') unknown = error as CliError;
      // After an unknown outcome, "not applied" speaks only for that attempt: the first may have been.
      const retry = code === 'VIGIL_WRITE_OUTCOME_UNKNOWN' || (unknown && code === 'VIGIL_STORE_UNAVAILABLE');
      if (!retry || attempt >= WRITE_RETRIES)
        throw unknown && code === 'VIGIL_STORE_UNAVAILABLE' ? unknown : error;
      await new Promise((resolve) => setTimeout(resolve, WRITE_RETRY_DELAY_MS * 2 ** attempt));
    }
  }
}

async function requestOnce(
  config: Config,
  method: Method,
  path: string,
  body: unknown,
  idempotencyKey: string | undefined,
): Promise<HttpAnswer> {
  const url = new URL(path, config.baseUrl);
  const what = `${method} ${url.pathname}`;
  const where = displayUrl(config.baseUrl);
  const headers: Record<string, string> = {
    authorization: `Bearer ${config.token}`,
    accept: 'application/json, text/markdown;q=0.9, application/vnd.sqlite3;q=0.8',
    'user-agent': `vigil-cli/${CLI_VERSION}`,
  };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
  let status: number;
  let contentType: string;
  let text: string;
  let bytes: Uint8Array;
  try {
    const response = await fetch(url, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      redirect: 'error',
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    status = response.status;
    contentType = response.headers.get('content-type') ?? '';
    bytes = new Uint8Array(await response.arrayBuffer());
    text = contentType.startsWith('application/vnd.sqlite3') ? '' : new TextDecoder().decode(bytes);
  } catch (error) {
    if ((error as Error)?.name === 'TimeoutError') {
      throw cliError(
        'VIGIL_CLI_TIMEOUT',
        `no answer from ${where} within ${config.timeoutMs / 1000} s (${what})`,
        {
          hint:
            method === 'POST'
              ? 'the change may or may not have been applied: check with `vigil flags get` / `vigil incidents show`; raise --timeout if the server is slow'
              : 'check that the server is up; raise --timeout (or VIGIL_TIMEOUT) if it is slow',
          cause: error,
        },
      );
    }
    throw cliError(
      'VIGIL_CLI_UNREACHABLE',
      `cannot reach the Vigil server at ${where} (${networkCause(error)})`,
      {
        hint: 'check --url / VIGIL_URL and that the flag server is running',
        cause: error,
      },
    );
  }
  if (status >= 200 && status < 300) return { status, contentType, text, bytes, what };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const refusal = errorBodySchema.safeParse(json);
  if (refusal.success) {
    const { code, message, details } = refusal.data.error;
    throw serverRefused(status, code, message, details);
  }
  throw cliError(
    'VIGIL_CLI_BAD_RESPONSE',
    `${where} answered ${what} with HTTP ${status} but not a Vigil error${text ? `: ${snippet(text)}` : ''}`,
    {
      status,
      hint: 'is --url / VIGIL_URL the flag server itself (not a proxy or another service)?',
    },
  );
}
