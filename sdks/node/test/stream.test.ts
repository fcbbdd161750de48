import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { createClient, isVigilSdkError, type VigilClient, type VigilSdkError } from '../src/index.js';
import { boolFlag, memoryLogger, next, TestServer, until } from './helpers.js';

const ENV = 'production';
/** Fast reconnects so tests do not wait on the production backoff. */
const FAST = { reconnect: { baseMs: 20, capMs: 200 } };

let server: TestServer;
let key: string;
const clients: VigilClient[] = [];

function client(options: Partial<Parameters<typeof createClient>[0]> = {}): VigilClient {
  const c = createClient({
    url: server.url,
    sdkKey: key,
    env: ENV,
    logger: memoryLogger(),
    ...FAST,
    ...options,
  });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  server = await TestServer.start();
  key = await server.token(['sdk-server'], ENV);
  await server.putFlag(ENV, boolFlag('checkout'));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server.dispose();
});

describe('streaming', () => {
  it('is ready once the stream delivers the snapshot, and evaluates from it', async () => {
    const c = client();
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(false);
    await expect(c.waitForReady(5000)).resolves.toBe(true);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
    expect(c.detail('checkout', { key: 'u1' })).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'STATIC',
    });
    expect(c.stats()).toMatchObject({
      state: 'streaming',
      ready: true,
      source: 'stream',
      snapshots: 1,
      polling: false,
    });
  });

  it('emits ready once, with the source', async () => {
    const c = client();
    const [source] = await next<[string]>((l) => c.on('ready', l));
    expect(source).toBe('stream');
  });

  it('a flag created over REST reaches the client as a change event with its key', async () => {
    const c = client();
    await c.waitForReady(5000);
    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.putFlag(ENV, boolFlag('search-v2', { fallthrough: { variant: 'off' } }));
    const [keys] = await changed;
    expect(keys).toEqual(['search-v2']);
    expect(c.variant('search-v2', { key: 'u1' })).toBe('off');
  });

  it('a kill over REST flips isEnabled, and a revive restores it', async () => {
    const c = client();
    await c.waitForReady(5000);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);

    let changed = next<[string[]]>((l) => c.on('change', l));
    await server.api('POST', `/envs/${ENV}/flags/checkout/kill`, { reason: 'errors up' });
    expect((await changed)[0]).toEqual(['checkout']);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(false);
    expect(c.detail('checkout', { key: 'u1' })).toMatchObject({ reason: 'DISABLED', detail: 'KILLED' });

    changed = next<[string[]]>((l) => c.on('change', l));
    await server.api('POST', `/envs/${ENV}/flags/checkout/revive`, { reason: 'fixed' });
    await changed;
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
  });

  it('a deleted flag disappears from the client (patch with deleted)', async () => {
    const c = client();
    await c.waitForReady(5000);
    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.api('DELETE', `/envs/${ENV}/flags/checkout`);
    expect((await changed)[0]).toEqual(['checkout']);
    expect(c.detail('checkout', { key: 'u1' }, false)).toMatchObject({
      reason: 'ERROR',
      errorCode: 'FLAG_NOT_FOUND',
    });
  });

  it('resumes by revision after the server restarts: changes made while it was down arrive as a patch', async () => {
    // No polling fallback here: the change must come over the resumed stream.
    const c = client({ reconnect: { baseMs: 20, capMs: 200, pollAfterFailures: 1000 } });
    await c.waitForReady(5000);
    const revision = c.revision;
    const stale = next<[]>((l) => c.on('stale', l));

    await server.stop();
    await stale;
    expect(c.stats().stale).toBe(true);
    // Last known flags are kept through the outage.
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
    // A write lands in the store while no server is up (another replica, say).
    await server.store.setKill(ENV, 'checkout', { killed: true, actor: 'test', reason: 'while down' });

    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.restart();
    expect((await changed)[0]).toEqual(['checkout']);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(false);
    expect(c.revision).toBe(revision + 1);
    const stats = c.stats();
    // One snapshot at the start; the reconnect resumed with a patch instead of a second snapshot.
    expect(stats.snapshots).toBe(1);
    expect(stats.patches).toBeGreaterThanOrEqual(1);
    expect(stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(stats.stale).toBe(false);
    expect(stats.state).toBe('streaming');
  });

  it('an unknown key stops retrying and rejects waitForReady with VIGIL_SDK_UNAUTHORIZED', async () => {
    const c = client({ sdkKey: 'vgl_not-a-key' });
    const errors: VigilSdkError[] = [];
    c.on('error', (e) => errors.push(e));
    const error = await c.waitForReady(5000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isVigilSdkError(error, 'VIGIL_SDK_UNAUTHORIZED')).toBe(true);
    expect((error as VigilSdkError).status).toBe(4401);
    expect((error as VigilSdkError).message).toMatch(/unknown SDK key/);
    expect(errors.map((e) => e.code)).toContain('VIGIL_SDK_UNAUTHORIZED');
    // No retry: after several backoff periods there is still one connection.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(c.stats()).toMatchObject({ state: 'refused', connects: 1, polling: false });
    // Later calls reject at once with the same error; evaluation still answers defaults.
    await expect(c.waitForReady(10)).rejects.toBe(error);
    expect(c.isEnabled('checkout', { key: 'u1' }, true)).toBe(true);
  });

  it('a key without an SDK scope is refused with VIGIL_SDK_FORBIDDEN (4403)', async () => {
    const readKey = await server.token(['read']);
    const c = client({ sdkKey: readKey });
    await expect(c.waitForReady(5000)).rejects.toMatchObject({ code: 'VIGIL_SDK_FORBIDDEN', status: 4403 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(c.stats().connects).toBe(1);
  });

  it('a key deleted while streaming stops the client', async () => {
    const c = client();
    await c.waitForReady(5000);
    const refused = next<[VigilSdkError]>((l) => c.on('error', l));
    const { tokens } = await server.api<{ tokens: { id: string; scopes: string[] }[] }>('GET', '/tokens');
    const sdkToken = tokens.find((t) => t.scopes.includes('sdk-server'))!;
    await server.api('DELETE', `/tokens/${sdkToken.id}`);
    const [error] = await refused;
    expect(error.code).toBe('VIGIL_SDK_UNAUTHORIZED');
    expect(c.stats().state).toBe('refused');
    // The last known flags stay.
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
  });

  it('waitForReady resolves false on timeout while the server is unreachable, and never rejects', async () => {
    await server.stop();
    const c = client();
    await expect(c.waitForReady(150)).resolves.toBe(false);
    await until(() => c.stats().streamFailures >= 2, 'a few failed attempts');
    expect(c.stats().state).not.toBe('refused');
  });

  it('waitForReady resolves false when the client is closed first', async () => {
    await server.stop();
    const c = client();
    const waiting = c.waitForReady(10_000);
    await c.close();
    await expect(waiting).resolves.toBe(false);
  });

  it('a listener that throws does not break the client or the other listeners', async () => {
    const logger = memoryLogger();
    const c = client({ logger });
    const seen: string[][] = [];
    c.on('change', () => {
      throw new Error('listener bug');
    });
    c.on('change', (keys) => seen.push(keys));
    await c.waitForReady(5000);
    await server.putFlag(ENV, boolFlag('other'));
    await until(() => seen.length === 1, 'the second listener');
    expect(logger.lines.some((l) => l.level === 'error' && l.msg.includes('listener bug'))).toBe(true);
  });

  it('close stops the stream: later changes do not arrive', async () => {
    const c = client();
    await c.waitForReady(5000);
    await c.close();
    expect(c.stats().state).toBe('closed');
    await server.putFlag(ENV, boolFlag('after-close'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(c.variant('after-close', { key: 'u1' })).toBeUndefined();
    expect(server.app!.vigil.hub.size).toBe(0);
  });
});

describe('a misbehaving stream', () => {
  /** A WebSocket server that plays a script per connection (the real server never sends garbage). */
  async function scripted(
    script: (socket: import('ws').WebSocket, hello: Record<string, unknown>, n: number) => void,
  ): Promise<{ url: string; hellos: Record<string, unknown>[]; close(): Promise<void> }> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    const hellos: Record<string, unknown>[] = [];
    wss.on('connection', (socket, request) => {
      if (request.headers.authorization !== 'Bearer scripted-key') {
        socket.close(4401, 'bad key');
        return;
      }
      socket.once('message', (data) => {
        const hello = JSON.parse(data.toString()) as Record<string, unknown>;
        hellos.push(hello);
        script(socket, hello, hellos.length);
      });
    });
    const address = wss.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    return {
      url: `http://127.0.0.1:${port}`,
      hellos,
      close: async () => {
        for (const s of wss.clients) s.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      },
    };
  }

  const snapshot = (revision: number, on: boolean) =>
    JSON.stringify({
      type: 'snapshot',
      revision,
      flags: [{ ...boolFlag('f', { fallthrough: { variant: on ? 'on' : 'off' } }), version: revision }],
      segments: [],
    });

  it('an unparseable message drops the connection and resyncs without a revision', async () => {
    const fake = await scripted((socket, _hello, n) => {
      if (n === 1) {
        socket.send(snapshot(5, true));
        setTimeout(() => socket.send('{not json'), 20);
      } else socket.send(snapshot(7, false));
    });
    const c = client({ url: fake.url, sdkKey: 'scripted-key' });
    const errors: VigilSdkError[] = [];
    c.on('error', (e) => errors.push(e));
    await until(() => fake.hellos.length === 2 && c.revision === 7, 'the resync');
    expect(fake.hellos[0]).toEqual({ type: 'hello', sdk: expect.stringMatching(/^@vigil\/node@/) });
    // The second hello asks for a snapshot: no revision after an invalid message.
    expect(fake.hellos[1]).not.toHaveProperty('revision');
    expect(errors.map((e) => e.code)).toEqual(['VIGIL_SDK_PROTOCOL']);
    expect(c.isEnabled('f', { key: 'u' })).toBe(false);
    expect(c.stats().protocolErrors).toBe(1);
    await fake.close();
  });

  it('a message that is JSON but not a valid message also forces a resync', async () => {
    const fake = await scripted((socket, _hello, n) => {
      if (n === 1) {
        socket.send(snapshot(3, true));
        setTimeout(() => socket.send(JSON.stringify({ type: 'patch', revision: 'four' })), 20);
      } else socket.send(snapshot(4, true));
    });
    const c = client({ url: fake.url, sdkKey: 'scripted-key' });
    await until(() => fake.hellos.length === 2 && c.revision === 4, 'the resync');
    expect(fake.hellos[1]).not.toHaveProperty('revision');
    await fake.close();
  });

  it('a patch not newer than what is held is ignored, a newer one applied', async () => {
    const patch = (revision: number, on: boolean) =>
      JSON.stringify({
        type: 'patch',
        revision,
        flags: [{ ...boolFlag('f', { fallthrough: { variant: on ? 'on' : 'off' } }), version: revision }],
        segments: [],
        deleted: { flags: [], segments: [] },
      });
    const fake = await scripted((socket) => {
      socket.send(snapshot(5, true));
      socket.send(patch(4, false));
      socket.send(patch(5, false));
      setTimeout(() => socket.send(patch(6, false)), 50);
    });
    const c = client({ url: fake.url, sdkKey: 'scripted-key' });
    const changes: string[][] = [];
    c.on('change', (keys) => changes.push(keys));
    await until(() => c.stats().patches === 2, 'the stale patches');
    expect(c.isEnabled('f', { key: 'u' })).toBe(true);
    await until(() => c.revision === 6, 'the newer patch');
    expect(c.isEnabled('f', { key: 'u' })).toBe(false);
    expect(changes).toEqual([['f']]);
    await fake.close();
  });

  it('a normal reconnect resumes with the revision held', async () => {
    const fake = await scripted((socket, _hello, n) => {
      socket.send(snapshot(9, true));
      if (n === 1) setTimeout(() => socket.close(4503, 'shutting down'), 20);
    });
    client({ url: fake.url, sdkKey: 'scripted-key' });
    await until(() => fake.hellos.length === 2, 'the reconnect');
    expect(fake.hellos[1]).toMatchObject({ type: 'hello', revision: 9 });
    await fake.close();
  });

  it('answers the server pings, and pings the server', async () => {
    const received: Record<string, unknown>[] = [];
    const fake = await scripted((socket) => {
      socket.on('message', (data) => received.push(JSON.parse(data.toString()) as Record<string, unknown>));
      socket.send(snapshot(1, true));
      socket.send(JSON.stringify({ type: 'ping', at: 42 }));
    });
    client({ url: fake.url, sdkKey: 'scripted-key', heartbeatMs: 30 });
    await until(
      () => received.some((m) => m.type === 'pong' && m.at === 42) && received.some((m) => m.type === 'ping'),
      'a pong and a ping',
    );
    await fake.close();
  });

  it('a silent stream is noticed after three heartbeats and replaced', async () => {
    const fake = await scripted((socket, _hello, n) => {
      socket.send(snapshot(n, true));
      // The first connection goes silent: it stops reading (no pongs to pings, no messages).
      if (n === 1) (socket as unknown as { _socket: import('node:net').Socket })._socket.pause();
    });
    const c = client({ url: fake.url, sdkKey: 'scripted-key', heartbeatMs: 40 });
    await until(() => fake.hellos.length >= 2, 'a new connection after silence', 3000);
    expect(c.stats().deadStreams).toBe(1);
    expect(fake.hellos[1]).toMatchObject({ revision: 1 });
    await fake.close();
  });
});
