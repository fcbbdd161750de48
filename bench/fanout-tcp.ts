/**
 * The fan-out benchmark's floor (bench/fanout.ts --baseline): a plain TCP server in its own process
 * that writes one patch-sized buffer to every connection on each IPC `write`, as the flag server does
 * with a patch but without WebSocket framing, JSON or anything else. Whatever latency this shows, the
 * machine itself costs.
 */
import { createServer, type Socket } from 'node:net';

/** Parent → server. */
export type ToTcpServer = { type: 'write'; round: number; bytes: number } | { type: 'stop' };
/** Server → parent. */
export type FromTcpServer =
  | { type: 'listening'; url: string }
  | { type: 'written'; round: number; ms: number };

const sockets = new Set<Socket>();
const server = createServer((socket) => {
  socket.setNoDelay(true);
  sockets.add(socket);
  socket.on('error', () => {});
  socket.once('close', () => sockets.delete(socket));
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.send!({ type: 'listening', url: `tcp://127.0.0.1:${port}` } satisfies FromTcpServer);
});

process.on('message', (message: ToTcpServer) => {
  if (message.type === 'write') {
    const started = performance.now();
    // The round number first, padded with spaces to the size of a patch.
    const data = Buffer.from(`${message.round} `.padEnd(message.bytes, ' '));
    for (const socket of sockets) socket.write(data);
    process.send!({
      type: 'written',
      round: message.round,
      ms: performance.now() - started,
    } satisfies FromTcpServer);
  } else {
    for (const socket of sockets) socket.destroy();
    server.close();
    process.disconnect();
  }
});
process.on('disconnect', () => process.exit(0));
