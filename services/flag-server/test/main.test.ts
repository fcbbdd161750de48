import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLOSE_CODES } from '@vigil/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { bearer, TestClient } from './helpers/server.js';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = join(packageDir, '../../node_modules/.bin/tsx');

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function run(env: Record<string, string>): Run {
  const child = spawn(tsx, ['--conditions=@vigil/source', 'src/main.ts'], {
    cwd: packageDir,
    env: { PATH: process.env.PATH ?? '', VIGIL_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function waitFor<T>(probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('vigil-server (main)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('starts on the embedded store, prints the URL and a bootstrap token once, and shuts down cleanly', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vigil-main-'));
    dirs.push(dataDir);
    const first = run({ VIGIL_PORT: '0', VIGIL_DATA_DIR: dataDir });
    const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(first.stdout())?.[1]);
    const token = await waitFor(() => /\n\s+(vgl_\S+)\n/.exec(first.stdout())?.[1]);

    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const created = await fetch(`${url}/api/v1/tokens`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sdk', scopes: ['sdk-server'], env: 'production' }),
    });
    expect(created.status).toBe(201);
    const { secret } = (await created.json()) as { secret: string };

    const stream = await TestClient.connect(`${url.replace('http', 'ws')}/v1/stream`, {
      headers: bearer(secret),
    });
    stream.send({ type: 'hello', sdk: 'node/test' });
    await stream.nth('snapshot', 1);
    first.child.kill('SIGTERM');
    expect((await stream.waitClosed()).code).toBe(CLOSE_CODES.shuttingDown);
    expect(await first.exited).toBe(0);

    const second = run({ VIGIL_PORT: '0', VIGIL_DATA_DIR: dataDir });
    const url2 = await waitFor(() => /listening on (http:\/\/\S+)/.exec(second.stdout())?.[1]);
    expect(second.stdout()).not.toContain('vgl_');
    expect((await fetch(`${url2}/api/v1/tokens`, { headers: bearer(token) })).status).toBe(200);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  }, 60_000);

  it('refuses to start on a bad setting, naming it', async () => {
    const bad = run({ VIGIL_PORT: 'eighty', VIGIL_STORE: 'redis' });
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain('VIGIL_PORT');
    expect(bad.stderr()).toContain('REDIS_URL');
  }, 30_000);
});
