import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, type VigilClient } from '../src/index.js';
import { boolFlag, freePort, memoryLogger, TestServer, until } from './helpers.js';

const ENV = 'production';

let server: TestServer;
let replica: { url: string; stop(): Promise<void> };
let key: string;
const clients: VigilClient[] = [];

beforeEach(async () => {
  server = await TestServer.start();
  replica = await server.replica();
  key = await server.token(['sdk-server'], ENV);
  await server.putFlag(ENV, boolFlag('checkout'));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await replica.stop();
  await server.dispose();
});

/** Calls the admin REST API of `url` with the admin token. */
async function admin(url: string, method: string, path: string, body?: unknown): Promise<number> {
  const response = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${server.admin}`, 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  await response.text();
  return response.status;
}

describe('several server URLs', () => {
  it('moves to the next replica when its own stops, resuming there with a patch', async () => {
    const c = createClient({
      urls: [server.url, replica.url],
      sdkKey: key,
      logger: memoryLogger(),
      reconnect: { baseMs: 20, capMs: 200 },
      metrics: false,
    });
    clients.push(c);
    expect(await c.waitForReady(5000)).toBe(true);
    expect(c.stats()).toMatchObject({ server: server.url, state: 'streaming', snapshots: 1, patches: 0 });

    await server.stop();
    expect(await admin(replica.url, 'POST', `/envs/${ENV}/flags/checkout/kill`, { reason: 'test' })).toBe(
      200,
    );
    await until(() => !c.isEnabled('checkout', { key: 'u' }), 'the kill to reach the client through B');
    expect(c.stats()).toMatchObject({ server: replica.url, state: 'streaming', snapshots: 1 });
    expect(c.stats().patches).toBeGreaterThanOrEqual(1);
    expect(c.stats().failovers).toBeGreaterThanOrEqual(1);
  });

  it('tries a server that is down first, then the next, with `url` and `urls` together', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const c = createClient({
      url: down,
      urls: [replica.url, down],
      sdkKey: key,
      logger: memoryLogger(),
      reconnect: { baseMs: 20, capMs: 200 },
      metrics: false,
    });
    clients.push(c);
    expect(await c.waitForReady(5000)).toBe(true);
    expect(c.stats()).toMatchObject({ server: replica.url, state: 'streaming', failovers: 1 });
  });

  it('refuses options naming no server', () => {
    expect(() => createClient({ sdkKey: key })).toThrow(/url or urls is required/);
    expect(() => createClient({ urls: [], sdkKey: key })).toThrow(/urls/);
  });
});
