import { createHash, randomBytes } from 'node:crypto';
import { type TokenInfo, type TokenScope, tokenInfoSchema } from '@vigil/proto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isVigilError, VigilError } from './errors.js';
import type { IdempotencyClaim, Store, StoredToken } from './store/store.js';

/** Every token secret starts with this, so leaked secrets are easy to scan for. */
export const SECRET_PREFIX = 'vgl_';

/** Who may call a route: each access level lists the scopes that grant it. */
export const ACCESS = {
  /** Reading flags, segments, audit. */
  read: ['admin', 'ops', 'read'],
  /** Kill/revive (and, later, schedules and incidents). */
  ops: ['admin', 'ops'],
  /** Writing configuration and managing tokens. */
  admin: ['admin'],
  /** Server-side evaluation: people and server SDK keys, never public client keys. */
  evaluate: ['admin', 'ops', 'read', 'sdk-server'],
  /** SDK endpoints under `/v1`; the environment comes from the key. */
  sdk: ['sdk-server', 'sdk-client'],
} as const satisfies Record<string, readonly TokenScope[]>;
export type Access = keyof typeof ACCESS;

const SDK_SCOPES: readonly TokenScope[] = ['sdk-server', 'sdk-client'];

/** The verified caller of a request. */
export interface Principal {
  id: string;
  name: string;
  scopes: readonly TokenScope[];
  /** The environment the token is bound to (always set for SDK keys). */
  env?: string;
  /** True for `sdk-client` keys, which see only `clientSide` flags. */
  clientOnly: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scopes allowed to call the route; routes without it are public. */
    access?: Access;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** A new token secret: the prefix and 256 random bits. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64url');
}

/** What the store keeps instead of the secret. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

// Recent secrets' hashes: an SDK polling or a client reconnecting presents the same key each time,
// and hashing it per request costs more than answering a 304. Bounded; cleared when full.
const recentHashes = new Map<string, string>();
const MAX_RECENT_HASHES = 10_000;

function cachedHash(secret: string): string {
  let hash = recentHashes.get(secret);
  if (hash === undefined) {
    if (recentHashes.size >= MAX_RECENT_HASHES) recentHashes.clear();
    hash = hashSecret(secret);
    recentHashes.set(secret, hash);
  }
  return hash;
}

/** Body of `POST /tokens`. SDK keys need an environment and hold exactly one SDK scope. */
export const createTokenSchema = tokenInfoSchema
  .pick({ name: true, scopes: true, env: true })
  .superRefine((input, ctx) => {
    const scopes = new Set(input.scopes);
    if (scopes.size !== input.scopes.length)
      ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'duplicate scope' });
    const sdk = input.scopes.filter((s) => SDK_SCOPES.includes(s));
    if (sdk.length > 0 && input.scopes.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['scopes'],
        message: 'an SDK key holds exactly one scope (sdk-server or sdk-client)',
      });
    }
    if (sdk.length > 0 && input.env === undefined) {
      ctx.addIssue({ code: 'custom', path: ['env'], message: 'required for SDK keys' });
    }
  });
export type CreateTokenInput = ReturnType<typeof createTokenSchema.parse>;

function toPrincipal(token: StoredToken): Principal {
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    ...(token.env === undefined ? {} : { env: token.env }),
    clientOnly: token.scopes.includes('sdk-client'),
  };
}

function toInfo(token: StoredToken): TokenInfo {
  const { secretHash: _hash, ...info } = token;
  return info;
}

/**
 * Issues, verifies and revokes tokens. Verified tokens are cached for `cacheMs` (the SDK polling path
 * must not hit the store per request); an entry past its time is looked up again, and kept when the
 * store is unreachable, so SDKs keep being served during an outage.
 */
export class Tokens {
  private readonly cache = new Map<string, { principal: Principal; at: number }>();
  private readonly inflight = new Map<string, Promise<Principal | undefined>>();
  private readonly revokeListeners = new Set<(id: string) => void>();

  constructor(
    private readonly store: Store,
    private readonly cacheMs: number,
  ) {}

  /** The principal for a secret, or undefined when no such token exists. */
  async authenticate(secret: string): Promise<Principal | undefined> {
    const hash = cachedHash(secret);
    const hit = this.cache.get(hash);
    if (hit && Date.now() - hit.at < this.cacheMs) return hit.principal;
    let pending = this.inflight.get(hash);
    if (!pending) {
      pending = this.lookup(hash, hit?.principal).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  private async lookup(hash: string, stale: Principal | undefined): Promise<Principal | undefined> {
    let stored: StoredToken | undefined;
    try {
      stored = await this.store.findToken(hash);
    } catch (error) {
      if (stale) return stale;
      throw error;
    }
    if (!stored) {
      this.cache.delete(hash);
      return undefined;
    }
    const principal = toPrincipal(stored);
    this.cache.set(hash, { principal, at: Date.now() });
    return principal;
  }

  /** Creates a token; the secret is returned here and never again (a replay of its idempotency claim aside). */
  async create(
    input: CreateTokenInput,
    createdBy: string,
    secret = generateSecret(),
    idempotency?: IdempotencyClaim,
  ): Promise<{ token: TokenInfo; secret: string }> {
    const stored: StoredToken = {
      id: `tok_${randomBytes(9).toString('base64url')}`,
      name: input.name,
      scopes: input.scopes,
      ...(input.env === undefined ? {} : { env: input.env }),
      createdAt: new Date().toISOString(),
      createdBy,
      secretHash: hashSecret(secret),
    };
    await this.store.createToken(stored, idempotency);
    return { token: toInfo(stored), secret };
  }

  list(): Promise<TokenInfo[]> {
    return this.store.listTokens();
  }

  /** Deletes a token; refuses to delete the last admin token that is not bound to an environment. */
  async delete(id: string, idempotency?: IdempotencyClaim): Promise<void> {
    const tokens = await this.store.listTokens();
    const token = tokens.find((t) => t.id === id);
    if (!token) throw new VigilError('VIGIL_NOT_FOUND', `no token ${id}`);
    const isRoot = (t: TokenInfo) => t.scopes.includes('admin') && t.env === undefined;
    if (isRoot(token) && tokens.filter(isRoot).length === 1) {
      throw new VigilError('VIGIL_IN_USE', 'cannot delete the last admin token', { field: 'id', id });
    }
    if (!(await this.store.deleteToken(id, idempotency)))
      throw new VigilError('VIGIL_NOT_FOUND', `no token ${id}`);
    for (const [hash, entry] of this.cache) if (entry.principal.id === id) this.cache.delete(hash);
    for (const listener of this.revokeListeners) listener(id);
  }

  /** Called with a token's id when it is deleted through this server (open streams close). */
  onRevoke(listener: (id: string) => void): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }
}

/** The outcome of {@link bootstrapAdmin}. */
export type Bootstrap =
  | { created: true; secret: string; token: TokenInfo; fromEnv: boolean }
  | { created: false; adminTokenUnknown: boolean };

/**
 * On first start (no tokens at all) creates an admin token, from `adminToken` when given, else random,
 * and returns its secret so the caller can print it once. Later starts create nothing.
 */
export async function bootstrapAdmin(store: Store, adminToken?: string): Promise<Bootstrap> {
  const existing = await store.listTokens();
  if (existing.length > 0) {
    const adminTokenUnknown = adminToken !== undefined && !(await store.findToken(hashSecret(adminToken)));
    return { created: false, adminTokenUnknown };
  }
  const tokens = new Tokens(store, 0);
  let created: { token: TokenInfo; secret: string };
  try {
    created = await tokens.create(
      { name: 'bootstrap-admin', scopes: ['admin'] },
      'bootstrap',
      adminToken ?? generateSecret(),
    );
  } catch (error) {
    // Replicas starting together on an empty store race to create the same VIGIL_ADMIN_TOKEN; one wins.
    if (adminToken === undefined || !isVigilError(error, 'VIGIL_ALREADY_EXISTS')) throw error;
    return { created: false, adminTokenUnknown: false };
  }
  return { created: true, ...created, fromEnv: adminToken !== undefined };
}

/** The secret in `Authorization: Bearer <secret>`, if any. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** The SDK key of a request: the bearer token, else the `key` query parameter (browsers). */
export function sdkKey(request: FastifyRequest): string | undefined {
  const bearer = bearerToken(request);
  if (bearer) return bearer;
  const key = (request.query as Record<string, unknown> | undefined)?.key;
  return typeof key === 'string' && key !== '' ? key : undefined;
}

/**
 * Checks a principal against a route's access level and the environment it addresses; throws the
 * 403 to send. Routes without an environment (tokens) need a token not bound to one.
 */
export function authorize(principal: Principal, access: Access, env: string | undefined): void {
  const allowed: readonly TokenScope[] = ACCESS[access];
  if (!principal.scopes.some((scope) => allowed.includes(scope))) {
    throw new VigilError(
      'VIGIL_FORBIDDEN',
      `token "${principal.name}" lacks a scope for this route (needs one of ${allowed.join(', ')})`,
    );
  }
  if (access === 'sdk' || principal.env === undefined) return;
  if (env !== principal.env) {
    throw new VigilError(
      'VIGIL_FORBIDDEN',
      env === undefined
        ? `token "${principal.name}" is bound to environment ${principal.env}`
        : `token "${principal.name}" may not access environment ${env}`,
    );
  }
}

const authentications = new WeakMap<FastifyRequest, Promise<Principal | undefined>>();

/**
 * The principal of the token a request presents for its route (the SDK key on SDK routes, else the
 * bearer token); undefined when it presents none or an unknown one. Looked up once per request: the
 * rate limiter keys its budgets by it before the access check runs.
 */
export function authenticateRequest(request: FastifyRequest, tokens: Tokens): Promise<Principal | undefined> {
  let pending = authentications.get(request);
  if (pending === undefined) {
    const secret = request.routeOptions.config.access === 'sdk' ? sdkKey(request) : bearerToken(request);
    pending = secret === undefined ? Promise.resolve(undefined) : tokens.authenticate(secret);
    authentications.set(request, pending);
  }
  return pending;
}

/**
 * Authenticates a request by other means than a bearer token (the console's session cookie): the
 * principal, undefined when the request carries none, or a throw (expired session, CSRF).
 */
export type CookieAuth = (request: FastifyRequest) => Promise<Principal | undefined>;

/**
 * Verifies the caller of every route that declares `config.access`, before its body is read:
 * 401 for a missing or unknown token, 403 for a wrong scope or environment. The check is added to each
 * such route (after the rate limiter's hook, so guessing tokens is rate limited too).
 */
export function setupAuth(app: FastifyInstance, tokens: Tokens, cookieAuth?: CookieAuth): void {
  const verify = async (request: FastifyRequest): Promise<void> => {
    const access = request.routeOptions.config.access!;
    const secret = access === 'sdk' ? sdkKey(request) : bearerToken(request);
    // Without a bearer token, people's routes also accept the console's session cookie.
    const principal = secret
      ? await authenticateRequest(request, tokens)
      : access === 'sdk'
        ? undefined
        : await cookieAuth?.(request);
    if (!principal) {
      throw new VigilError(
        'VIGIL_UNAUTHORIZED',
        secret ? 'unknown token' : 'missing token (Authorization: Bearer <token>)',
      );
    }
    const env = (request.params as Record<string, string> | undefined)?.env;
    authorize(principal, access, env);
    request.principal = principal;
  };
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    if (!route.config?.access) return;
    const existing = route.onRequest;
    route.onRequest = [
      ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]),
      verify,
    ];
  });
}

/** The verified caller; for routes declaring `config.access` it is always set. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new VigilError('VIGIL_UNAUTHORIZED', 'missing token');
  return request.principal;
}
