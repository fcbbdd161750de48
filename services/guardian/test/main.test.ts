import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GuardianSettingsError, loadGuardianSettings } from '../src/settings.js';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = join(packageDir, '../../node_modules/.bin/tsx');
const HELPER = '../../flag-server/test/helpers/redis.js';
const redisAvailable =
  process.env.REDIS_URL !== undefined || existsSync(process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server');

const issuesOf = (env: Record<string, string>) => {
  try {
    loadGuardianSettings(env);
  } catch (error) {
    if (error instanceof GuardianSettingsError) return error.issues;
    throw error;
  }
  throw new Error('expected a settings error');
};

describe('guardian settings', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('reads the process from env vars and the guardian from its config file, env over file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vigil-guardian-settings-'));
    dirs.push(dir);
    const file = join(dir, 'guardian.yaml');
    await writeFile(file, 'tickMs: 500\nguard:\n  minSamples: 500\n  severity: sev1\n');
    const settings = loadGuardianSettings({
      REDIS_URL: 'redis://redis:6379',
      VIGIL_GUARDIAN_CONFIG: file,
      VIGIL_GUARDIAN_ID: 'guardian-a',
      VIGIL_GUARDIAN_TICK_MS: '250',
      VIGIL_WEBHOOK_URL: 'https://hooks.example.com/vigil',
    });
    expect(settings).toMatchObject({
      store: 'redis',
      redisUrl: 'redis://redis:6379',
      redisPrefix: 'vigil:',
      metricsPort: 9464,
      config: { id: 'guardian-a', tickMs: 250, guard: { minSamples: 500, severity: 'sev1' } },
    });
    expect(settings.config.notify.integrations).toEqual([
      expect.objectContaining({ type: 'webhook', url: 'https://hooks.example.com/vigil' }),
    ]);
  });

  it('names every bad setting, and refuses the embedded store out of the server process', async () => {
    expect(
      issuesOf({ VIGIL_STORE: 'embedded', VIGIL_GUARDIAN_TICK_MS: '10', VIGIL_GUARDIAN_METRICS_PORT: 'x' }),
    ).toEqual([
      {
        field: 'VIGIL_STORE',
        message: expect.stringContaining('embedded store only exists inside the flag server'),
      },
      { field: 'REDIS_URL', message: 'required' },
      { field: 'VIGIL_GUARDIAN_METRICS_PORT', message: expect.any(String) },
      { field: 'VIGIL_GUARDIAN_TICK_MS', message: expect.any(String) },
    ]);
    const dir = await mkdtemp(join(tmpdir(), 'vigil-guardian-settings-'));
    dirs.push(dir);
    const file = join(dir, 'guardian.json');
    await writeFile(file, JSON.stringify({ guard: { minSamples: 0 }, nope: 1 }));
    const issues = issuesOf({ REDIS_URL: 'redis://r:6379', VIGIL_GUARDIAN_CONFIG: file });
    expect(issues).toEqual([
      {
        field: expect.stringMatching(/^guard\.minSamples \(in .*guardian\.json\)$/),
        message: expect.any(String),
      },
      { field: expect.stringMatching(/^nope \(in .*guardian\.json\)$/), message: 'unknown setting' },
    ]);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe.skipIf(!redisAvailable)('vigil-guardian (main)', () => {
  it('runs against Redis, serves Prometheus metrics, and stops cleanly on SIGTERM; a bad config exits 2', async () => {
    const helper = (await import(/* @vite-ignore */ HELPER)) as {
      startTestRedis(): Promise<{ url: string; dispose(): Promise<void> }>;
    };
    const redis = await helper.startTestRedis();
    try {
      const port = await freePort();
      const child = spawn(tsx, ['--conditions=@vigil/source', 'src/main.ts'], {
        cwd: packageDir,
        env: {
          PATH: process.env.PATH ?? '',
          REDIS_URL: redis.url,
          VIGIL_REDIS_PREFIX: `vigil-main-${process.pid}:`,
          VIGIL_GUARDIAN_METRICS_PORT: String(port),
          VIGIL_LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (d) => {
        output += d.toString();
      });
      child.stderr!.on('data', (d) => {
        output += d.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const deadline = Date.now() + 20_000;
      while (!output.includes('vigil guardian running')) {
        if (Date.now() > deadline) throw new Error(`no start: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const name of [
        'vigil_guardian_verdicts_total',
        'vigil_guardian_kills_total',
        'vigil_guardian_incidents_opened_total',
        'vigil_guardian_escalations_total',
        'vigil_guardian_schedule_transitions_total',
      ]) {
        expect(metrics).toContain(name);
      }
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output).toContain('guardian stopped');

      const bad = spawn(tsx, ['--conditions=@vigil/source', 'src/main.ts'], {
        cwd: packageDir,
        env: { PATH: process.env.PATH ?? '', VIGIL_STORE: 'embedded' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      bad.stderr!.on('data', (d) => {
        err += d.toString();
      });
      expect(await new Promise((resolve) => bad.once('exit', resolve))).toBe(2);
      expect(err).toMatch(/^vigil-guardian: invalid configuration: VIGIL_STORE: must be redis/);
    } finally {
      await redis.dispose();
    }
  });
});
