import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify';
import { authenticateRequest, type CookieAuth, type Principal, type Tokens } from './auth.js';
import type { Config } from './config.js';
import { VigilError } from './errors.js';

/**
 * The rate-limit budgets. Each counts apart, so no kind of traffic can spend another's:
 * - `kill`: `POST …/flags/:key/kill` and `…/revive`, per token. Evaluation, polling or admin traffic
 *   never delays a kill.
 * - `evaluate`: `POST /api/v1/envs/:env/evaluate`, per token (a service's budget, whatever its IPs).
 * - `sdk`: `GET /v1/flags` and `/ofrep/*`, per SDK key and client IP: an SDK key is shared by every
 *   instance of an app (a client key by every browser), so a budget per key alone would have to grow
 *   with the fleet, while one per IP alone made services behind one NAT share it.
 * - `metrics`: `POST /v1/metrics`, per SDK key and client IP, like `sdk`.
 * - `admin`: the rest of `/api/v1`, per token.
 * A request without a valid token counts per client IP in its route's budget (guessing tokens is
 * limited too); a valid token's budget is not touched by such requests.
 */
export type Budget = 'kill' | 'evaluate' | 'sdk' | 'metrics' | 'admin';

const KILL_ROUTE = /^\/api\/v1\/envs\/:env\/flags\/:key\/(?:kill|revive)$/;

/** The budget a route spends, by its URL pattern (and method); undefined for routes not limited. */
export function budgetOf(method: string | readonly string[], url: string): Budget | undefined {
  if (url.startsWith('/api/')) {
    const methods = typeof method === 'string' ? [method] : method;
    if (KILL_ROUTE.test(url) && methods.every((m) => m === 'POST')) return 'kill';
    if (url === '/api/v1/envs/:env/evaluate') return 'evaluate';
    return 'admin';
  }
  if (url === '/v1/metrics') return 'metrics';
  if (url === '/v1/flags' || url.startsWith('/ofrep/')) return 'sdk';
  // Streams, ops endpoints and the console are served from memory or are cheap.
  return undefined;
}

/** Requests per rate-limit window each budget allows one key. */
function budgetMax(config: Config): Record<Budget, number> {
  return {
    kill: config.killRateLimitMax,
    evaluate: config.evaluateRateLimitMax,
    sdk: config.sdkRateLimitMax,
    metrics: config.metricsRateLimitMax,
    admin: config.rateLimitMax,
  };
}

/**
 * A request's principal: its token's, else (people's routes) its console session's; undefined for
 * none, an unknown token, or a failed lookup (the access check answers those).
 */
async function principalOrNone(
  request: FastifyRequest,
  tokens: Tokens,
  cookieAuth: CookieAuth | undefined,
): Promise<Principal | undefined> {
  try {
    const principal = await authenticateRequest(request, tokens);
    if (principal || cookieAuth === undefined || request.routeOptions.config.access === 'sdk')
      return principal;
    return await cookieAuth(request);
  } catch {
    return undefined;
  }
}

/**
 * Rate limits every budget (see {@link Budget}) with @fastify/rate-limit, in memory per server.
 * The limiter runs before the access check, so its key generator looks the token up itself (the
 * check then reuses that lookup), or the console session given `cookieAuth`. `rateLimitMax: 0` turns
 * every limit off.
 */
export async function setupRateLimits(
  app: FastifyInstance,
  config: Config,
  tokens: Tokens,
  cookieAuth?: CookieAuth,
): Promise<void> {
  if (config.rateLimitMax === 0) return;
  const max = budgetMax(config);
  const perToken = async (request: FastifyRequest) => {
    const principal = await principalOrNone(request, tokens, cookieAuth);
    return principal ? `token:${principal.id}` : `ip:${request.ip}`;
  };
  const perKeyAndIp = async (request: FastifyRequest) => {
    const principal = await principalOrNone(request, tokens, cookieAuth);
    return principal ? `token:${principal.id}|${request.ip}` : `ip:${request.ip}`;
  };
  const keyOf: Record<Budget, (request: FastifyRequest) => Promise<string>> = {
    kill: perToken,
    evaluate: perToken,
    sdk: perKeyAndIp,
    metrics: perKeyAndIp,
    admin: perToken,
  };

  // One limiter per budget, shared by all of its routes (kill and revive spend one counter); made on
  // first use, after the plugin is registered. Added to a route's onRequest hooks here, ahead of the
  // token check's. The hook itself is added before the plugin's own, which then sees `rateLimit: false`
  // on these routes and puts the admin API's (global) limiter on the others.
  const limiters = new Map<Budget, ReturnType<FastifyInstance['rateLimit']>>();
  const limiterOf = (budget: Exclude<Budget, 'admin'>) => {
    let limiter = limiters.get(budget);
    if (limiter === undefined) {
      limiter = app.rateLimit({ max: max[budget], keyGenerator: keyOf[budget] });
      limiters.set(budget, limiter);
    }
    return limiter;
  };
  app.addHook('onRoute', (route: RouteOptions) => {
    const budget = budgetOf(route.method, route.url);
    if (budget === 'admin') return;
    route.config = { ...route.config, rateLimit: false };
    if (budget === undefined) return;
    const existing = route.onRequest;
    route.onRequest = [
      limiterOf(budget) as onRequestHookHandler,
      ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]),
    ];
  });

  await app.register(rateLimit, {
    global: true,
    max: max.admin,
    timeWindow: config.rateLimitWindowMs,
    keyGenerator: keyOf.admin,
    errorResponseBuilder: (request, context) => {
      const budget = budgetOf(request.method, request.routeOptions.url ?? '') ?? 'admin';
      return new VigilError(
        'VIGIL_RATE_LIMITED',
        `rate limit exceeded (${budget} budget); retry in ${context.after}`,
        { budget, max: context.max, retryAfterMs: context.ttl },
      );
    },
  });
}
