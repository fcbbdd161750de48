import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { bootstrapAdmin, buildServer, createLogger, parseConfig, RedisStore } from '@vigil/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boolFlag, closedPort, ENV, vigil } from './harness.js';

type App = Awaited<ReturnType<typeof buildServer>>;

/** A private redis-server this test can freeze (SIGSTOP) and thaw (SIGCONT). */
async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await closedPort();
  const child = spawn(
    process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return { url: `redis://127.0.0.1:${port}`, child };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

/**
 * The real Redis store with a hook after a write route's idempotency lookup, where the test freezes
 * Redis: the kill that follows reaches Redis, which runs it only once thawed, after the server gave up.
 */
class FreezingStore extends RedisStore {
  afterLookup: (() => void) | undefined;

  override async getIdempotency(id: string) {
    const record = await super.getIdempotency(id);
    this.afterLookup?.();
    return record;
  }
}

describe('vigil retries a write whose outcome the server could not know', () => {
  let redis: { url: string; child: ChildProcess };
  let store: FreezingStore;
  let app: App;
  let url: string;
  let admin: string;
  const seen: { method: string; url: string; key: string | undefined; status: number }[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    // A short command timeout so the server gives up on the frozen Redis quickly.
    store = new FreezingStore({
      url: redis.url,
      prefix: `cli-${randomBytes(4).toString('hex')}:`,
      commandTimeoutMs: 400,
      onListenerError: () => {},
    });
    await store.start();
    const boot = await bootstrapAdmin(store);
    if (!boot.created) throw new Error('expected a fresh store');
    admin = boot.secret;
    app = await buildServer({
      config: parseConfig({ logLevel: 'silent', rateLimitMax: 0 }),
      store,
      logger: createLogger('silent'),
    });
    app.addHook('onResponse', async (request, reply) => {
      const key = request.headers['idempotency-key'];
      seen.push({
        method: request.method,
        url: request.url,
        key: typeof key === 'string' ? key : undefined,
        status: reply.statusCode,
      });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    await store.putFlag(ENV, boolFlag('checkout', 50), undefined, { actor: 'alice' });
  }, 30_000);

  afterAll(async () => {
    redis?.child.kill('SIGCONT');
    await app?.close();
    await store?.close();
    redis?.child.kill('SIGKILL');
  });

  it('sends the kill again with the same Idempotency-Key and the flag is killed once', async () => {
    store.afterLookup = () => {
      store.afterLookup = undefined;
      redis.child.kill('SIGSTOP');
      setTimeout(() => redis.child.kill('SIGCONT'), 600);
    };
    const run = await vigil(['kill', 'checkout', '--reason', 'error spike'], {
      VIGIL_URL: url,
      VIGIL_TOKEN: admin,
      VIGIL_ENV: ENV,
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const kills = seen.filter((s) => s.method === 'POST' && s.url.endsWith('/flags/checkout/kill'));
    // The first answer was 503 VIGIL_WRITE_OUTCOME_UNKNOWN; the retries carried the same key.
    expect(kills[0]?.status).toBe(503);
    expect(kills.at(-1)?.status).toBe(200);
    expect(new Set(kills.map((k) => k.key)).size).toBe(1);
    expect(kills[0]?.key).toMatch(/^[0-9a-f-]{36}$/);
    const audit = await store.audit(ENV, { limit: 10, target: 'checkout' });
    expect(audit.map((e) => e.action)).toEqual(['flag.kill', 'flag.create']);
    expect((await store.getFlag(ENV, 'checkout'))?.killed).toBe(true);
  });
});
