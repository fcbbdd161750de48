/**
 * A failed delivery attempt. `retryable` says whether sending again can help: network errors,
 * timeouts, 408, 429 and 5xx can; any other answer (a 4xx, a redirect) means the request itself is
 * wrong and will keep failing until someone fixes the configuration.
 */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;
  /** From `Retry-After` on a 429 or 503: how long the service asked us to wait. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    options: { retryable: boolean; status?: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = 'DeliveryError';
    this.retryable = options.retryable;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

export interface HttpResponse {
  status: number;
  /** The body as text, cut at 64 KiB. */
  body: string;
}

export interface PostOptions {
  headers?: Record<string, string>;
  timeoutMs: number;
  /** Epoch ms of the outbox clock, to read an HTTP-date `Retry-After`. */
  now: number;
}

const MAX_BODY = 64 * 1024;
/** Longest wait a `Retry-After` may impose; a broken header must not park a notification for days. */
const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/**
 * POSTs a JSON body and resolves with a 2xx response; rejects with a `DeliveryError` otherwise.
 * Redirects are not followed: a signed or authenticated POST should reach the configured URL or fail.
 * Error messages never hold the URL (a Slack webhook URL is itself a secret).
 */
export async function postJson(url: string, body: string, options: PostOptions): Promise<HttpResponse> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'vigil-guardian', ...options.headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    throw networkError(error, options.timeoutMs);
  }
  let text: string;
  try {
    text = await readCapped(response);
  } catch (error) {
    throw networkError(error, options.timeoutMs);
  }
  const { status } = response;
  if (status >= 200 && status < 300) return { status, body: text };
  const detail = `HTTP ${status}${text ? `: ${oneLine(text, 300)}` : ''}`;
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs =
      status === 429 || status === 503
        ? parseRetryAfter(response.headers.get('retry-after'), options.now)
        : undefined;
    throw new DeliveryError(detail, { retryable: true, status, retryAfterMs });
  }
  throw new DeliveryError(detail, { retryable: false, status });
}

/** `Retry-After` as delta-seconds or an HTTP-date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  let ms: number;
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

function networkError(error: unknown, timeoutMs: number): DeliveryError {
  const name = (error as Error | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new DeliveryError(`no answer within ${timeoutMs} ms`, { retryable: true, cause: error });
  }
  // fetch says "fetch failed" and keeps the reason (ECONNRESET, ECONNREFUSED...) in `cause`.
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const reason = cause?.code ?? cause?.message ?? (error as Error | undefined)?.message ?? String(error);
  return new DeliveryError(`network error: ${reason}`, { retryable: true, cause: error });
}

async function readCapped(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < MAX_BODY) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  if (size >= MAX_BODY) await reader.cancel().catch(() => {});
  return Buffer.concat(chunks).subarray(0, MAX_BODY).toString('utf8');
}

/** `text` on one line, at most `max` characters. */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
