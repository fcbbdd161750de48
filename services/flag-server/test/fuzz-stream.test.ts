import { CLOSE_CODES, clientMessageSchema, type Flag, serverMessageSchema } from '@vigil/proto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  FUZZ_TIMEOUT_MS,
  fuzzParams,
  mutate,
  mutationArb,
  parseResponses,
  rawExchange,
} from './helpers/fuzz.js';
import { seedWorld, startFuzzServer, type World } from './helpers/rest-fuzz.js';
import { bearer, boolFlag, TestClient, type TestServer } from './helpers/server.js';

/** The stream's largest client message (the server's `maxPayload`). */
const MAX_MESSAGE = 64 * 1024;
/** RFC 6455 close codes the `ws` library answers frame-level violations with. */
const INVALID_UTF8 = 1007;
const TOO_BIG = 1009;

let server: TestServer;
let world: World;
let base: string;
let port: number;
let observer: TestClient;
/** Revisions of the writes made while fuzzing, which the observer must see. */
const written: number[] = [];

beforeAll(async () => {
  server = await startFuzzServer();
  world = await seedWorld(server);
  base = await server.listen();
  port = Number(new URL(base).port);
  observer = await TestClient.connect(`${base}/v1/stream`, { headers: bearer(world.sdkServer) });
  observer.send({ type: 'hello', sdk: 'observer' });
  await observer.nth('snapshot', 1);
});
afterAll(async () => {
  observer?.close();
  await server?.close();
});

type Frame =
  | { kind: 'text'; text: string }
  | { kind: 'binary'; bytes: Uint8Array }
  | { kind: 'huge'; size: number }
  | { kind: 'badUtf8'; bytes: Uint8Array }
  | { kind: 'control' };

const text = (arb: fc.Arbitrary<string>) => arb.map((t): Frame => ({ kind: 'text', text: t }));
/** A valid message, or that message with one field mutated. */
const message = (valid: fc.Arbitrary<Record<string, unknown>>) =>
  text(
    fc
      .tuple(valid, fc.option(mutationArb, { freq: 2 }))
      .map(([m, mutation]) => (mutation === null ? JSON.stringify(m) : mutate(m, mutation))),
  );

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  {
    weight: 4,
    arbitrary: message(
      fc.record(
        {
          type: fc.constant('hello'),
          sdk: fc.string({ minLength: 1, maxLength: 20 }),
          revision: fc.oneof(fc.nat({ max: 50 }), fc.constantFrom(0, 1_000_000, Number.MAX_SAFE_INTEGER)),
        },
        { requiredKeys: ['type', 'sdk'] },
      ),
    ),
  },
  {
    weight: 3,
    arbitrary: message(
      fc.record(
        { type: fc.constantFrom('ping', 'pong'), at: fc.double({ noNaN: true, noDefaultInfinity: true }) },
        { requiredKeys: ['type'] },
      ),
    ),
  },
  {
    weight: 1,
    arbitrary: message(
      fc.record({
        type: fc.constantFrom(
          'snapshot',
          'patch',
          'error',
          'subscribe',
          'HELLO',
          '',
          'constructor',
          '__proto__',
        ),
        revision: fc.integer(),
      }),
    ),
  },
  { weight: 1, arbitrary: text(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))) },
  { weight: 1, arbitrary: text(fc.string({ unit: 'binary', maxLength: 40 })) },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 40 }).map((bytes): Frame => ({ kind: 'binary', bytes })),
  },
  { weight: 1, arbitrary: fc.constant<Frame>({ kind: 'control' }) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: MAX_MESSAGE + 1, max: 3 * MAX_MESSAGE })
      .map((size): Frame => ({ kind: 'huge', size })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom([0xff], [0xc0, 0xae], [0xed, 0xa0, 0x80], [0x7b, 0xe2, 0x82])
      .map((bytes): Frame => ({ kind: 'badUtf8', bytes: Uint8Array.from(bytes) })),
  },
);

type KeyKind = 'server' | 'client' | 'admin' | 'read' | 'garbage';
interface Connect {
  how: 'header' | 'query' | 'protocol' | 'none';
  key: KeyKind;
  garbage: string;
  /** Extra subprotocols offered (tokens, as the handshake requires). */
  protocols: string[];
}

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,24}$/);
const connectArb: fc.Arbitrary<Connect> = fc.record({
  how: fc.constantFrom('header', 'header', 'query', 'protocol', 'none'),
  key: fc.constantFrom<KeyKind>('server', 'server', 'client', 'admin', 'read', 'garbage'),
  garbage: token,
  protocols: fc.uniqueArray(
    token.filter((p) => !p.startsWith('vigil')),
    { maxLength: 3 },
  ),
});

function secretOf(c: Connect): string {
  switch (c.key) {
    case 'server':
      return world.sdkServer;
    case 'client':
      return world.sdkClient;
    case 'admin':
      return world.admin;
    case 'read':
      return world.read;
    case 'garbage':
      return `vgl_${c.garbage}`;
  }
}

async function open(c: Connect): Promise<TestClient> {
  const secret = secretOf(c);
  const query = c.how === 'query' ? `?key=${encodeURIComponent(secret)}` : '';
  const protocols = c.how === 'protocol' ? ['vigil', `vigil.${secret}`, ...c.protocols] : c.protocols;
  return TestClient.connect(`${base}/v1/stream${query}`, {
    protocols,
    ...(c.how === 'header' ? { headers: bearer(secret) } : {}),
  });
}

function send(client: TestClient, frame: Frame): void {
  const { socket } = client;
  switch (frame.kind) {
    case 'text':
      socket.send(frame.text);
      break;
    case 'binary':
      socket.send(frame.bytes, { binary: true });
      break;
    case 'huge':
      socket.send(`"${'x'.repeat(frame.size)}"`);
      break;
    case 'badUtf8':
      // ws validates the UTF-8 of text frames it receives, not of those it sends.
      socket.send(frame.bytes, { binary: false });
      break;
    case 'control':
      socket.ping();
      break;
  }
}

/** What the protocol says the server does with a connection and its frames. */
interface Expected {
  /** Close codes the server may answer with; none means the stream stays open. */
  closes: number[];
  /** Whether every message before the end was answered (false when a frame-level violation may cut in). */
  strict: boolean;
  hellos: number;
  /** The `at` of each ping, in order (pongs echo it). */
  pings: (number | undefined)[];
}

const ERROR_FOR_CLOSE: Record<number, string> = {
  [CLOSE_CODES.protocol]: 'VIGIL_BAD_REQUEST',
  [CLOSE_CODES.badKey]: 'VIGIL_UNAUTHORIZED',
  [CLOSE_CODES.forbidden]: 'VIGIL_FORBIDDEN',
};

function expected(c: Connect, frames: Frame[]): Expected {
  // ws rejects these as soon as it parses them, ahead of messages still being handled.
  const frameLevel = frames.find((f) => f.kind === 'huge' || f.kind === 'badUtf8');
  const frameCode = frameLevel === undefined ? [] : [frameLevel.kind === 'huge' ? TOO_BIG : INVALID_UTF8];
  if (c.how === 'none' || c.key === 'garbage')
    return { closes: [CLOSE_CODES.badKey, ...frameCode], strict: false, hellos: 0, pings: [] };
  if (c.key === 'admin' || c.key === 'read') {
    return { closes: [CLOSE_CODES.forbidden, ...frameCode], strict: false, hellos: 0, pings: [] };
  }
  const out: Expected = { closes: [], strict: frameLevel === undefined, hellos: 0, pings: [] };
  for (const frame of frames) {
    if (frame === frameLevel) {
      out.closes.push(...frameCode);
      return out;
    }
    if (frame.kind === 'control') continue;
    const parsed =
      frame.kind === 'text'
        ? clientMessageSchema.safeParse(
            (() => {
              try {
                return JSON.parse(Buffer.from(frame.text).toString());
              } catch {
                return undefined;
              }
            })(),
          )
        : undefined;
    if (!parsed?.success) {
      out.closes.push(CLOSE_CODES.protocol, ...frameCode);
      return out;
    }
    if (parsed.data.type === 'hello') out.hellos++;
    else if (parsed.data.type === 'ping') out.pings.push(parsed.data.at);
  }
  return out;
}

const SYNC = -424242.5;

describe('WebSocket fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('any key, subprotocols and frames: answers per the protocol, never crashes', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        connectArb,
        fc.array(frameArb, { maxLength: 6 }),
        fc.boolean(),
        async (c, frames, write) => {
          run++;
          if (write) {
            // A write while the fuzzing goes on: the observer must get its patch.
            const response = await server.app.inject({
              method: 'PUT',
              url: '/api/v1/envs/production/flags/observed',
              headers: bearer(world.admin),
              payload: boolFlag('observed', { description: `run ${run}` }),
            });
            expect(response.statusCode, response.body).toBeLessThan(300);
            written.push((response.json() as Flag).version);
          }
          const client = await open(c);
          try {
            for (const frame of frames) send(client, frame);
            const want = expected(c, frames);
            if (want.closes.length === 0) client.send({ type: 'ping', at: SYNC });
            await client.until(
              () => client.closed !== undefined || client.ofType('pong').some((m) => m.at === SYNC),
              10_000,
            );
            for (const m of client.messages) {
              expect(serverMessageSchema.safeParse(m).success, JSON.stringify(m).slice(0, 300)).toBe(true);
            }
            const errors = client.ofType('error');
            if (want.closes.length === 0) {
              expect(client.closed, JSON.stringify(client.messages).slice(0, 500)).toBeUndefined();
              expect(errors).toEqual([]);
            } else {
              expect(want.closes, `closed with ${client.closed?.code}`).toContain(client.closed?.code);
              const code = ERROR_FOR_CLOSE[client.closed!.code];
              // A refusal is an `error` message naming the code, then the close.
              if (code !== undefined) expect(client.messages.at(-1)).toMatchObject({ type: 'error', code });
              else expect(errors).toEqual([]);
            }
            if (want.strict) {
              const answers = client.messages.filter((m) => m.type === 'snapshot' || m.type === 'patch');
              if (want.hellos === 0) expect(answers).toEqual([]);
              else expect(answers.length).toBeGreaterThanOrEqual(want.hellos);
              const pongs = client.ofType('pong').filter((m) => m.at !== SYNC);
              expect(pongs.map((m) => m.at)).toEqual(want.pings);
            }
          } finally {
            client.close();
          }
          const health = await server.app.inject({ method: 'GET', url: '/healthz' });
          expect(health.statusCode).toBe(200);
        },
      ),
      fuzzParams(400),
    );
  });

  it('connections opened and dropped at random leave no stream behind', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            hello: fc.boolean(),
            waitMs: fc.constantFrom(0, 0, 1, 5),
            end: fc.constantFrom('terminate', 'close'),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        async (plans) => {
          await Promise.all(
            plans.map(async (plan) => {
              const socket = new WebSocket(`${base}/v1/stream`, { headers: bearer(world.sdkServer) });
              socket.on('error', () => {});
              await new Promise<void>((resolve) => {
                socket.once('open', () => resolve());
                socket.once('close', () => resolve());
              });
              if (plan.hello && socket.readyState === WebSocket.OPEN) {
                socket.send(JSON.stringify({ type: 'hello', sdk: 'flaky' }));
              }
              if (plan.waitMs > 0) await new Promise((r) => setTimeout(r, plan.waitMs));
              if (plan.end === 'terminate') socket.terminate();
              else socket.close();
            }),
          );
        },
      ),
      fuzzParams(40),
    );
    // Only the observer is left once the server has seen every close.
    for (let i = 0; i < 100 && server.app.vigil.hub.size !== 1; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(server.app.vigil.hub.size).toBe(1);
  });

  it('garbage upgrade requests are refused without a 5xx', async () => {
    const header = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom(
        '',
        ' ',
        ',',
        'vigil,,vigil',
        'vigil, vigil',
        'a b',
        'vigil.',
        '"vigil"',
        'x'.repeat(5000),
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 30 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          path: fc.constantFrom(
            '/v1/stream',
            '/v1/stream?key=',
            '/v1/stream?key=%zz',
            '/v1/flags',
            '/api/v1/tokens',
            '/nope',
          ),
          key: fc.oneof(fc.constant('dGhlIHNhbXBsZSBub25jZQ=='), header),
          version: fc.oneof(fc.constant('13'), header),
          protocol: header,
          upgrade: fc.constantFrom('websocket', 'WebSocket', 'h2c', ''),
        }),
        async (h) => {
          const lines = [
            `GET ${h.path} HTTP/1.1`,
            'host: 127.0.0.1',
            'connection: Upgrade',
            `upgrade: ${h.upgrade}`,
          ];
          if (h.key !== undefined) lines.push(`sec-websocket-key: ${h.key}`);
          if (h.version !== undefined) lines.push(`sec-websocket-version: ${h.version}`);
          if (h.protocol !== undefined) lines.push(`sec-websocket-protocol: ${h.protocol}`);
          const exchange = await rawExchange(port, [`${lines.join('\r\n')}\r\n\r\n`], {
            end: true,
            idleMs: 5000,
          });
          expect(exchange.closedByServer, 'the server neither answered nor closed the connection').toBe(true);
          const head = exchange.data.toString('latin1');
          if (head.startsWith('HTTP/1.1 101')) return;
          if (head.length > 0) {
            const [response] = parseResponses(
              exchange.data.subarray(0, exchange.data.indexOf('\r\n\r\n') + 4),
            );
            expect(response!.statusCode, head.slice(0, 300)).toBeLessThan(500);
          }
          expect((await server.app.inject({ url: '/healthz' })).statusCode).toBe(200);
        },
      ),
      fuzzParams(150),
    );
  });

  it('the observer, connected throughout, got a patch for every write, in order, and holds the store state', async () => {
    const response = await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/observed',
      headers: bearer(world.admin),
      payload: boolFlag('observed', { description: 'last' }),
    });
    const last = (response.json() as Flag).version;
    written.push(last);
    await observer.until(() => observer.ofType('patch').some((m) => m.revision === last), 5000);
    expect(observer.closed).toBeUndefined();
    expect(observer.ofType('error')).toEqual([]);
    const patches = observer.ofType('patch');
    const revisions = patches.map((p) => p.revision as number);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(revisions).size).toBe(revisions.length);
    expect(revisions).toEqual(expect.arrayContaining(written));
    // Snapshot plus patches is the store's state.
    const flags = new Map((observer.ofType('snapshot')[0]!.flags as Flag[]).map((f) => [f.key, f]));
    for (const patch of patches) {
      for (const flag of patch.flags as Flag[]) flags.set(flag.key, flag);
      for (const key of (patch.deleted as { flags: string[] }).flags) flags.delete(key);
    }
    const stored = await server.store.snapshot('production');
    const byKey = (a: Flag, b: Flag) => (a.key < b.key ? -1 : 1);
    expect([...flags.values()].sort(byKey)).toEqual(JSON.parse(JSON.stringify(stored.flags)).sort(byKey));
  });
});
