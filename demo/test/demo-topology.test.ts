import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminSecret,
  type ServerProcess,
  spawnServer,
} from '../../services/flag-server/test/helpers/process.js';
import { freePort, startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { repoRoot, runDemo } from './run-demo.js';

const WEBHOOK_SECRET = 'compose-demo-webhook-secret-0123';

/**
 * docker-compose.yml's `--profile demo` topology as processes: Redis, two flag-server replicas, a
 * guardian process whose webhook points at the demo's receiver, and the demo driving replica A's REST
 * while its app's SDK streams from replica B. The kill the guardian makes through Redis must reach
 * the SDK on the other replica.
 */
describe('pnpm demo against the compose topology (two replicas, a guardian, Redis)', () => {
  let redis: TestRedis;
  let a: ServerProcess;
  let b: ServerProcess;
  let guardian: ChildProcess;
  let guardianOut = '';
  let cwd: string;
  let receiverPort: number;
  const admin = adminSecret();

  beforeAll(async () => {
    redis = await startTestRedis();
    const env = { VIGIL_STORE: 'redis', REDIS_URL: redis.url, VIGIL_ADMIN_TOKEN: admin };
    a = await spawnServer(env);
    b = await spawnServer(env);
    receiverPort = await freePort();
    guardian = spawn(
      process.execPath,
      ['--conditions=@vigil/source', '--import', 'tsx', 'services/guardian/src/main.ts'],
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH ?? '',
          VIGIL_STORE: 'redis',
          REDIS_URL: redis.url,
          VIGIL_LOG_LEVEL: 'warn',
          VIGIL_GUARDIAN_METRICS_PORT: '0',
          VIGIL_WEBHOOK_URL: `http://127.0.0.1:${receiverPort}/webhook`,
          VIGIL_WEBHOOK_SECRET: WEBHOOK_SECRET,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    guardian.stdout?.on('data', (d) => {
      guardianOut += d.toString();
    });
    guardian.stderr?.on('data', (d) => {
      guardianOut += d.toString();
    });
    cwd = await mkdtemp(join(tmpdir(), 'vigil-demo-compose-'));
  }, 60_000);

  afterAll(async () => {
    guardian?.kill('SIGKILL');
    await a?.stop();
    await b?.stop();
    await redis?.dispose();
    if (cwd) await rm(cwd, { recursive: true, force: true });
  });

  it('writes through one replica, serves the app from the other, and the guardian notifies the demo', async () => {
    const { code, out } = await runDemo(
      ['--url', a.url, '--sdk-url', b.url, '--receiver-port', String(receiverPort), '--hold', '6s'],
      { VIGIL_TOKEN: admin, VIGIL_WEBHOOK_SECRET: WEBHOOK_SECRET, INIT_CWD: cwd },
    );
    const context = `${out}\n--- guardian ---\n${guardianOut}\n--- A ---\n${a.output()}\n--- B ---\n${b.output()}`;
    expect(code, context).toBe(0);
    expect(out).toContain(`streaming flags from ${b.url}`);
    expect(out).toMatch(/guardian killed checkout-v2 \d+\.\d s after the fault began/);
    expect(out).toContain(`the app's SDK serves "off" to every user`);
    expect(out).toMatch(/webhook +incident\.opened +1 delivery, HMAC signature verified/);
    expect(out).toContain('# Postmortem: checkout-v2 (demo)');
  }, 200_000);
});
