import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CohortSummary,
  type Flag,
  type FlagInput,
  flagSchema,
  type Incident,
  type TokenScope,
} from '@vigil/proto';
import {
  bootstrapAdmin,
  buildServer,
  createLogger,
  EmbeddedStore,
  parseConfig,
  type Store,
} from '@vigil/server';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Registry } from 'prom-client';
import type { GuardianConfigInput } from '../../src/config.js';
import { createGuardian, type Guardian, type GuardianOptions } from '../../src/guardian.js';
import { sketchOf } from '../analysis/traffic.js';
import { webhookReceiver } from '../notify/receivers.js';

export const ENV = 'production';
/** A fixed start for the controllable clock. */
export const T0 = Date.parse('2030-03-01T12:00:00.000Z');
export const SECRET = 'whsec-guardian-test-0123456789';

/** A clock tests move by hand; the server, the guardian and the webhook receiver all read it. */
export class Clock {
  constructor(public t = T0) {}
  readonly now = (): number => this.t;
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}

/** A boolean flag served to `percent`% of contexts (the rest get `off`, the control). */
export function rolloutFlag(key: string, percent: number, extra: Partial<FlagInput> = {}): Flag {
  return flagSchema.parse({
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', weight: percent * 1000 },
          { variant: 'off', weight: 100_000 - percent * 1000 },
        ],
      },
    },
    ...extra,
  });
}

/** One second of one cohort, as an SDK would summarise it. */
export function summary(
  flag: Flag,
  at: number,
  variant: string,
  requests: number,
  errors: number,
  medianMs = 80,
): CohortSummary {
  return {
    env: ENV,
    flag: flag.key,
    variant,
    version: flag.version,
    windowStart: new Date(at - 1000).toISOString(),
    windowEnd: new Date(at).toISOString(),
    requests,
    errors,
    latency: sketchOf(requests, medianMs),
  };
}

/** A flag server on an embedded store (or the given one), a webhook receiver, and guardians on one clock. */
export interface Stack {
  clock: Clock;
  store: Store;
  app: FastifyInstance;
  admin: string;
  hook: ReturnType<typeof webhookReceiver>;
  /** A guardian on this stack's store, clock and webhook; `tick()` it by hand unless started. */
  guardian(config?: GuardianConfigInput, options?: Partial<GuardianOptions>): Guardian;
  token(scopes: TokenScope[], env?: string): Promise<string>;
  request(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    options?: { body?: unknown; token?: string; headers?: Record<string, string> },
  ): Promise<LightMyRequestResponse>;
  /** The flag as stored now. */
  flag(key: string): Promise<Flag>;
  /** Publishes one second of traffic ending at the clock's time: [variant, requests, errors][]. */
  traffic(key: string, cohorts: [string, number, number][]): Promise<void>;
  incidents(): Promise<Incident[]>;
  close(): Promise<void>;
}

export async function startStack(
  options: {
    store?: Store;
    clock?: Clock;
    webhook?: boolean;
    guardDefaults?: GuardianConfigInput['guard'];
  } = {},
): Promise<Stack> {
  const clock = options.clock ?? new Clock();
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-guardian-'));
  const store = options.store ?? new EmbeddedStore({ dataDir, onListenerError: () => {} });
  if (!options.store) await store.start();
  const boot = await bootstrapAdmin(store);
  const admin = boot.created ? boot.secret : '';
  const app = await buildServer({
    config: parseConfig({ logLevel: 'silent', rateLimitMax: 0 }),
    store,
    logger: createLogger('silent'),
    now: clock.now,
  });
  const hook = webhookReceiver(SECRET, clock.now);
  if (options.webhook !== false) await hook.receiver.start();
  const guardians: Guardian[] = [];
  const stack: Stack = {
    clock,
    store,
    app,
    admin,
    hook,
    guardian(config = {}, extra = {}) {
      const g = createGuardian({
        store,
        now: clock.now,
        registry: new Registry(),
        random: () => 0.5,
        env: { VIGIL_WEBHOOK_SECRET: SECRET },
        config: {
          ...(options.guardDefaults ? { guard: options.guardDefaults } : {}),
          notify:
            options.webhook === false
              ? { integrations: [] }
              : {
                  integrations: [
                    {
                      name: 'webhook',
                      type: 'webhook',
                      url: `${hook.receiver.url}/hooks/vigil`,
                      timeoutMs: 2000,
                    },
                  ],
                },
          outbox: { baseMs: 1000, maxMs: 10_000 },
          ...config,
        },
        ...extra,
      });
      guardians.push(g);
      return g;
    },
    async token(scopes, env) {
      const { secret } = await app.vigil.tokens.create(
        { name: scopes.join('+'), scopes, ...(env ? { env } : {}) },
        'test',
      );
      return secret;
    },
    request(method, url, { body, token, headers = {} } = {}) {
      return app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token ?? admin}`, ...headers },
        ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
      });
    },
    async flag(key) {
      const flag = await store.getFlag(ENV, key);
      if (!flag) throw new Error(`no flag ${key}`);
      return flag;
    },
    async traffic(key, cohorts) {
      const flag = await stack.flag(key);
      await store.publishMetrics(cohorts.map(([v, n, e]) => summary(flag, clock.t, v, n, e)));
    },
    incidents: () => store.listIncidents({ limit: 100 }),
    async close() {
      await Promise.all(guardians.map((g) => g.stop()));
      await app.close();
      await hook.receiver.close();
      if (!options.store) await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** 1000 requests a second, `percent`% of them to `on`, with these error rates. */
export function split(
  percent: number,
  onRate: number,
  offRate: number,
): (s: number) => [string, number, number][] {
  const on = Math.round(10 * percent);
  const off = 1000 - on;
  return (s) => [
    ['on', on, errorsIn(s, on, onRate)],
    ['off', off, errorsIn(s, off, offRate)],
  ];
}

/** Errors in second `s` at a steady rate: the long-run count is exact. */
export function errorsIn(s: number, requests: number, rate: number): number {
  return Math.floor((s + 1) * requests * rate + 1e-9) - Math.floor(s * requests * rate + 1e-9);
}

/**
 * Runs seconds of traffic: each second the clock moves on, the traffic is published and the guardian
 * ticks; stops early when `until` holds. Returns the seconds run.
 */
export async function run(
  stack: Stack,
  guardian: Guardian,
  key: string,
  seconds: number,
  traffic: (s: number) => [string, number, number][],
  until?: () => Promise<boolean> | boolean,
): Promise<number> {
  for (let s = 0; s < seconds; s++) {
    stack.clock.advance(1000);
    await stack.traffic(key, traffic(s));
    await guardian.tick();
    if (until && (await until())) return s + 1;
  }
  return seconds;
}

/** The percentage of contexts the flag's fallthrough gives `on` (0 when killed or disabled). */
export function onPercent(flag: Flag): number {
  if (flag.killed || !flag.enabled) return 0;
  const serve = flag.fallthrough;
  if ('variant' in serve) return serve.variant === 'on' ? 100 : 0;
  return (serve.rollout.weights.find((w) => w.variant === 'on')?.weight ?? 0) / 1000;
}

/** 1000 requests a second split as the flag serves them now, with these error rates. */
export function asServed(stack: Stack, key: string, onRate: number, offRate: number) {
  return async (s: number): Promise<void> => {
    const flag = await stack.flag(key);
    const on = Math.round(10 * onPercent(flag));
    await stack.store.publishMetrics([
      summary(flag, stack.clock.t, 'on', on, errorsIn(s, on, onRate)),
      summary(flag, stack.clock.t, 'off', 1000 - on, errorsIn(s, 1000 - on, offRate)),
    ]);
  };
}

/** Seconds of traffic (`second(s)` publishes one) with a tick after each; stops early when `until` holds. */
export async function runSeconds(
  stack: Stack,
  guardian: Guardian,
  seconds: number,
  second: (s: number) => Promise<void>,
  until?: () => Promise<boolean> | boolean,
): Promise<number> {
  for (let s = 0; s < seconds; s++) {
    stack.clock.advance(1000);
    await second(s);
    await guardian.tick();
    if (until && (await until())) return s + 1;
  }
  return seconds;
}
