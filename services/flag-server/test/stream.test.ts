import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLOSE_CODES, type Flag, flagSchema, serverMessageSchema } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '../src/store/embedded.js';
import type { Change } from '../src/store/store.js';
import { bearer, boolFlag, segment, startServer, TestClient, type TestServer } from './helpers/server.js';

let server: TestServer | undefined;
const clients: TestClient[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.close();
  server = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function setup(config: Parameters<typeof startServer>[0] = {}) {
  server = await startServer(config);
  const base = await server.listen();
  const serverKey = await server.token(['sdk-server'], 'production');
  const clientKey = await server.token(['sdk-client'], 'production');
  const s = server;
  const write = async (method: 'PUT' | 'POST' | 'DELETE', path: string, payload?: object) => {
    const response = await s.app.inject({
      method,
      url: `/api/v1/envs/production/${path}`,
      headers: bearer(s.admin),
      ...(payload ? { payload } : {}),
    });
    expect(response.statusCode, response.body).toBeLessThan(300);
    return response;
  };
  const connect = async (options: Parameters<typeof TestClient.connect>[1] & { query?: string } = {}) => {
    const client = await TestClient.connect(`${base}/v1/stream${options.query ?? ''}`, options);
    clients.push(client);
    return client;
  };
  return { server: s, base, serverKey, clientKey, write, connect };
}

/** An embedded store that can also deliver a change of the test's making to its subscribers. */
class InjectingStore extends EmbeddedStore {
  private readonly subscribers = new Set<(change: Change) => void>();
  override subscribe(listener: (change: Change) => void): () => void {
    this.subscribers.add(listener);
    const stop = super.subscribe(listener);
    return () => {
      this.subscribers.delete(listener);
      stop();
    };
  }
  inject(change: Change): void {
    for (const listener of this.subscribers) listener(change);
  }
}

const keys = (message: Record<string, unknown>) => (message.flags as Flag[]).map((f) => f.key).sort();

describe('stream handshake', () => {
  it('hello → snapshot of the whole environment for a server key', async () => {
    const { write, connect, serverKey } = await setup();
    await write('PUT', 'flags/a', boolFlag('a'));
    await write('PUT', 'segments/beta', segment('beta'));
    const client = await connect({ headers: bearer(serverKey) });
    client.send({ type: 'hello', sdk: 'node/test' });
    const snapshot = await client.nth('snapshot', 1);
    expect(serverMessageSchema.parse(snapshot)).toMatchObject({ type: 'snapshot', revision: 2 });
    expect(keys(snapshot)).toEqual(['a']);
    expect(snapshot.segments).toEqual([expect.objectContaining({ key: 'beta' })]);
  });

  it.each([
    ['a ?key= query parameter', (key: string) => ({ query: `?key=${key}` }), ''],
    ['a vigil.<key> subprotocol', (key: string) => ({ protocols: ['vigil', `vigil.${key}`] }), 'vigil'],
  ])('accepts the key in %s', async (_how, options, protocol) => {
    const { connect, clientKey } = await setup();
    const client = await connect(options(clientKey));
    expect(client.socket.protocol).toBe(protocol);
    client.send({ type: 'hello', sdk: 'browser/test' });
    expect(await client.nth('snapshot', 1)).toMatchObject({ revision: 0, flags: [] });
  });

  it.each([
    ['no key', {}, CLOSE_CODES.badKey, 'VIGIL_UNAUTHORIZED'],
    ['an unknown key', { headers: bearer('vgl_nope') }, CLOSE_CODES.badKey, 'VIGIL_UNAUTHORIZED'],
  ])('refuses %s: error message, then close 4401', async (_name, options, code, errorCode) => {
    const { connect } = await setup();
    const client = await connect(options);
    const closed = await client.waitClosed();
    expect(closed.code).toBe(code);
    expect(client.messages).toEqual([{ type: 'error', code: errorCode, message: expect.any(String) }]);
  });

  it('refuses a token that is not an SDK key with 4403', async () => {
    const { connect, server: s } = await setup();
    const client = await connect({ headers: bearer(s.admin) });
    expect((await client.waitClosed()).code).toBe(CLOSE_CODES.forbidden);
    expect(client.messages[0]).toMatchObject({ type: 'error', code: 'VIGIL_FORBIDDEN' });
  });

  it.each([
    ['text that is not JSON', '{hello'],
    ['an unknown message type', JSON.stringify({ type: 'subscribe', flags: ['a'] })],
    ['a hello without sdk', JSON.stringify({ type: 'hello' })],
  ])('answers %s with an error and close 4400', async (_name, raw) => {
    const { connect, serverKey } = await setup();
    const client = await connect({ headers: bearer(serverKey) });
    client.send(raw);
    expect((await client.waitClosed()).code).toBe(CLOSE_CODES.protocol);
    expect(client.messages).toEqual([
      { type: 'error', code: 'VIGIL_BAD_REQUEST', message: expect.stringContaining('invalid message') },
    ]);
  });

  it('answers a ping with a pong carrying the same time', async () => {
    const { connect, serverKey } = await setup();
    const client = await connect({ headers: bearer(serverKey) });
    client.send({ type: 'ping', at: 1234 });
    expect(await client.nth('pong', 1)).toEqual({ type: 'pong', at: 1234 });
  });
});

describe('resume and live patches', () => {
  it('a client with a revision in the change log gets one patch bringing it up to date', async () => {
    const { write, connect, serverKey } = await setup();
    await write('PUT', 'flags/a', boolFlag('a'));
    await write('PUT', 'flags/b', boolFlag('b'));
    await write('PUT', 'flags/a', boolFlag('a', { description: 'second' }));
    await write('DELETE', 'flags/b');
    const client = await connect({ headers: bearer(serverKey) });
    client.send({ type: 'hello', sdk: 'node/test', revision: 1 });
    const patch = await client.nth('patch', 1);
    expect(serverMessageSchema.parse(patch)).toMatchObject({
      type: 'patch',
      revision: 4,
      flags: [expect.objectContaining({ key: 'a', description: 'second', version: 3 })],
      deleted: { flags: ['b'], segments: [] },
    });
    expect(client.ofType('snapshot')).toHaveLength(0);
  });

  it("resumes from the store's change log when memory no longer reaches back", async () => {
    const { write, connect, serverKey } = await setup({ config: { changeBuffer: 1 } });
    for (const key of ['a', 'b', 'c']) await write('PUT', `flags/${key}`, boolFlag(key));
    const fromLog = await connect({ headers: bearer(serverKey) });
    fromLog.send({ type: 'hello', sdk: 'node/test', revision: 1 });
    const patch = await fromLog.nth('patch', 1);
    expect(patch).toMatchObject({ revision: 3 });
    expect(keys(patch)).toEqual(['b', 'c']);
  });

  it('resumes with a snapshot when the change log no longer reaches back either', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vigil-trimmed-'));
    const store = new EmbeddedStore({ dataDir: dir, changeLogLimit: 1 });
    await store.start();
    cleanups.push(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });
    const { write, connect, serverKey } = await setup({ store, config: { changeBuffer: 1 } });
    for (const key of ['a', 'b', 'c']) await write('PUT', `flags/${key}`, boolFlag(key));
    const client = await connect({ headers: bearer(serverKey) });
    client.send({ type: 'hello', sdk: 'node/test', revision: 1 });
    const snapshot = await client.nth('snapshot', 1);
    expect(snapshot.revision).toBe(3);
    expect(keys(snapshot)).toEqual(['a', 'b', 'c']);
  });

  it('a client already at the revision gets an empty patch; one ahead of the server gets a snapshot', async () => {
    const { write, connect, serverKey } = await setup();
    await write('PUT', 'flags/a', boolFlag('a'));
    const current = await connect({ headers: bearer(serverKey) });
    current.send({ type: 'hello', sdk: 'node/test', revision: 1 });
    expect(await current.nth('patch', 1)).toEqual({
      type: 'patch',
      revision: 1,
      flags: [],
      segments: [],
      deleted: { flags: [], segments: [] },
    });
    const ahead = await connect({ headers: bearer(serverKey) });
    ahead.send({ type: 'hello', sdk: 'node/test', revision: 99 });
    expect(await ahead.nth('snapshot', 1)).toMatchObject({ revision: 1 });
  });

  it('sends a patch for every change after the first message, in revision order', async () => {
    const { write, connect, serverKey } = await setup();
    const client = await connect({ headers: bearer(serverKey) });
    client.send({ type: 'hello', sdk: 'node/test' });
    await client.nth('snapshot', 1);
    await write('PUT', 'flags/a', boolFlag('a'));
    await write('POST', 'flags/a/kill', { reason: 'stream test' });
    await write('PUT', 'segments/beta', segment('beta'));
    await write('POST', 'flags/a/revive', { reason: 'stream test' });
    await write('DELETE', 'segments/beta');
    const patches = await client
      .until(() => client.ofType('patch').length === 5)
      .then(() => client.ofType('patch'));
    expect(patches.map((p) => p.revision)).toEqual([1, 2, 3, 4, 5]);
    expect((patches[1]!.flags as Flag[])[0]).toMatchObject({
      key: 'a',
      killed: true,
      killReason: 'stream test',
    });
    expect(patches[4]!.deleted).toEqual({ flags: [], segments: ['beta'] });
    for (const p of patches) serverMessageSchema.parse(p);
  });

  it('sends every stream of an environment the same patch, and none to other environments', async () => {
    const { write, connect, serverKey, server: s } = await setup();
    const stagingKey = await s.token(['sdk-server'], 'staging');
    const many = await Promise.all(Array.from({ length: 20 }, () => connect({ headers: bearer(serverKey) })));
    const other = await connect({ headers: bearer(stagingKey) });
    for (const c of [...many, other]) c.send({ type: 'hello', sdk: 'node/test' });
    await Promise.all([...many, other].map((c) => c.nth('snapshot', 1)));
    await write('PUT', 'flags/a', boolFlag('a'));
    const patches = await Promise.all(many.map((c) => c.nth('patch', 1)));
    expect(new Set(patches.map((p) => JSON.stringify(p))).size).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(other.ofType('patch')).toHaveLength(0);
  });
});

describe('resets', () => {
  it('a reset from the store (the change log could not bridge a gap) reaches streams as a snapshot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vigil-reset-'));
    const store = new InjectingStore({ dataDir: dir });
    await store.start();
    cleanups.push(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });
    const { write, connect, serverKey, clientKey } = await setup({ store });
    await write('PUT', 'flags/a', boolFlag('a', { clientSide: true }));
    const server = await connect({ headers: bearer(serverKey) });
    const client = await connect({ headers: bearer(clientKey) });
    for (const c of [server, client]) c.send({ type: 'hello', sdk: 'x' });
    await Promise.all([server.nth('snapshot', 1), client.nth('snapshot', 1)]);
    const b = flagSchema.parse({ ...boolFlag('b', { clientSide: true }), version: 7 });
    store.inject({
      env: 'production',
      revision: 7,
      flags: [b],
      segments: [],
      deleted: { flags: [], segments: [] },
      reset: true,
    });
    const [serverView, clientView] = await Promise.all([
      server.nth('snapshot', 2),
      client.nth('snapshot', 2),
    ]);
    expect(serverView).toMatchObject({ revision: 7 });
    expect(keys(serverView)).toEqual(['b']);
    expect(keys(clientView)).toEqual(['b']);
    expect(server.ofType('patch')).toHaveLength(0);
  });
});

describe('client keys on the stream', () => {
  it('see only clientSide flags, in snapshots and patches; a flag leaving the view arrives as deleted', async () => {
    const { write, connect, clientKey } = await setup();
    await write('PUT', 'flags/public', boolFlag('public', { clientSide: true }));
    await write('PUT', 'flags/private', boolFlag('private'));
    const client = await connect({ headers: bearer(clientKey) });
    client.send({ type: 'hello', sdk: 'browser/test' });
    expect(keys(await client.nth('snapshot', 1))).toEqual(['public']);

    await write('PUT', 'flags/private', boolFlag('private', { description: 'still private' }));
    await write('PUT', 'flags/public', boolFlag('public', { clientSide: false }));
    await write('PUT', 'flags/private', boolFlag('private', { clientSide: true }));
    const [hidden, left, joined] = await client
      .until(() => client.ofType('patch').length === 3)
      .then(() => client.ofType('patch'));
    expect(hidden).toEqual({
      type: 'patch',
      revision: 3,
      flags: [],
      segments: [],
      deleted: { flags: [], segments: [] },
    });
    expect(left).toMatchObject({ revision: 4, flags: [], deleted: { flags: ['public'] } });
    expect(keys(joined!)).toEqual(['private']);
    expect(JSON.stringify(client.messages)).not.toContain('still private');
  });

  it('get the segments their flags reference, when a flag starts referencing one', async () => {
    const { write, connect, clientKey } = await setup();
    await write('PUT', 'segments/vip', segment('vip', { included: ['alice'] }));
    await write('PUT', 'flags/banner', boolFlag('banner', { clientSide: true }));
    const client = await connect({ headers: bearer(clientKey) });
    client.send({ type: 'hello', sdk: 'browser/test' });
    expect((await client.nth('snapshot', 1)).segments).toEqual([]);
    await write(
      'PUT',
      'flags/banner',
      boolFlag('banner', {
        clientSide: true,
        rules: [
          {
            id: 'vip',
            clauses: [{ attribute: 'key', op: 'inSegment', values: ['vip'] }],
            serve: { variant: 'on' },
          },
        ],
      }),
    );
    const patch = await client.nth('patch', 1);
    expect(patch.segments).toEqual([expect.objectContaining({ key: 'vip', included: ['alice'] })]);
  });

  it('resume with a snapshot of what they may see', async () => {
    const { write, connect, clientKey } = await setup();
    await write('PUT', 'flags/public', boolFlag('public', { clientSide: true }));
    await write('PUT', 'flags/private', boolFlag('private'));
    const client = await connect({ headers: bearer(clientKey) });
    client.send({ type: 'hello', sdk: 'browser/test', revision: 1 });
    const snapshot = await client.nth('snapshot', 1);
    expect(snapshot.revision).toBe(2);
    expect(keys(snapshot)).toEqual(['public']);
  });
});

describe('heartbeats and slow clients', () => {
  it('pings every interval and drops a client silent for two intervals', async () => {
    const { connect, serverKey } = await setup({ config: { heartbeatMs: 100 } });
    const silent = await connect({ headers: bearer(serverKey), autoPong: false });
    const alive = await connect({ headers: bearer(serverKey) });
    for (const c of [silent, alive]) c.send({ type: 'hello', sdk: 'node/test' });
    await alive.nth('ping', 2);
    expect(alive.ofType('ping')[0]).toEqual({ type: 'ping', at: expect.any(Number) });
    const closed = await silent.waitClosed(2000);
    expect(closed.code).toBe(1006);
    // The other client answers ping frames (ws does automatically) and stays.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(alive.closed).toBeUndefined();
  });

  it('closes a connection that never says hello with 4400', async () => {
    const { connect, serverKey } = await setup({ config: { heartbeatMs: 100 } });
    const client = await connect({ headers: bearer(serverKey) });
    expect((await client.waitClosed(2000)).code).toBe(CLOSE_CODES.protocol);
  });

  it('closes a client that cannot keep up with 4408 instead of buffering without bound', async () => {
    const { write, connect, serverKey, server: s } = await setup({ config: { streamMaxBuffer: 64 * 1024 } });
    const slow = await connect({ headers: bearer(serverKey) });
    slow.send({ type: 'hello', sdk: 'node/test' });
    await slow.nth('snapshot', 1);
    slow.socket.pause();
    const big = {
      description: 'x'.repeat(4000),
      variants: [
        { key: 'on', value: { blob: 'y'.repeat(200_000) } },
        { key: 'off', value: { blob: '' } },
      ],
    };
    for (let i = 0; i < 100 && s.app.vigil.hub.size > 0; i++)
      await write('PUT', 'flags/big', boolFlag('big', big));
    expect(s.app.vigil.hub.size).toBe(0);
    slow.socket.resume();
    expect((await slow.waitClosed(10_000)).code).toBe(CLOSE_CODES.tooSlow);
    const metrics = await s.app.vigil.metrics.registry.getSingleMetricAsString(
      'vigil_stream_slow_clients_total',
    );
    expect(metrics).toContain('vigil_stream_slow_clients_total 1');
  });
});

describe('stream lifecycle', () => {
  it('closes the streams of a deleted key with 4401', async () => {
    const { connect, server: s } = await setup();
    const key = await s.token(['sdk-server'], 'production', 'doomed');
    const client = await connect({ headers: bearer(key) });
    client.send({ type: 'hello', sdk: 'node/test' });
    await client.nth('snapshot', 1);
    const { id } = (await s.store.listTokens()).find((t) => t.name === 'doomed')!;
    await s.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: bearer(s.admin) });
    expect((await client.waitClosed()).code).toBe(CLOSE_CODES.badKey);
  });

  it('closes every stream with 4503 on shutdown', async () => {
    const { connect, serverKey, server: s } = await setup();
    const client = await connect({ headers: bearer(serverKey) });
    client.send({ type: 'hello', sdk: 'node/test' });
    await client.nth('snapshot', 1);
    await s.close();
    expect((await client.waitClosed()).code).toBe(CLOSE_CODES.shuttingDown);
  });

  it('counts connected SDKs by environment', async () => {
    const { connect, serverKey, clientKey, server: s } = await setup();
    const a = await connect({ headers: bearer(serverKey) });
    const b = await connect({ headers: bearer(clientKey) });
    for (const c of [a, b]) c.send({ type: 'hello', sdk: 'x' });
    await Promise.all([a.nth('snapshot', 1), b.nth('snapshot', 1)]);
    const text = await s.app.vigil.metrics.registry.getSingleMetricAsString('vigil_sdk_connections');
    expect(text).toContain('vigil_sdk_connections{env="production",kind="server"} 1');
    expect(text).toContain('vigil_sdk_connections{env="production",kind="client"} 1');
  });
});
