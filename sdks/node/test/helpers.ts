import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Logger } from '../src/index.js';
import { forwardTo } from './flag-server.js';

export { boolFlag, TestServer } from './flag-server.js';

/** A logger that keeps what it is told, for assertions, and prints nothing. */
export function memoryLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (_obj: object, msg?: string) => {
    lines.push({ level, msg: msg ?? '' });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Waits until `predicate` holds, polling every 10 ms; fails with `what` after `timeoutMs`. */
export async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves with the arguments of the next emission of a client event. */
export function next<A extends unknown[]>(on: (listener: (...args: A) => void) => () => void): Promise<A> {
  return new Promise((resolve) => {
    const off = on((...args) => {
      off();
      resolve(args);
    });
  });
}

/** A free TCP port on 127.0.0.1 (nothing listens on it when this resolves). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * An HTTP proxy in front of a flag server that answers WebSocket upgrades with an HTTP status (as a
 * proxy without WebSocket support does) until `allowUpgrades` is set, and forwards everything else.
 */
export class UpgradeBlockingProxy {
  allowUpgrades = false;
  upgradeStatus = 502;
  upgradesRefused = 0;
  flagRequests = 0;
  private readonly spliced = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    private readonly target: { port: number },
  ) {}

  static async start(target: { port: number }): Promise<UpgradeBlockingProxy> {
    const server = createServer();
    const proxy = new UpgradeBlockingProxy(server, target);
    const forward = forwardTo(() => `http://127.0.0.1:${proxy.target.port}`);
    server.on('request', (req, res) => {
      if (req.url?.startsWith('/v1/flags')) proxy.flagRequests += 1;
      forward(req, res);
    });
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      if (!proxy.allowUpgrades) {
        proxy.upgradesRefused += 1;
        socket.end(
          `HTTP/1.1 ${proxy.upgradeStatus} Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        );
        return;
      }
      // Replay the upgrade request to the server and splice the two sockets together.
      const upstream = connect(proxy.target.port, '127.0.0.1', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length > 0) upstream.write(head);
        socket.pipe(upstream).pipe(socket);
      });
      const client = socket as Socket;
      proxy.spliced.add(upstream).add(client);
      upstream.on('close', () => {
        proxy.spliced.delete(upstream);
        client.destroy();
      });
      client.on('close', () => {
        proxy.spliced.delete(client);
        upstream.destroy();
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  /** Cuts every spliced WebSocket connection (as a proxy restart would). */
  cutStreams(): void {
    for (const socket of this.spliced) socket.destroy();
  }

  async close(): Promise<void> {
    this.cutStreams();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
