/**
 * Shared by the HTTP and fan-out benchmarks: a flag server in its own process (the way it runs in
 * production), an optional private redis-server, a small REST client, and the benchmark's flags.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = dirname(fileURLToPath(import.meta.url));
const serverMain = join(benchDir, '../services/flag-server/src/main.ts');
const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

export const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');

/** One line on the machine, printed first by every benchmark: figures mean little without it. */
export function machineLine(name: string): string {
  const [one, five] = loadavg();
  return (
    `${name}: node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, ` +
    `load average ${one!.toFixed(2)} (1 min) ${five!.toFixed(2)} (5 min) at start`
  );
}

/** The load average now, printed again at the end: other work on the machine inflates every figure. */
export function loadLine(): string {
  const [one, five] = loadavg();
  return `load average at end: ${one!.toFixed(2)} (1 min) ${five!.toFixed(2)} (5 min) on ${cpus().length} cores`;
}

/** The shell's soft and hard limits on open files (`ulimit -n`), inherited by the processes we spawn. */
export function fileLimits(): { soft: number; hard: number } {
  const out = execFileSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n');
  const parse = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: parse(out[0]), hard: parse(out[1]) };
}

/**
 * Spawns `node <args>` through `sh -c 'ulimit -n <files>; exec …'` so the child may hold `files` open
 * files (a process can raise its soft limit up to the hard one, and Node has no call for it).
 */
export function spawnNode(
  args: string[],
  options: { files?: number; env?: NodeJS.ProcessEnv; stdio?: ('ignore' | 'pipe' | 'inherit' | 'ipc')[] },
): ChildProcess {
  const raise = options.files === undefined ? '' : `ulimit -Sn ${options.files} && `;
  return spawn('sh', ['-c', `${raise}exec "$0" "$@"`, process.execPath, ...args], {
    cwd: benchDir,
    env: options.env ?? process.env,
    stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
  });
}

export interface FlagServer {
  url: string;
  streamUrl: string;
  /** Admin token secret. */
  admin: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `services/flag-server/src/main.ts` in its own process on a free port of 127.0.0.1: on the
 * embedded store in a temp directory, or on Redis at `redisUrl`. Logs at `warn`, no rate limit.
 */
export async function startFlagServer(
  options: { redisUrl?: string; files?: number; env?: Record<string, string> } = {},
): Promise<FlagServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-bench-'));
  const admin = `vgl_bench_${randomBytes(16).toString('hex')}`;
  // e.g. BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the server.
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawnNode([...nodeArgs, '--conditions=@vigil/source', '--import', 'tsx', serverMain], {
    ...(options.files === undefined ? {} : { files: options.files }),
    env: {
      PATH: process.env.PATH ?? '',
      VIGIL_PORT: '0',
      VIGIL_LOG_LEVEL: 'warn',
      VIGIL_RATE_LIMIT_MAX: '0',
      VIGIL_ADMIN_TOKEN: admin,
      VIGIL_DATA_DIR: dataDir,
      ...(options.redisUrl ? { VIGIL_STORE: 'redis', REDIS_URL: options.redisUrl } : {}),
      ...options.env,
    },
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d) => {
    const text = d.toString();
    out += text;
    // Warnings and errors from the server (a slow client dropped, a store error) belong in the output.
    process.stderr.write(`[server] ${text}`);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
    if (url) return { url, streamUrl: `${url.replace(/^http/, 'ws')}/v1/stream`, admin, child, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`flag server did not start:\n${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface BenchRedis {
  url: string;
  stop(): Promise<void>;
}

/**
 * A private redis-server on a free port, persisting like a production one (AOF, fsync every
 * second; `appendfsync: 'always'` fsyncs every write, as a durable store must) in a temp directory;
 * `undefined` when no redis-server binary is installed.
 */
export async function startRedis(
  options: { appendfsync?: 'everysec' | 'always' } = {},
): Promise<BenchRedis | undefined> {
  if (!existsSync(REDIS_SERVER)) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes'];
  args.push('--appendfsync', options.appendfsync ?? 'everysec', '--dir', dir);
  const child = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'pipe' });
      return { url, stop };
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`redis-server on port ${port} did not start`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function freePort(): Promise<number> {
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

/** JSON over HTTP with a bearer token; throws on a status outside 2xx. */
export async function call<T = Record<string, unknown>>(
  base: string,
  secret: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${secret}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Creates an SDK key of `scope` for the production environment; returns its secret. */
export async function sdkKey(server: FlagServer, scope: 'sdk-server' | 'sdk-client' = 'sdk-server') {
  const created = await call<{ secret: string }>(server.url, server.admin, 'POST', '/api/v1/tokens', {
    name: `bench-${scope}`,
    scopes: [scope],
    env: 'production',
  });
  return created.secret;
}

/**
 * The i-th of a realistic mix of flags: booleans on for everyone, targeted rollouts, and string
 * variants with a percentage split — the kinds of flag an SDK's snapshot is made of.
 */
export function benchFlag(i: number, description = `benchmark flag ${i}`): Record<string, unknown> {
  const key = `bench-${String(i).padStart(3, '0')}`;
  const bool = {
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
  };
  const common = {
    key,
    description,
    tags: ['bench'],
    owner: 'bench',
    enabled: true,
    clientSide: i % 2 === 0,
  };
  if (i % 3 === 0) return { ...common, ...bool, fallthrough: { variant: 'on' } };
  if (i % 3 === 1) {
    return {
      ...common,
      ...bool,
      rules: [
        {
          id: 'targeted',
          clauses: [{ attribute: 'country', op: 'in', values: ['TH', 'SG', 'MY'] }],
          serve: {
            rollout: {
              weights: [
                { variant: 'on', weight: 20_000 },
                { variant: 'off', weight: 80_000 },
              ],
            },
          },
        },
      ],
      fallthrough: { variant: 'off' },
    };
  }
  return {
    ...common,
    variants: [
      { key: 'control', value: 'blue' },
      { key: 'treatment', value: 'green' },
    ],
    offVariant: 'control',
    rules: [
      {
        id: 'staff',
        clauses: [{ attribute: 'email', op: 'endsWith', values: ['@example.com'] }],
        serve: { variant: 'treatment' },
      },
    ],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'control', weight: 50_000 },
          { variant: 'treatment', weight: 50_000 },
        ],
      },
    },
  };
}

/** Loads `count` benchmark flags into production. */
export async function loadFlags(server: FlagServer, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const flag = benchFlag(i);
    await call(server.url, server.admin, 'PUT', `/api/v1/envs/production/flags/${flag.key}`, flag);
  }
}

/** The value at quantile `q` (0..1) of sorted numbers (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
