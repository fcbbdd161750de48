// The console's one door to the flag server: same-origin fetches that carry the session cookie, the
// CSRF header on every write, and errors turned into one typed shape.

/** A field the server refused, as a 400's `details` lists it. */
export interface FieldIssue {
  field: string;
  message: string;
}

/** Codes the console adds to the server's `VIGIL_*` ones. */
export const CLIENT_CODES = {
  /** The server could not be reached at all (a network error, not an HTTP status). */
  unreachable: 'VIGIL_CONSOLE_UNREACHABLE',
  /** The server answered something that is not the JSON it documents. */
  badResponse: 'VIGIL_CONSOLE_BAD_RESPONSE',
} as const;

/** Every failed request: the HTTP status (0 when unreachable), the stable code and the details. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The 400's field issues (empty for other errors). */
  get issues(): FieldIssue[] {
    return Array.isArray(this.details)
      ? this.details.filter(
          (d): d is FieldIssue =>
            typeof d === 'object' && d !== null && typeof (d as FieldIssue).field === 'string',
        )
      : [];
  }
}

/** The session as `GET /api/v1/session` answers it. */
export interface Session {
  name: string;
  scope: Scope;
  /** The one environment a bound token may see (it may not list incidents or tokens either). */
  env?: string;
  expiresAt: string;
  csrfToken: string;
}

export type Scope = 'read' | 'ops' | 'admin';

const RANK: Record<Scope, number> = { read: 0, ops: 1, admin: 2 };

/** Whether a session of `scope` may do what needs `needed` (admin ⊃ ops ⊃ read). */
export function allows(scope: Scope | undefined, needed: Scope): boolean {
  return scope !== undefined && RANK[scope] >= RANK[needed];
}

/** The highest console scope among what the server reports (a string or a list of token scopes). */
export function consoleScope(reported: unknown): Scope | undefined {
  const list: unknown[] = Array.isArray(reported) ? reported : [reported];
  let best: Scope | undefined;
  for (const s of list) {
    if (s === 'read' || s === 'ops' || s === 'admin') {
      if (best === undefined || RANK[s] > RANK[best]) best = s;
    }
  }
  return best;
}

interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Answer the body as text (Markdown) instead of JSON. */
  text?: boolean;
  signal?: AbortSignal;
}

/** A response with the headers the console reads (ETag). */
export interface ApiResponse<T> {
  status: number;
  body: T;
  etag: string | null;
}

type Listener = (error: ApiError) => void;

/**
 * The API client. It keeps the CSRF token in memory only (never in storage): a reload refetches it
 * with `GET /api/v1/session`. A 401 on anything but the session itself tells `onUnauthorized`.
 */
export class Api {
  private csrf: string | undefined;
  private readonly unauthorized = new Set<Listener>();
  private readonly unreachable = new Set<(down: boolean) => void>();

  constructor(private readonly base = '/api/v1') {}

  /** Called when a request answers 401: the session expired or was signed out elsewhere. */
  onUnauthorized(listener: Listener): () => void {
    this.unauthorized.add(listener);
    return () => this.unauthorized.delete(listener);
  }

  /** Called with true when a request cannot reach the server, false when one reaches it again. */
  onReachability(listener: (down: boolean) => void): () => void {
    this.unreachable.add(listener);
    return () => this.unreachable.delete(listener);
  }

  setCsrf(token: string | undefined): void {
    this.csrf = token;
  }

  /** Signs in with an API token; the server answers with the session and sets its HttpOnly cookie. */
  async signIn(token: string): Promise<Session> {
    const session = normalizeSession(
      (await this.send<unknown>('POST', '/session', { body: { token } })).body,
    );
    this.csrf = session.csrfToken;
    return session;
  }

  /** The current session, or undefined when there is none (401). */
  async session(): Promise<Session | undefined> {
    try {
      const session = normalizeSession((await this.send<unknown>('GET', '/session')).body);
      this.csrf = session.csrfToken;
      return session;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return undefined;
      throw error;
    }
  }

  async signOut(): Promise<void> {
    try {
      await this.send('DELETE', '/session');
    } finally {
      this.csrf = undefined;
    }
  }

  get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.send<T>('GET', path, options).then((r) => r.body);
  }

  post<T>(path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    return this.send<T>('POST', path, { body: body ?? {}, ...(headers ? { headers } : {}) }).then(
      (r) => r.body,
    );
  }

  delete(path: string, headers?: Record<string, string>): Promise<void> {
    return this.send('DELETE', path, headers ? { headers } : {}).then(() => undefined);
  }

  /** Any request, answering status, body and ETag. */
  async send<T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { accept: options.text ? 'text/markdown' : 'application/json' };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET' && this.csrf) headers['x-vigil-csrf'] = this.csrf;
    Object.assign(headers, options.headers);
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        credentials: 'same-origin',
        cache: 'no-store',
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (cause) {
      if (options.signal?.aborted) throw cause;
      for (const l of this.unreachable) l(true);
      throw new ApiError(0, CLIENT_CODES.unreachable, 'The flag server cannot be reached.', {
        cause: String(cause),
      });
    }
    for (const l of this.unreachable) l(false);
    const etag = response.headers.get('etag');
    if (response.status === 204 || response.status === 304) {
      return { status: response.status, body: undefined as T, etag };
    }
    const text = await response.text();
    if (response.ok && options.text) return { status: response.status, body: text as T, etag };
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ApiError(
        response.status,
        CLIENT_CODES.badResponse,
        `The server answered ${response.status} with a body that is not JSON.`,
      );
    }
    if (!response.ok) {
      const error = errorOf(response.status, parsed);
      if (response.status === 401 && path !== '/session') for (const l of this.unauthorized) l(error);
      throw error;
    }
    return { status: response.status, body: parsed as T, etag };
  }
}

function errorOf(status: number, body: unknown): ApiError {
  const e = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (e && typeof e.code === 'string') {
    return new ApiError(status, e.code, typeof e.message === 'string' ? e.message : e.code, e.details);
  }
  return new ApiError(status, CLIENT_CODES.badResponse, `The server answered ${status}.`);
}

function normalizeSession(body: unknown): Session {
  const b = body as Record<string, unknown>;
  const scope = consoleScope(b.scope ?? b.scopes);
  if (typeof b.csrfToken !== 'string' || scope === undefined) {
    throw new ApiError(200, CLIENT_CODES.badResponse, 'The session answer lacks a scope or a CSRF token.');
  }
  return {
    name: String(b.name ?? ''),
    scope,
    expiresAt: String(b.expiresAt ?? ''),
    csrfToken: b.csrfToken,
    ...(typeof b.env === 'string' ? { env: b.env } : {}),
  };
}

/** A path segment, encoded. */
export const seg = (s: string) => encodeURIComponent(s);

/** The ETag's version number (`"42"` → 42), or undefined. */
export function etagVersion(etag: string | null): number | undefined {
  const m = etag ? /^(?:W\/)?"?(\d+)"?$/.exec(etag) : null;
  return m ? Number(m[1]) : undefined;
}
