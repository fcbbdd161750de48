import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type VigilClient } from '@vigil/node';
import type { AuditEntry, Flag, Incident } from '@vigil/proto';
import { bootstrapAdmin, buildServer, createLogger, parseConfig, RedisStore } from '@vigil/server';
import { Redis } from 'ioredis';
import type { TestRedis } from '../../../services/flag-server/test/helpers/redis.js';
import { rolloutFlag } from '../../../services/flag-server/test/helpers/server.js';

export { rolloutFlag };

// Fault tests of the `vigil-guardian` process: a private redis-server, a flag server on the Redis
// store (in the test process, so the test can read the store directly), Node SDK traffic, and
// guardians as child processes the tests SIGKILL and start again.

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../..');

export const ENV = 'production';

/**
 * Every lock the guardian takes (`schedules`, `notify-outbox`) lives this long after its last renewal
 * (`lockTtlMs`, default 10 s in services/guardian/src/config.ts; renewed every tick). A SIGKILLed
 * guardian's lock is therefore only free `LOCK_TTL_MS` after its last tick; the tests shorten it to
 * keep that wait small, and read the real remaining time from Redis (`PTTL`) at each kill.
 */
export const LOCK_TTL_MS = 2000;

/** The guardian settings these tests run with: fast ticks, short locks, fast retries. */
export function guardianConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tickMs: 250,
    lockTtlMs: LOCK_TTL_MS,
    incidentSweepMs: 250,
    ingest: { blockMs: 200, claimIdleMs: 2000 },
    guard: { minSamples: 50 },
    outbox: { baseMs: 100, maxMs: 1000 },
    notify: { integrations: [] },
    ...extra,
  };
}

/** A `vigil-guardian` child process. */
export interface GuardianProcess {
  readonly id: string;
  readonly child: ChildProcess;
  /** Epoch ms when it was spawned. */
  readonly spawnedAt: number;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** Its pino log lines, parsed. */
  logs(): LogLine[];
  /** Resolves once it logged `vigil guardian running` (its loops are started). */
  running(timeoutMs?: number): Promise<void>;
  /** SIGKILL, as a crash or an OOM kill would; resolves once it exited. */
  kill(): Promise<void>;
  alive(): boolean;
}

export interface LogLine {
  time: number;
  msg: string;
  guardian?: string;
  [field: string]: unknown;
}

/** Traffic from a Node SDK app: request scopes that record each request's outcome. */
export interface Traffic {
  /** Requests served each variant so far. */
  served: Record<string, number>;
  stop(): void;
}

export interface GuardianWorld {
  redis: TestRedis;
  /** This test's key prefix (the server, the guardians and the raw client share it). */
  prefix: string;
  store: RedisStore;
  /** A raw client on the same Redis, to read locks. */
  raw: Redis;
  serverUrl: string;
  admin: string;
  guardians: GuardianProcess[];
  /** An admin REST call to the flag server. */
  api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
  /** Writes a guardian config file (JSON, which the YAML loader reads) and returns its path. */
  writeConfig(config: Record<string, unknown>): Promise<string>;
  /** Starts `vigil-guardian` with this id and config file; `redisUrl` defaults to the test Redis. */
  spawnGuardian(
    id: string,
    configPath: string,
    options?: { redisUrl?: string; env?: Record<string, string> },
  ): GuardianProcess;
  /** A Node SDK client on this flag server with an sdk-server key, ready. */
  sdk(): Promise<VigilClient>;
  /** About `perSecond` requests a second through `client` on `flag`; a request served `v` fails with `errorRate(v)`. */
  traffic(
    client: VigilClient,
    flag: string,
    perSecond: number,
    errorRate: (variant: string) => number,
  ): Traffic;
  flag(key: string): Promise<Flag>;
  /** The flag's audit entries, oldest first. */
  audit(key: string): Promise<AuditEntry[]>;
  incidents(): Promise<Incident[]>;
  /** The lock's owner and time to live now (`ttlMs` -2 when nobody holds it). */
  lock(name: 'schedules' | 'notify-outbox'): Promise<{ owner: string | null; ttlMs: number }>;
  /** Polls `check` every 50 ms until it holds; on timeout, fails naming `what` with every guardian's output. */
  until(what: string, check: () => Promise<boolean> | boolean, timeoutMs?: number): Promise<void>;
  /** `error` with the tail of every guardian's output appended, for failure messages. */
  explain(error: unknown): unknown;
  close(): Promise<void>;
}

/** The percentage of contexts the flag's fallthrough serves `on` (0 when killed). */
export function onPercent(flag: Flag): number {
  if (flag.killed || !flag.enabled) return 0;
  const serve = flag.fallthrough;
  if ('variant' in serve) return serve.variant === 'on' ? 100 : 0;
  return (serve.rollout.weights.find((w) => w.variant === 'on')?.weight ?? 0) / 1000;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs the in-process flag server on `redis` under a fresh prefix; guardians are spawned on demand. */
export async function startGuardianWorld(redis: TestRedis): Promise<GuardianWorld> {
  const prefix = `vigil-gfault-${process.pid}-${randomBytes(3).toString('hex')}:`;
  const dir = await mkdtemp(join(tmpdir(), 'vigil-guardian-fault-'));
  const store = new RedisStore({ url: redis.url, prefix, onListenerError: () => {} });
  await store.start();
  const raw = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 2 });
  const boot = await bootstrapAdmin(store);
  if (!boot.created) throw new Error(`the prefix ${prefix} already holds tokens`);
  const admin = boot.secret;
  const app = await buildServer({
    config: parseConfig({ logLevel: 'silent', rateLimitMax: 0 }),
    store,
    logger: createLogger('silent'),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const serverUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const guardians: GuardianProcess[] = [];
  const clients: VigilClient[] = [];
  const traffics: Traffic[] = [];
  let configs = 0;

  const world: GuardianWorld = {
    redis,
    prefix,
    store,
    raw,
    serverUrl,
    admin,
    guardians,
    async api<T>(method: string, path: string, body?: unknown) {
      const response = await app.inject({
        method: method as 'GET',
        url: path,
        headers: { authorization: `Bearer ${admin}` },
        ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
      });
      return { status: response.statusCode, body: (response.body ? response.json() : undefined) as T };
    },
    async writeConfig(config) {
      const path = join(dir, `guardian-${++configs}.json`);
      await writeFile(path, JSON.stringify(config, null, 2));
      return path;
    },
    spawnGuardian(id, configPath, options = {}) {
      const guardian = spawnGuardianProcess(id, {
        REDIS_URL: options.redisUrl ?? redis.url,
        VIGIL_REDIS_PREFIX: prefix,
        VIGIL_GUARDIAN_CONFIG: configPath,
        VIGIL_GUARDIAN_ID: id,
        ...options.env,
      });
      guardians.push(guardian);
      return guardian;
    },
    async sdk() {
      const created = await world.api<{ secret: string }>('POST', '/api/v1/tokens', {
        name: `app-${clients.length + 1}`,
        scopes: ['sdk-server'],
        env: ENV,
      });
      if (created.status !== 201)
        throw new Error(`cannot create an SDK key: ${JSON.stringify(created.body)}`);
      const client = createClient({
        url: serverUrl,
        sdkKey: created.body.secret,
        env: ENV,
        metrics: { flushIntervalMs: 250 },
        logger: { warn: () => {}, error: () => {} },
      });
      clients.push(client);
      if (!(await client.waitForReady(10_000))) throw new Error('the SDK did not get its flags');
      return client;
    },
    traffic(client, flag, perSecond, errorRate) {
      const served: Record<string, number> = {};
      let n = 0;
      let random = 42;
      const next = () => {
        random = (Math.imul(random, 1664525) + 1013904223) >>> 0;
        return random / 4294967296;
      };
      const intervalMs = 20;
      const perBatch = Math.max(1, Math.round((perSecond * intervalMs) / 1000));
      const timer = setInterval(() => {
        for (let i = 0; i < perBatch; i++) {
          const scope = client.scope({ key: `user-${n++ % 10_000}` });
          const variant = scope.variant(flag) ?? 'none';
          served[variant] = (served[variant] ?? 0) + 1;
          scope.recordOutcome({ error: next() < errorRate(variant), latencyMs: 20 + 10 * next() });
        }
      }, intervalMs);
      const traffic: Traffic = { served, stop: () => clearInterval(timer) };
      traffics.push(traffic);
      return traffic;
    },
    async flag(key) {
      const flag = await store.getFlag(ENV, key);
      if (!flag) throw new Error(`no flag ${key}`);
      return flag;
    },
    async audit(key) {
      return (await store.audit(ENV, { limit: 200, target: key })).reverse();
    },
    incidents: () => store.listIncidents({ limit: 100 }),
    async lock(name) {
      const key = `${prefix}lock:${name}`;
      const [owner, ttlMs] = await Promise.all([raw.get(key), raw.pttl(key)]);
      return { owner, ttlMs };
    },
    async until(what, check, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(50);
      }
    },
    explain(error) {
      if (!(error instanceof Error)) return error;
      const outputs = guardians
        .map(
          (g) => `--- guardian ${g.id} (${g.alive() ? 'running' : 'exited'}) ---\n${g.output().slice(-6000)}`,
        )
        .join('\n');
      error.message = `${error.message}\n${outputs}`;
      return error;
    },
    async close() {
      for (const traffic of traffics) traffic.stop();
      await Promise.allSettled(guardians.map((g) => g.kill()));
      await Promise.allSettled(clients.map((c) => c.close()));
      await app.close();
      // Leaves the private Redis clean for the next test of the file.
      const keys = await raw.keys(`${prefix}*`);
      if (keys.length > 0) await raw.del(...keys);
      raw.disconnect();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return world;
}

/** Runs `body`, appending every guardian's output to whatever it throws. */
export async function withGuardianOutput<T>(world: GuardianWorld, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw world.explain(error);
  }
}

/** Every guardian child still running, killed if this process exits without closing its world. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function spawnGuardianProcess(id: string, env: Record<string, string>): GuardianProcess {
  const spawnedAt = Date.now();
  const child = spawn(
    process.execPath,
    ['--conditions=@vigil/source', '--import', 'tsx', 'services/guardian/src/main.ts'],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        VIGIL_GUARDIAN_METRICS_PORT: '0',
        VIGIL_LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const lines: LogLine[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    out += text;
    partial += text;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // Not a log line (a stack trace): kept in the output only.
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  live.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    id,
    child,
    spawnedAt,
    output: () => out,
    logs: () => lines,
    async running(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!lines.some((l) => l.msg === 'vigil guardian running')) {
        if (!alive())
          throw new Error(`guardian ${id} exited (${child.exitCode ?? child.signalCode}):\n${out}`);
        if (Date.now() > deadline)
          throw new Error(`guardian ${id} did not start in ${timeoutMs} ms:\n${out}`);
        await sleep(25);
      }
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
    alive,
  };
}
