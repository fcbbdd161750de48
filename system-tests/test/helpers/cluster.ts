import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  adminSecret,
  type NodeProcess,
  type Rest,
  rest,
  type ServerProcess,
  spawnTs as spawnNodeTs,
  spawnServer,
} from '../../../services/flag-server/test/helpers/process.js';
import type { TestRedis } from '../../../services/flag-server/test/helpers/redis.js';

/** The repository root, where child processes run (so `--import tsx` and workspace packages resolve). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../..');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Children still running; SIGKILLed if this process exits without stopping them (a crash or a timeout). */
const running = new Set<ChildProcess>();
/** Other last-moment cleanups (synchronous: nothing asynchronous runs in an `exit` handler). */
const atExit = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const orphan of running) orphan.kill('SIGKILL');
    for (const cleanup of atExit) cleanup();
  });
}

/** SIGKILLs `child` when this process exits, unless it exited first. */
export function killOnExit(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  installExitHook();
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/** Kills a private test Redis when this process exits (its `stop` sends SIGKILL before its first await). */
export function stopRedisOnExit(redis: TestRedis): void {
  if (!redis.controllable) return;
  installExitHook();
  atExit.add(() => {
    redis.stop().catch(() => {});
  });
}

/** A free TCP port on 127.0.0.1 (closed again, so a child process can listen on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export type { NodeProcess };

/** {@link spawnNodeTs}, SIGKILLed if this process exits first (a crash or a timeout). */
export function spawnTs(
  entry: string,
  env: Record<string, string>,
  options: { ipc?: boolean } = {},
): NodeProcess {
  const spawned = spawnNodeTs(entry, env, options);
  killOnExit(spawned.child);
  return spawned;
}

/** The guardian (`services/guardian/src/main.ts`) as its own process, like docker-compose's `guardian`. */
export interface GuardianProcess extends NodeProcess {
  /** `http://127.0.0.1:<port>`, serving `/healthz` and `/metrics`. */
  metricsUrl: string;
}

/** Spawns a guardian process on Redis with `env` and resolves once its `/healthz` answers. */
export async function spawnGuardian(
  env: Record<string, string> & { REDIS_URL: string },
  timeoutMs = 30_000,
): Promise<GuardianProcess> {
  const port = await freePort();
  const proc = spawnTs('services/guardian/src/main.ts', {
    VIGIL_LOG_LEVEL: 'info',
    VIGIL_GUARDIAN_METRICS_PORT: String(port),
    ...env,
  });
  const metricsUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const healthy = await fetch(`${metricsUrl}/healthz`, { signal: AbortSignal.timeout(1_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) return { ...proc, metricsUrl };
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await proc.stop(0);
      throw new Error(`guardian did not start (exit ${proc.child.exitCode}):\n${proc.output()}`);
    }
    await sleep(100);
  }
}

/** The docker-compose topology as processes: flag-server replicas (and a guardian) on one Redis. */
export interface Cluster {
  redis: TestRedis;
  /** The bootstrap admin token every replica was started with. */
  admin: string;
  /** The replicas, in start order; {@link restart} replaces an entry. */
  servers: ServerProcess[];
  /** An admin REST client per replica, same order. */
  rests: Rest[];
  guardian: GuardianProcess | undefined;
  /** Every process's output (the last part of it), labelled: for failure messages. */
  outputs(): string;
  /**
   * Appends {@link outputs} to the message of whatever `fn` throws, so a failed assertion shows what
   * the servers and the guardian printed.
   */
  explain<T>(fn: () => Promise<T>): Promise<T>;
  /** Starts replica `index` again, on the same port (after it was stopped or killed). */
  restart(index: number): Promise<ServerProcess>;
  /** Stops every process it started (not Redis, which belongs to the caller). */
  close(): Promise<void>;
}

export interface ClusterOptions {
  redis: TestRedis;
  replicas?: number;
  /** Extra env vars for every replica. */
  serverEnv?: Record<string, string>;
  /** Start a guardian with these extra env vars (REDIS_URL is set). */
  guardianEnv?: Record<string, string>;
  /** Keep the last this many characters of each process's output in failure messages. */
  outputTail?: number;
}

/** Starts `replicas` flag servers (VIGIL_STORE=redis) together, and a guardian when asked, on `redis`. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { redis } = options;
  stopRedisOnExit(redis);
  const admin = adminSecret();
  const tail = options.outputTail ?? 4_000;
  const serverEnv = (extra: Record<string, string> = {}) => ({
    VIGIL_STORE: 'redis',
    REDIS_URL: redis.url,
    VIGIL_ADMIN_TOKEN: admin,
    ...options.serverEnv,
    ...extra,
  });
  const servers = await Promise.all(
    Array.from({ length: options.replicas ?? 2 }, async () => {
      const server = await spawnServer(serverEnv());
      killOnExit(server.child);
      return server;
    }),
  );
  // Every server ever started, restarted ones included, so their output and cleanup are not lost.
  const started: { name: string; server: ServerProcess }[] = servers.map((server, i) => ({
    name: replicaName(i),
    server,
  }));
  const guardian = options.guardianEnv
    ? await spawnGuardian({ ...options.guardianEnv, REDIS_URL: redis.url })
    : undefined;
  const rests = servers.map((server) => rest(server.url, admin));
  const outputs = () => {
    const parts = started.map(({ name, server }) => [name, server.output()] as const);
    if (guardian) parts.push(['guardian', guardian.output()]);
    return parts
      .map(([name, out]) => `--- ${name} output (last ${tail} chars) ---\n${out.slice(-tail) || '(nothing)'}`)
      .join('\n');
  };
  return {
    redis,
    admin,
    servers,
    rests,
    guardian,
    outputs,
    async explain(fn) {
      try {
        return await fn();
      } catch (error) {
        if (error instanceof Error) error.message = `${error.message}\n\n${outputs()}`;
        throw error;
      }
    },
    async restart(index) {
      const port = new URL(servers[index]!.url).port;
      const server = await spawnServer(serverEnv({ VIGIL_PORT: port }));
      killOnExit(server.child);
      servers[index] = server;
      rests[index] = rest(server.url, admin);
      started.push({ name: `${replicaName(index)} (restarted)`, server });
      return server;
    },
    async close() {
      await Promise.all([...started.map(({ server }) => server.stop()), guardian?.stop()]);
    },
  };
}

function replicaName(index: number): string {
  return `flag-server-${String.fromCharCode(97 + index)}`;
}

/** Creates an `sdk-server` key for `env` through `admin`; returns its secret. */
export async function createSdkKey(admin: Rest, env = 'production', name = 'sdk'): Promise<string> {
  const created = await admin<{ secret: string }>('POST', '/api/v1/tokens', {
    name,
    scopes: ['sdk-server'],
    env,
  });
  if (created.status !== 201) throw new Error(`creating an SDK key answered ${created.status}`);
  return created.body.secret;
}

/** Polls `check` every `everyMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
  return Date.now() - started;
}
