import { createConnection, createServer, type Socket } from 'node:net';

/**
 * A TCP relay to a Redis server that reads the commands its clients send (RESP arrays) and, once a
 * command matches, passes that command on and then holds back everything any client sends after it.
 * A process behind it is thereby stopped at an exact point of its work — the matching write done in
 * Redis, nothing after it — where a SIGKILL then leaves the store as a crash at that point would.
 */
export interface RedisRelay {
  url: string;
  /** Resolves with the matching command's arguments once it has been passed on. */
  tripped: Promise<string[]>;
  close(): Promise<void>;
}

/**
 * Starts a relay on 127.0.0.1 to `127.0.0.1:<port>` that freezes after the first command `matches`
 * accepts; `connection` numbers the client connections, for matchers that follow one (a MULTI).
 */
export async function startRedisRelay(
  port: number,
  matches: (args: string[], connection: number) => boolean,
): Promise<RedisRelay> {
  const sockets = new Set<Socket>();
  let frozen = false;
  let trip: (args: string[]) => void = () => {};
  const tripped = new Promise<string[]>((resolve) => {
    trip = resolve;
  });
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  let connections = 0;
  const server = createServer((client) => {
    const connection = ++connections;
    track(client);
    const upstream = createConnection({ port, host: '127.0.0.1' });
    track(upstream);
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    let pending = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      if (frozen) return;
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const command = readCommand(pending);
        if (!command) break;
        upstream.write(pending.subarray(0, command.end));
        pending = pending.subarray(command.end);
        if (matches(command.args, connection)) {
          frozen = true;
          trip(command.args);
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const relayPort = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${relayPort}`,
    tripped,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The first complete RESP array command in `buffer` (`*<n>\r\n` then n bulk strings), or undefined. */
function readCommand(buffer: Buffer): { args: string[]; end: number } | undefined {
  const line = (from: number) => {
    const at = buffer.indexOf('\r\n', from);
    return at < 0 ? undefined : { text: buffer.toString('latin1', from, at), next: at + 2 };
  };
  const head = line(0);
  if (!head) return undefined;
  if (!head.text.startsWith('*')) throw new Error(`not a RESP array command: ${head.text.slice(0, 40)}`);
  const count = Number(head.text.slice(1));
  const args: string[] = [];
  let at = head.next;
  for (let i = 0; i < count; i++) {
    const size = line(at);
    if (!size) return undefined;
    const length = Number(size.text.slice(1));
    if (buffer.length < size.next + length + 2) return undefined;
    args.push(buffer.toString('utf8', size.next, size.next + length));
    at = size.next + length + 2;
  }
  return { args, end: at };
}
