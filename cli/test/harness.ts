import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Flag, type FlagInput, flagSchema, type Incident, incidentSchema } from '@vigil/proto';
import { bootstrapAdmin, buildServer, createLogger, EmbeddedStore, parseConfig } from '@vigil/server';

export const ENV = 'production';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The token names the server records as the actor of each write. */
export const OPS_NAME = 'oncall-alice';
export const READ_NAME = 'dashboards';

export interface TestServer {
  url: string;
  store: EmbeddedStore;
  tokens: { admin: string; ops: string; read: string };
  close(): Promise<void>;
}

/** A real flag server on the embedded store, on a free loopback port, with admin, ops and read tokens. */
export async function startServer(): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-cli-'));
  const store = new EmbeddedStore({ dataDir });
  await store.start();
  const boot = await bootstrapAdmin(store);
  if (!boot.created) throw new Error('expected a fresh store');
  const app = await buildServer({
    config: parseConfig({ logLevel: 'silent', rateLimitMax: 0 }),
    store,
    logger: createLogger('silent'),
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const ops = await app.vigil.tokens.create({ name: OPS_NAME, scopes: ['ops'] }, 'test');
  const read = await app.vigil.tokens.create({ name: READ_NAME, scopes: ['read'] }, 'test');
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    tokens: { admin: boot.secret, ops: ops.secret, read: read.secret },
    async close() {
      await app.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A boolean flag: `on` for `percent`% of contexts in the fallthrough, with extra fields. */
export function boolFlag(key: string, percent: number, extra: Partial<FlagInput> = {}): Flag {
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

/** An open incident as the guardian would have stored it (killed at detection). */
export function openIncident(id: string, flag: string, detectedAt: string): Incident {
  return incidentSchema.parse({
    id,
    env: ENV,
    flag,
    flagVersion: 1,
    severity: 'sev2',
    status: 'open',
    title: `${flag} regressed`,
    summary: 'error rate 5.00% vs control 0.50%',
    killed: true,
    controlVariant: 'off',
    cohorts: [
      { variant: 'on', requests: 1000, errors: 50, errorRate: 0.05, p99LatencyMs: 180 },
      { variant: 'off', requests: 9000, errors: 45, errorRate: 0.005, p99LatencyMs: 120 },
    ],
    detectedAt,
    mitigatedAt: detectedAt,
    timeline: [
      { at: detectedAt, kind: 'detection', message: 'error rate 5.00% vs control 0.50% on on' },
      { at: detectedAt, kind: 'kill', message: 'Killed by guardian', actor: 'guardian' },
    ],
  });
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI as its own process, from its TypeScript sources as `pnpm vigil` does, with only the
 * given VIGIL_* variables set (none is inherited from the shell running the tests).
 */
export function vigil(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VIGIL_')));
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@vigil/source', '--import', 'tsx', 'cli/src/main.ts', ...args],
      { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
