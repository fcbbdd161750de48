import { execFile } from 'node:child_process';
import { copyFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DATABASE_FILE } from '../../src/store/embedded-db.js';
import { adminSecret, type NodeProcess, rest, spawnServer, spawnTs } from '../helpers/process.js';
import { startTestRedis } from '../helpers/redis.js';
import { boolFlag } from '../helpers/server.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = join(here, 'fixtures/journal-data-dir');
const repoRoot = join(here, '../../../..');

/** Runs the `vigil` CLI (cli/src/main.ts) as its own process; resolves with its exit code and output. */
function vigil(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=@vigil/source', '--import', 'tsx', 'cli/src/main.ts', ...args],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}
const dirs: string[] = [];
const running: { stop(graceMs?: number): Promise<number | null> }[] = [];
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-crash-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop(1_000)));
});
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function start(dir: string, secret: string) {
  const server = await spawnServer({ VIGIL_DATA_DIR: dir, VIGIL_ADMIN_TOKEN: secret });
  running.push(server);
  return server;
}

/** A flag server process expected to refuse to start; resolves with its exit code and output. */
async function refusedStart(dir: string): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  const child: NodeProcess = spawnTs('services/flag-server/src/main.ts', {
    VIGIL_PORT: '0',
    VIGIL_LOG_LEVEL: 'warn',
    VIGIL_DATA_DIR: dir,
  });
  running.push(child);
  const code = await child.exited;
  return { code, output: child.output(), ms: Date.now() - started };
}

describe('embedded store (SQLite) under real processes', () => {
  it('keeps every acknowledged write through a SIGKILL mid-burst and serves again at once', async () => {
    const dir = await dataDir();
    const secret = adminSecret();
    const first = await start(dir, secret);
    const api = rest(first.url, secret);
    const acknowledged = new Map<string, number>();
    let stop = false;
    let sent = 0;
    // 32 writers at once, as many requests would: the store commits them in groups.
    const writers = Array.from({ length: 32 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        sent += 1;
        try {
          const res = await api('PUT', `/api/v1/envs/production/flags/${key}`, boolFlag(key));
          if (res.status === 200 || res.status === 201)
            acknowledged.set(key, (res.body as { version: number }).version);
        } catch {
          return; // the process died under this request: never acknowledged
        }
      }
    });
    while (acknowledged.size < 600) await new Promise((resolve) => setTimeout(resolve, 5));
    first.child.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    expect(
      first.child.signalCode ?? (await new Promise((r) => first.child.once('exit', (_c, s) => r(s)))),
    ).toBe('SIGKILL');

    const restarted = Date.now();
    const second = await start(dir, secret);
    const ready = await fetch(`${second.url}/readyz`);
    const restartMs = Date.now() - restarted;
    expect(ready.status).toBe(200);
    // The figure the issue asks about (within 2 s), logged; the process start (tsx) is most of it.
    console.info(
      `restart after SIGKILL served /readyz in ${restartMs} ms (${acknowledged.size} acknowledged, ${sent} sent)`,
    );
    expect(restartMs).toBeLessThan(5_000);
    expect(second.output()).not.toMatch(/waiting in case it died/);

    const api2 = rest(second.url, secret);
    const listed = await api2<{ flags: { key: string; version: number }[] }>(
      'GET',
      '/api/v1/envs/production/flags',
    );
    const stored = new Map(listed.body.flags.map((f) => [f.key, f.version]));
    const missing = [...acknowledged].filter(([key, version]) => stored.get(key) !== version);
    expect(missing).toEqual([]);
    // Revisions are consecutive: nothing half-written in between.
    const versions = [...stored.values()].sort((a, b) => a - b);
    expect(versions).toEqual(versions.map((_, i) => i + 1));
  }, 90_000);

  it('refuses a second process on the same data directory at once with VIGIL_DATA_DIR_LOCKED (exit 2)', async () => {
    const dir = await dataDir();
    const secret = adminSecret();
    const holder = await start(dir, secret);
    const refused = await refusedStart(dir);
    expect(refused.code, refused.output).toBe(2);
    expect(refused.output).toContain('VIGIL_DATA_DIR_LOCKED');
    expect(refused.output).toContain(dir);
    console.info(`second process refused in ${refused.ms} ms (process start included)`);
    // At once: the journal store waited ~10 s here for its lock to go stale.
    expect(refused.ms).toBeLessThan(5_000);
    // The holder was not disturbed.
    expect((await fetch(`${holder.url}/readyz`)).status).toBe(200);
  }, 60_000);

  it('refuses a damaged database, naming the file and the recovery command (exit 2), and leaves it as it was', async () => {
    const dir = await dataDir();
    const secret = adminSecret();
    const server = await start(dir, secret);
    const api = rest(server.url, secret);
    for (let i = 0; i < 100; i++) await api('PUT', `/api/v1/envs/production/flags/f${i}`, boolFlag(`f${i}`));
    expect(await server.stop()).toBe(0);
    const file = join(dir, DATABASE_FILE);
    const damaged = Buffer.from(await readFile(file));
    damaged.fill(0x5a, 4096 * 3, 4096 * 3 + 2048);
    await writeFile(file, damaged);
    const refused = await refusedStart(dir);
    expect(refused.code, refused.output).toBe(2);
    expect(refused.output).toContain('VIGIL_DATA_DIR_DAMAGED');
    expect(refused.output).toContain(file);
    expect(refused.output).toContain('.recover');
    expect(await readFile(file)).toEqual(damaged);
  }, 60_000);

  it('migrates a journal-store data directory on first start and serves its flags', async () => {
    const dir = await dataDir();
    await cp(fixture, dir, { recursive: true });
    // The fixture's admin token (t1) has this secret.
    const secret = 'vgl_fixture_admin_secret';
    const server = await start(dir, secret);
    expect(server.output()).toContain('migrated');
    const api = rest(server.url, secret);
    const listed = await api<{ flags: { key: string; killed: boolean }[] }>(
      'GET',
      '/api/v1/envs/production/flags',
    );
    expect(listed.body.flags.map((f) => [f.key, f.killed])).toEqual([['checkout', true]]);
  }, 60_000);

  it('backs up with `vigil backup` while serving, and a restore after a crash serves exactly the backup', async () => {
    const dir = await dataDir();
    const secret = adminSecret();
    const server = await start(dir, secret);
    const api = rest(server.url, secret);
    for (let i = 0; i < 10; i++) await api('PUT', `/api/v1/envs/production/flags/f${i}`, boolFlag(`f${i}`));
    const file = join(await dataDir(), 'backup.db');
    const backup = await vigil(['backup', file], { VIGIL_URL: server.url, VIGIL_TOKEN: secret });
    expect(backup.code, backup.out).toBe(0);
    expect(backup.out).toContain(file);
    await api('PUT', '/api/v1/envs/production/flags/after', boolFlag('after'));
    server.child.kill('SIGKILL');
    await new Promise((resolve) => server.child.once('exit', resolve));

    // The runbook's restore (docs/operations.md): the server stopped, drop the WAL, put the file in.
    await rm(join(dir, `${DATABASE_FILE}-wal`), { force: true });
    await copyFile(file, join(dir, DATABASE_FILE));
    const restored = await start(dir, secret);
    const listed = await rest(restored.url, secret)<{ flags: { key: string }[] }>(
      'GET',
      '/api/v1/envs/production/flags',
    );
    expect(listed.body.flags.map((f) => f.key).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `f${i}`).sort(),
    );
  }, 60_000);

  it('answers a backup request on the Redis store with VIGIL_INVALID_STATE, naming Redis persistence', async () => {
    const redis = await startTestRedis();
    const secret = adminSecret();
    const server = await spawnServer({
      VIGIL_STORE: 'redis',
      REDIS_URL: redis.url,
      VIGIL_ADMIN_TOKEN: secret,
    });
    running.push({
      stop: async () => {
        await server.stop(1_000);
        await redis.dispose();
        return 0;
      },
    });
    const backup = await vigil(['backup', join(await dataDir(), 'x.db')], {
      VIGIL_URL: server.url,
      VIGIL_TOKEN: secret,
    });
    expect(backup.code, backup.out).toBe(1);
    expect(backup.out).toContain('VIGIL_INVALID_STATE');
    expect(backup.out).toMatch(/RDB|AOF/);
  }, 60_000);
});
