import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TokenInfo, TokenScope } from '@vigil/proto';
import type { FastifyRequest } from 'fastify';
import type { Principal, Tokens } from './auth.js';
import { VigilError } from './errors.js';

/** The console's session cookie. */
export const SESSION_COOKIE = 'vigil_session';
/** The header a cookie-authenticated write must carry, holding the session's CSRF token. */
export const CSRF_HEADER = 'x-vigil-csrf';

/** Scopes that may sign in to the console; SDK keys may not. */
const CONSOLE_SCOPES: readonly TokenScope[] = ['admin', 'ops', 'read'];
/** The scope a session reports: the strongest the token holds. */
const SCOPE_ORDER = ['admin', 'ops', 'read'] as const;
export type ConsoleScope = (typeof SCOPE_ORDER)[number];

const SIGNATURE_VERSION = 'v1';
/** Revoked session ids kept before expired ones are swept. */
const SWEEP_AT = 1000;

/** A verified session: its id, when it ends (epoch ms) and who it acts as. */
export interface Session {
  id: string;
  expiresAt: number;
  tokenId: string;
  principal: Principal;
}

/** What `POST`/`GET /api/v1/session` answer. */
export interface SessionBody {
  name: string;
  scope: ConsoleScope;
  scopes: TokenScope[];
  env?: string;
  expiresAt: string;
  csrfToken: string;
}

export interface SessionOptions {
  /**
   * The secret every replica shares (`sessionSecret`): session cookies are signed with a key derived
   * from it, so any replica accepts a cookie another one issued. Random per process when absent.
   */
  secret?: string;
  ttlMs: number;
  /** How long the token list behind sessions is trusted before it is read again (`tokenCacheMs`). */
  cacheMs: number;
  now?: () => number;
}

const b64 = (buffer: Buffer) => buffer.toString('base64url');

function principalOf(token: TokenInfo): Principal {
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    ...(token.env === undefined ? {} : { env: token.env }),
    clientOnly: token.scopes.includes('sdk-client'),
  };
}

/** Equal strings, compared in constant time. */
function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Console sessions. A session is an HMAC-signed cookie value `id.expiry.tokenId.signature` keyed from
 * the shared secret, so every replica verifies it without asking the others; each request also checks
 * that the token still exists (the store's token list, cached for `cacheMs`), so deleting a token ends
 * its sessions. Signing out records the id as revoked until it would have expired (on this replica; the
 * browser drops the cookie at once).
 */
export class Sessions {
  private readonly key: Buffer;
  private readonly now: () => number;
  private readonly revoked = new Map<string, number>();
  private readonly deleted = new Set<string>();
  private byId?: Map<string, Principal>;
  private listedAt = Number.NEGATIVE_INFINITY;
  private listing?: Promise<Map<string, Principal>>;
  private readonly stopRevoke: () => void;

  constructor(
    private readonly tokens: Tokens,
    private readonly options: SessionOptions,
  ) {
    const secret = options.secret ?? b64(randomBytes(32));
    this.key = createHash('sha256').update(`vigil-session\0${secret}`).digest();
    this.now = options.now ?? Date.now;
    this.stopRevoke = tokens.onRevoke((id) => {
      this.deleted.add(id);
      this.byId?.delete(id);
    });
  }

  /** Whether the signing key came from a shared secret (else only this process accepts its cookies). */
  get shared(): boolean {
    return this.options.secret !== undefined;
  }

  get ttlMs(): number {
    return this.options.ttlMs;
  }

  close(): void {
    this.stopRevoke();
  }

  /** Exchanges a token secret for a session; 401 for an unknown token, 403 for an SDK key. */
  async signIn(secret: string): Promise<{ cookie: string; session: Session }> {
    const principal = await this.tokens.authenticate(secret);
    if (!principal) throw new VigilError('VIGIL_UNAUTHORIZED', 'unknown token');
    if (!principal.scopes.some((s) => CONSOLE_SCOPES.includes(s))) {
      throw new VigilError(
        'VIGIL_FORBIDDEN',
        `token "${principal.name}" is an SDK key; sign in with an admin, ops or read token`,
      );
    }
    const id = b64(randomBytes(16));
    // Whole seconds, as the cookie carries it.
    const expiresAt = Math.ceil((this.now() + this.options.ttlMs) / 1000) * 1000;
    const payload = `${id}.${expiresAt / 1000}.${principal.id}`;
    // A token created moments ago is not in the cached list yet; its session must work at once.
    this.byId?.set(principal.id, principal);
    return {
      cookie: `${payload}.${this.sign(payload)}`,
      session: { id, expiresAt, tokenId: principal.id, principal },
    };
  }

  /** The session a cookie value holds, or undefined when it is forged, expired, signed out or its token deleted. */
  async verify(cookie: string | undefined): Promise<Session | undefined> {
    if (!cookie) return undefined;
    const parts = cookie.split('.');
    if (parts.length !== 4) return undefined;
    const [id, expiry, tokenId, signature] = parts as [string, string, string, string];
    if (!/^\d{1,13}$/.test(expiry) || !same(signature, this.sign(`${id}.${expiry}.${tokenId}`))) {
      return undefined;
    }
    const expiresAt = Number(expiry) * 1000;
    if (expiresAt <= this.now() || this.revoked.has(id) || this.deleted.has(tokenId)) return undefined;
    let principal = (await this.principals()).get(tokenId);
    // Signed in on another replica with a token newer than this replica's list: read the list again.
    if (!principal && this.listedAt < expiresAt - this.options.ttlMs) {
      principal = (await this.principals(true)).get(tokenId);
    }
    if (!principal) return undefined;
    return { id, expiresAt, tokenId, principal };
  }

  /** Ends a session (sign-out): this server refuses its cookie from now on. */
  end(session: Pick<Session, 'id' | 'expiresAt'>): void {
    if (this.revoked.size >= SWEEP_AT) {
      const now = this.now();
      for (const [id, until] of this.revoked) if (until <= now) this.revoked.delete(id);
    }
    this.revoked.set(session.id, session.expiresAt);
  }

  /** A new CSRF token for a session: `nonce.hmac(session id, nonce)`; any one issued for it is accepted. */
  csrfToken(sessionId: string): string {
    const nonce = b64(randomBytes(12));
    return `${nonce}.${this.sign(`csrf.${sessionId}.${nonce}`)}`;
  }

  /** True when `token` is a CSRF token issued for this session. */
  checkCsrf(sessionId: string, token: string | undefined): boolean {
    if (!token) return false;
    const [nonce, signature, extra] = token.split('.');
    if (!nonce || !signature || extra !== undefined) return false;
    return same(signature, this.sign(`csrf.${sessionId}.${nonce}`));
  }

  /** The response body for a session, with a fresh CSRF token. */
  body(session: Session): SessionBody {
    const { principal } = session;
    return {
      name: principal.name,
      scope: SCOPE_ORDER.find((s) => principal.scopes.includes(s)) ?? 'read',
      scopes: [...principal.scopes],
      ...(principal.env === undefined ? {} : { env: principal.env }),
      expiresAt: new Date(session.expiresAt).toISOString(),
      csrfToken: this.csrfToken(session.id),
    };
  }

  private sign(payload: string): string {
    return b64(createHmac('sha256', this.key).update(`${SIGNATURE_VERSION}.${payload}`).digest());
  }

  /**
   * Tokens by id, from the store's list, read again after `cacheMs` (one read at a time). While the
   * store is unreachable the last list serves, as verified bearer tokens do.
   */
  private async principals(fresh = false): Promise<Map<string, Principal>> {
    if (!fresh && this.byId && this.now() - this.listedAt < this.options.cacheMs) return this.byId;
    this.listing ??= this.tokens
      .list()
      .then(
        (list) => {
          this.byId = new Map(list.map((t) => [t.id, principalOf(t)]));
          this.listedAt = this.now();
          return this.byId;
        },
        (error: unknown) => {
          if (this.byId) return this.byId;
          throw error;
        },
      )
      .finally(() => {
        this.listing = undefined;
      });
    return this.listing;
  }
}

/** The host (and port) of an `Origin` header; undefined for `null` or anything that is not a URL. */
function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Refuses (403 `VIGIL_CSRF`) a request a browser marks as coming from another site: an `Origin` whose
 * host is not the one the request was sent to (`Host`, or `X-Forwarded-Host` with `trustProxy`), or
 * `Sec-Fetch-Site` other than `same-origin`. The scheme is not compared: behind a proxy that ends TLS
 * without `X-Forwarded-Proto` the server would see http where the browser says https. Headers that are
 * absent pass (non-browser clients send neither).
 */
export function checkSameOrigin(request: FastifyRequest): void {
  const origin = request.headers.origin;
  if (origin !== undefined && originHost(origin) !== request.host.toLowerCase()) {
    throw new VigilError('VIGIL_CSRF', `cross-origin request refused (Origin ${origin})`);
  }
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') {
    throw new VigilError('VIGIL_CSRF', `cross-site request refused (Sec-Fetch-Site ${site})`);
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Authenticates a request by its session cookie: undefined without one; 401 when it is no longer a
 * session; for a state-changing method, 403 `VIGIL_CSRF` unless it carries the session's CSRF token in
 * `X-Vigil-CSRF` and comes from the same origin.
 */
export async function sessionPrincipal(
  sessions: Sessions,
  request: FastifyRequest,
): Promise<Session | undefined> {
  const cookie = request.cookies?.[SESSION_COOKIE];
  if (!cookie) return undefined;
  const session = await sessions.verify(cookie);
  if (!session) throw new VigilError('VIGIL_UNAUTHORIZED', 'session expired or ended; sign in again');
  if (!SAFE_METHODS.has(request.method)) {
    const header = request.headers[CSRF_HEADER];
    if (!sessions.checkCsrf(session.id, typeof header === 'string' ? header : undefined)) {
      throw new VigilError('VIGIL_CSRF', `missing or wrong ${CSRF_HEADER} header for this session`);
    }
    checkSameOrigin(request);
  }
  return session;
}
