import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClient } from '../src/index.js';

// The stream protocol in Node without a DOM, with a stand-in WebSocket playing the flag server: what a
// real server never sends (invalid messages) and timing (silence) are easier to drive by hand.

class StubSocket {
  static readonly OPEN = 1;
  static readonly made: StubSocket[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  readonly sent: Record<string, unknown>[] = [];
  closedWith?: number;
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    StubSocket.made.push(this);
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(data: string | object): void {
    this.onmessage?.({ data: typeof data === 'string' ? data : JSON.stringify(data) });
  }
}

const flag = {
  key: 'f',
  version: 1,
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
  offVariant: 'off',
  enabled: true,
  killed: false,
  clientSide: true,
  rules: [],
  fallthrough: { variant: 'on' },
  prerequisites: [],
};

const original = (globalThis as { WebSocket?: unknown }).WebSocket;
beforeAll(() => {
  (globalThis as { WebSocket?: unknown }).WebSocket = StubSocket;
});
afterAll(() => {
  (globalThis as { WebSocket?: unknown }).WebSocket = original;
});

describe('the stream protocol', () => {
  it('offers the key as a subprotocol, resumes by revision, and resyncs without it after an invalid message', async () => {
    vi.useFakeTimers();
    try {
      const client = createClient({
        url: 'http://flags.test',
        clientKey: 'vgl_key',
        context: { key: 'u' },
        storage: false,
        reconnect: { baseMs: 10, capMs: 10 },
      });
      const errors: string[] = [];
      client.on('error', (e) => errors.push(e.code));
      const first = StubSocket.made.at(-1)!;
      expect(first.url).toBe('ws://flags.test/v1/stream');
      expect(first.protocols).toEqual(['vigil', 'vigil.vgl_key']);
      first.open();
      expect(first.sent[0]).toMatchObject({ type: 'hello' });
      expect(first.sent[0]).not.toHaveProperty('revision');
      first.receive({ type: 'snapshot', revision: 7, flags: [flag], segments: [] });
      expect(client.isEnabled('f')).toBe(true);
      first.receive({ type: 'ping', at: 42 });
      expect(first.sent.at(-1)).toEqual({ type: 'pong', at: 42 });

      // A lost stream resumes from the revision held.
      first.onclose?.({ code: 1006, reason: '' });
      await vi.advanceTimersByTimeAsync(20);
      const second = StubSocket.made.at(-1)!;
      expect(second).not.toBe(first);
      second.open();
      expect(second.sent[0]).toMatchObject({ type: 'hello', revision: 7 });

      // Garbage: reported, dropped, and the next hello asks for a full snapshot.
      second.receive('{"type":"snapshot","revision":"x"}');
      expect(errors).toEqual(['VIGIL_SDK_PROTOCOL']);
      expect(second.closedWith).toBe(4400);
      expect(client.isEnabled('f')).toBe(true);
      await vi.advanceTimersByTimeAsync(20);
      const third = StubSocket.made.at(-1)!;
      third.open();
      expect(third.sent[0]).not.toHaveProperty('revision');
      client.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('drops a silent stream and reconnects', async () => {
    vi.useFakeTimers();
    try {
      const client = createClient({
        url: 'http://flags.test',
        clientKey: 'vgl_key',
        context: { key: 'u' },
        storage: false,
        heartbeatMs: 1000,
        deadAfterMs: 3000,
        reconnect: { baseMs: 10, capMs: 10 },
      });
      const socket = StubSocket.made.at(-1)!;
      socket.open();
      socket.receive({ type: 'snapshot', revision: 1, flags: [flag], segments: [] });
      await vi.advanceTimersByTimeAsync(1500);
      // The client pings on its own heartbeat.
      expect(socket.sent.some((m) => m.type === 'ping')).toBe(true);
      await vi.advanceTimersByTimeAsync(3000);
      expect(client.stats().sync.deadStreams).toBe(1);
      expect(StubSocket.made.at(-1)).not.toBe(socket);
      client.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
