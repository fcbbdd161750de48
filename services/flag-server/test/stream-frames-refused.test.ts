import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { LogBudget } from '../src/log-budget.js';
import { bearer, startServer, TestClient, type TestServer } from './helpers/server.js';

/** The stream's largest client message (the server's `maxPayload`). */
const MAX_MESSAGE = 64 * 1024;
const TOO_BIG = 1009;
const INVALID_UTF8 = 1007;

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A server whose pino output is captured, line by line, parsed. */
async function capturingServer() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  const s = await startServer({ logTo: sink });
  server = s;
  const base = await s.listen();
  const key = await s.token(['sdk-server'], 'production');
  return { s, base, key, lines };
}

async function scrape(s: TestServer): Promise<string> {
  return (await s.app.inject({ url: '/metrics' })).body;
}

function counted(metrics: string, reason: string): number {
  const match = new RegExp(`^vigil_stream_frames_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(
    metrics,
  );
  return match ? Number(match[1]) : 0;
}

describe('refused stream frames', () => {
  it('many oversized frames from many connections: a bounded number of warn lines, no error line, all counted', async () => {
    const { s, base, key, lines } = await capturingServer();
    const connections = 40;
    const clients = await Promise.all(
      Array.from({ length: connections }, () =>
        TestClient.connect(`${base}/v1/stream`, { headers: bearer(key) }),
      ),
    );
    // Each connection sends several oversized frames; ws refuses the first and closes the stream.
    for (const client of clients) {
      for (let i = 0; i < 3; i++) client.socket.send(`"${'x'.repeat(MAX_MESSAGE + 1)}"`);
    }
    const closes = await Promise.all(clients.map((c) => c.waitClosed(10_000)));
    expect(closes.map((c) => c.code)).toEqual(Array(connections).fill(TOO_BIG));
    for (const client of clients) client.close();

    const refused = lines.filter((l) => l.msg === 'stream frame refused; stream closed');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeLessThanOrEqual(10);
    for (const line of refused) {
      expect(line).toMatchObject({
        level: 40,
        reason: 'too_large',
        code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
      });
      expect(line).not.toHaveProperty('err');
    }
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(counted(await scrape(s), 'too_large')).toBe(connections);
  });

  it('counts invalid UTF-8 and invalid messages by reason, and logs neither at error level', async () => {
    const { s, base, key, lines } = await capturingServer();
    const bad = await TestClient.connect(`${base}/v1/stream`, { headers: bearer(key) });
    bad.socket.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false });
    expect((await bad.waitClosed()).code).toBe(INVALID_UTF8);
    bad.close();

    const garbled = await TestClient.connect(`${base}/v1/stream`, { headers: bearer(key) });
    garbled.send({ type: 'hello', sdk: 'test' });
    await garbled.nth('snapshot', 1);
    garbled.send('not json');
    await garbled.waitClosed();
    garbled.close();

    const metrics = await scrape(s);
    expect(counted(metrics, 'invalid_utf8')).toBe(1);
    expect(counted(metrics, 'invalid_message')).toBe(1);
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(lines.filter((l) => l.msg === 'stream frame refused; stream closed')).toEqual([
      expect.objectContaining({ level: 40, reason: 'invalid_utf8', code: 'WS_ERR_INVALID_UTF8' }),
    ]);
  });
});

describe('LogBudget', () => {
  it('allows a number of lines per window, then drops and counts them, reporting the count on the next line', () => {
    let now = 0;
    const budget = new LogBudget(3, 60_000, () => now);
    expect([budget.take(), budget.take(), budget.take()]).toEqual([
      { suppressed: 0 },
      { suppressed: 0 },
      { suppressed: 0 },
    ]);
    for (let i = 0; i < 100; i++) expect(budget.take()).toBeUndefined();
    now += 59_999;
    expect(budget.take()).toBeUndefined();
    now += 1;
    expect(budget.take()).toEqual({ suppressed: 101 });
    expect(budget.take()).toEqual({ suppressed: 0 });
  });
});
