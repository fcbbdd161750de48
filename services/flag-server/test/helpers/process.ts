import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../../..');

/** A flag server running as its own process (`src/main.ts`), as a replica would in production. */
export interface ServerProcess {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `ws://127.0.0.1:<port>/v1/stream` */
  streamUrl: string;
  child: ChildProcess;
  /** What the process printed so far (stdout and stderr), for failure messages. */
  output(): string;
  /** Sends SIGTERM (SIGKILL after `graceMs`) and resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/** A random admin secret for `VIGIL_ADMIN_TOKEN`. */
export function adminSecret(): string {
  return `vgl_test_${randomBytes(16).toString('hex')}`;
}

/** A TypeScript entry point of this repository running as its own Node process. */
export interface NodeProcess {
  child: ChildProcess;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * Spawns `node --conditions=@vigil/source --import tsx <entry>` from the repository root with `env`
 * (and PATH only: nothing of this process's environment leaks in), optionally with an IPC channel.
 */
export function spawnTs(
  entry: string,
  env: Record<string, string>,
  options: { ipc?: boolean } = {},
): NodeProcess {
  const child = spawn(process.execPath, ['--conditions=@vigil/source', '--import', 'tsx', entry], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (graceMs = 5_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    }
    return exited;
  };
  return { child, output: () => out, exited, stop };
}

/**
 * Spawns `node --conditions=@vigil/source --import tsx services/flag-server/src/main.ts` on a free
 * port with `env` (over quiet, unlimited defaults) and resolves once it prints its URL.
 */
export async function spawnServer(env: Record<string, string>, timeoutMs = 30_000): Promise<ServerProcess> {
  const { child, output, stop } = spawnTs('services/flag-server/src/main.ts', {
    VIGIL_PORT: '0',
    VIGIL_LOG_LEVEL: 'warn',
    VIGIL_RATE_LIMIT_MAX: '0',
    ...env,
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const url = /listening on (http:\/\/\S+)/.exec(output())?.[1];
    if (url) {
      return {
        url,
        streamUrl: `${url.replace(/^http/, 'ws')}/v1/stream`,
        child,
        output,
        stop,
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop(0);
      throw new Error(`flag server did not start (exit ${child.exitCode}):\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A response from {@link Rest}: status, parsed JSON body (if any) and headers. */
export interface RestResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** JSON over HTTP to one server, with one bearer token. */
export type Rest = <T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => Promise<RestResponse<T>>;

/** A {@link Rest} client for `base` authenticating with `secret`. */
export function rest(base: string, secret: string): Rest {
  return async <T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${secret}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: (text ? JSON.parse(text) : undefined) as T,
      headers: response.headers,
    };
  };
}

/** Retries `attempt` every 100 ms while it answers 503 (a store just back may take a moment). */
export async function retryWhileUnavailable<T extends { status: number }>(
  attempt: () => Promise<T>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let result = await attempt();
  while (result.status === 503 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    result = await attempt();
  }
  return result;
}
