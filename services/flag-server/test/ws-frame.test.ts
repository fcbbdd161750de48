import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { textFrame } from '../src/ws-frame.js';

describe('textFrame', () => {
  let server: WebSocketServer;
  let url: string;

  beforeAll(async () => {
    // As the stream hub does: the frames go to the upgrade request's TCP socket, not through ws.
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server.on('connection', (_socket, request) => {
      for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 200_000]) {
        request.socket.write(
          textFrame(Buffer.from(`${length}:`.padEnd(Math.max(length, 0), 'x').slice(0, length))),
        );
      }
      request.socket.write(textFrame(Buffer.from('ไทย 中文 🚀', 'utf8')));
    });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('is read by a WebSocket client as the text it holds, at every length encoding and in UTF-8', async () => {
    const client = new WebSocket(url);
    const received: string[] = [];
    await new Promise<void>((resolve, reject) => {
      client.on('message', (data, isBinary) => {
        expect(isBinary).toBe(false);
        received.push(data.toString());
        if (received.length === 9) resolve();
      });
      client.on('error', reject);
    });
    client.close();
    expect(received.slice(0, 8).map((m) => m.length)).toEqual([0, 1, 125, 126, 127, 65_535, 65_536, 200_000]);
    expect(received[7]!.startsWith('200000:xx')).toBe(true);
    expect(received[8]).toBe('ไทย 中文 🚀');
  });
});
