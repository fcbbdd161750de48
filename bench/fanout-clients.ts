/**
 * A child process of the fan-out benchmark (bench/fanout.ts): opens `count` WebSocket SDK streams,
 * applies every patch the way an SDK does (parse, check the revision is newer, take it), and reports
 * to the parent over IPC, per revision, when each stream received it. In `tcp` mode it opens plain
 * TCP connections to bench/fanout-tcp.ts instead, for the floor the machine itself sets.
 *
 * Times are `process.hrtime` readings: CLOCK_MONOTONIC, one clock for every process on the machine,
 * so the parent can subtract the moment it sent the REST request from them directly.
 */
import { createConnection, type Socket } from 'node:net';
import { WebSocket } from 'ws';

/** Parent → child. */
export type ToClients =
  | { type: 'start'; mode: 'ws' | 'tcp'; url: string; key: string; count: number; concurrency: number }
  | { type: 'stop' };

/** Child → parent. */
export type FromClients =
  | { type: 'ready'; count: number; ms: number }
  | { type: 'round'; revision: number; times: number[] }
  | { type: 'failed'; message: string };

/** Monotonic milliseconds, comparable across processes of one machine. */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

interface Stream {
  socket: WebSocket | Socket;
  revision: number;
}

interface Round {
  times: Float64Array;
  received: number;
}

const send = (message: FromClients) => process.send!(message);
const streams: Stream[] = [];
const rounds = new Map<number, Round>();
let stopping = false;

function fail(message: string): void {
  if (stopping) return;
  stopping = true;
  send({ type: 'failed', message });
}

/** Opens one stream and resolves once its snapshot is applied. */
function open(url: string, key: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, {
      headers: { authorization: `Bearer ${key}` },
      perMessageDeflate: false,
    });
    const stream: Stream = { socket, revision: -1 };
    streams[index] = stream;
    socket.once('open', () => socket.send(JSON.stringify({ type: 'hello', sdk: 'bench/fanout' })));
    socket.on('message', (data: Buffer) => {
      const at = monotonicMs();
      const message = JSON.parse(data.toString()) as { type: string; revision?: number };
      if (message.type === 'snapshot') {
        stream.revision = message.revision!;
        resolve();
        return;
      }
      if (message.type !== 'patch' || message.revision! <= stream.revision) return;
      stream.revision = message.revision!;
      applied(message.revision!, index, at);
    });
    socket.once('error', reject);
    socket.once('close', (code) => {
      reject(new Error(`closed ${code} before its snapshot`));
      fail(`stream ${index} closed with ${code}`);
    });
  });
}

/** Opens one plain TCP connection; each write it gets starts with a round number and a space. */
function openTcp(url: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const socket = createConnection({ host: hostname, port: Number(port) }, () => resolve());
    socket.setNoDelay(true);
    streams[index] = { socket, revision: -1 };
    socket.on('data', (data) => {
      const at = monotonicMs();
      applied(Number.parseInt(data.toString('latin1', 0, 12), 10), index, at);
    });
    socket.once('error', reject);
    socket.once('close', () => fail(`connection ${index} closed`));
  });
}

function applied(revision: number, index: number, at: number): void {
  let round = rounds.get(revision);
  if (!round) {
    round = { times: new Float64Array(streams.length), received: 0 };
    rounds.set(revision, round);
  }
  round.times[index] = at;
  if (++round.received === streams.length) {
    rounds.delete(revision);
    send({ type: 'round', revision, times: Array.from(round.times) });
  }
}

async function start(
  mode: 'ws' | 'tcp',
  url: string,
  key: string,
  count: number,
  concurrency: number,
): Promise<void> {
  const started = monotonicMs();
  streams.length = count;
  let next = 0;
  // A bounded number of handshakes in flight: a burst of thousands overflows the listen backlog.
  const worker = async () => {
    while (next < count) await (mode === 'ws' ? open(url, key, next++) : openTcp(url, next++));
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  send({ type: 'ready', count, ms: monotonicMs() - started });
}

process.on('message', (message: ToClients) => {
  if (message.type === 'start') {
    start(message.mode, message.url, message.key, message.count, message.concurrency).catch(
      (error: unknown) => fail(error instanceof Error ? error.message : String(error)),
    );
  } else {
    stopping = true;
    for (const stream of streams) {
      if (stream?.socket instanceof WebSocket) stream.socket.terminate();
      else stream?.socket.destroy();
    }
    process.disconnect();
  }
});
process.on('disconnect', () => process.exit(0));
