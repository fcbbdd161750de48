import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidUtf8Offset } from '../src/request.js';
import { bearer, boolFlag, startServer, TestClient, type TestServer } from './helpers/server.js';

/** Invalid UTF-8 sequences, each as it would sit inside a JSON string. */
const BAD_SEQUENCES: Record<string, number[]> = {
  'a lead byte followed by a non-continuation byte (C3 28)': [0xc3, 0x28],
  'a lone FF': [0xff],
  'a truncated 4-byte sequence (F0 9F 98)': [0xf0, 0x9f, 0x98],
  'an encoded surrogate (ED A0 80)': [0xed, 0xa0, 0x80],
  'an overlong slash (C0 AF)': [0xc0, 0xaf],
};

let server: TestServer;
let http: string;
let sdkKey: string;

beforeAll(async () => {
  server = await startServer();
  http = (await server.listen()).replace('ws:', 'http:');
  sdkKey = await server.token(['sdk-server'], 'production');
  const created = await server.app.inject({
    method: 'PUT',
    url: '/api/v1/envs/production/flags/known',
    headers: bearer(server.admin),
    payload: boolFlag('known'),
  });
  expect(created.statusCode).toBe(201);
});
afterAll(async () => {
  await server?.close();
});

/** `prefix`, the raw bytes, `suffix`: a JSON document whose one string holds `bytes` undecoded. */
function body(prefix: string, bytes: number[], suffix: string): Buffer {
  return Buffer.concat([Buffer.from(prefix), Uint8Array.from(bytes), Buffer.from(suffix)]);
}

/** Sends raw bytes over real HTTP (no client-side re-encoding). */
async function send(method: string, path: string, secret: string, payload: Buffer) {
  const response = await fetch(`${http}${path}`, {
    method,
    headers: { ...bearer(secret), 'content-type': 'application/json' },
    body: payload,
  });
  return {
    status: response.status,
    body: (await response.json()) as { error?: { code: string; message: string } },
  };
}

describe('JSON bodies that are not valid UTF-8', () => {
  for (const [name, bytes] of Object.entries(BAD_SEQUENCES)) {
    it(`are refused with a 400 naming the byte offset on a write, evaluate and metrics: ${name}`, async () => {
      const revision = (await server.store.snapshot('production')).revision;

      const prefix = '{"key":"broken","description":"x';
      const write = await send(
        'PUT',
        '/api/v1/envs/production/flags/broken',
        server.admin,
        body(prefix, bytes, `",${JSON.stringify(boolFlag('broken')).slice(1)}`),
      );
      expect(write.status).toBe(400);
      expect(write.body.error?.code).toBe('VIGIL_BAD_REQUEST');
      expect(write.body.error?.message).toBe(
        `request body is not valid UTF-8 (byte offset ${Buffer.byteLength(prefix)})`,
      );

      const evaluated = await send(
        'POST',
        '/api/v1/envs/production/evaluate',
        server.admin,
        body('{"context":{"key":"user-', bytes, '"}}'),
      );
      expect(evaluated.status).toBe(400);
      expect(evaluated.body.error?.message).toMatch(/^request body is not valid UTF-8 \(byte offset \d+\)$/);

      const reported = await send(
        'POST',
        '/v1/metrics',
        sdkKey,
        body('{"sdk":"node/', bytes, '","summaries":[]}'),
      );
      expect(reported.status).toBe(400);
      expect(reported.body.error?.code).toBe('VIGIL_BAD_REQUEST');
      expect(reported.body.error?.message).toBe('request body is not valid UTF-8 (byte offset 13)');

      // Nothing was stored: no write, no summary on the metrics bus.
      expect((await server.store.snapshot('production')).revision).toBe(revision);
      expect(
        await server.store.readMetrics('guardians', 'g1', { count: 10, blockMs: 0, claimIdleMs: 60_000 }),
      ).toEqual([]);
    });
  }

  it('still accepts valid multi-byte text (Thai, CJK, emoji) and stores it as sent', async () => {
    const description = 'ทดสอบ 测试 🚀';
    const response = await fetch(`${http}/api/v1/envs/production/flags/unicode`, {
      method: 'PUT',
      headers: { ...bearer(server.admin), 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(boolFlag('unicode', { description }))),
    });
    expect(response.status).toBe(201);
    const stored = (await server.store.snapshot('production')).flags.find((f) => f.key === 'unicode');
    expect(stored?.description).toBe(description);
  });
});

describe('invalidUtf8Offset', () => {
  it('finds the first byte of the first ill-formed sequence, or -1', () => {
    expect(invalidUtf8Offset(Buffer.from('plain ascii'))).toBe(-1);
    expect(invalidUtf8Offset(Buffer.from('ทดสอบ 测试 🚀 é'))).toBe(-1);
    expect(invalidUtf8Offset(Buffer.from([0x61, 0xc3, 0x28]))).toBe(1);
    expect(invalidUtf8Offset(Buffer.from([0xff]))).toBe(0);
    expect(invalidUtf8Offset(Buffer.from([0x61, 0x62, 0xf0, 0x9f, 0x98]))).toBe(2);
    expect(invalidUtf8Offset(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0);
    expect(invalidUtf8Offset(Buffer.from([0xed, 0x9f, 0xbf]))).toBe(-1); // U+D7FF
    expect(invalidUtf8Offset(Buffer.from([0xe0, 0x9f, 0xbf]))).toBe(0); // overlong
    expect(invalidUtf8Offset(Buffer.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // above U+10FFFF
    expect(invalidUtf8Offset(Buffer.from([0xf4, 0x8f, 0xbf, 0xbf]))).toBe(-1); // U+10FFFF
    expect(invalidUtf8Offset(Buffer.from([0xc2]))).toBe(0);
    expect(invalidUtf8Offset(Buffer.from([0x80]))).toBe(0);
  });
});

describe('stream text frames that are not valid UTF-8', () => {
  it('close the stream with 1007 (ws validates them) and the server keeps serving', async () => {
    for (const bytes of Object.values(BAD_SEQUENCES)) {
      const client = await TestClient.connect(`${http.replace('http:', 'ws:')}/v1/stream`, {
        headers: bearer(sdkKey),
      });
      client.send({ type: 'hello', sdk: 'test' });
      await client.nth('snapshot', 1);
      // ws validates the UTF-8 of the text frames it receives, not of those it sends.
      client.socket.send(body('{"type":"ping","at":"', bytes, '"}'), { binary: false });
      expect((await client.waitClosed()).code).toBe(1007);
      client.close();
    }
    const health = await fetch(`${http}/healthz`);
    expect(health.status).toBe(200);
  });
});
