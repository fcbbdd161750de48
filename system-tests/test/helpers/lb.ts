import { createConnection, createServer, type Socket } from 'node:net';

/** One connection the balancer accepted. */
export interface Accepted {
  /** Epoch ms of the accept. */
  at: number;
  /** Index of the backend it was relayed to; undefined while connecting, or when every backend refused. */
  backend: number | undefined;
  /** Backends that refused it before one took it. */
  refusedBy: number[];
}

/**
 * A TCP load balancer on 127.0.0.1 in front of flag-server replicas, like the one docker-compose's
 * replicas sit behind: least-connections over the backends that are up; a backend that refuses a
 * connection is marked down, the connection is handed to the next one (the client never notices),
 * and a TCP probe marks it up again once it listens.
 */
export interface LoadBalancer {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Every accepted connection, in accept order. */
  readonly accepted: readonly Accepted[];
  /** Connections currently relayed to `backend`. */
  active(backend: number): number;
  isUp(backend: number): boolean;
  close(): Promise<void>;
}

export interface LoadBalancerOptions {
  /** How often a backend that is down is probed. */
  probeMs?: number;
}

/** Starts a balancer over the backends' ports on 127.0.0.1. */
export async function startLoadBalancer(
  backends: number[],
  options: LoadBalancerOptions = {},
): Promise<LoadBalancer> {
  const probeMs = options.probeMs ?? 200;
  const active = backends.map(() => 0);
  const up = backends.map(() => true);
  const accepted: Accepted[] = [];
  const sockets = new Set<Socket>();
  let turn = 0;
  let closed = false;

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  /** The up backend with the fewest connections (ties taken in turn), skipping `refused`. */
  const pick = (refused: number[]): number | undefined => {
    let best: number | undefined;
    for (let i = 0; i < backends.length; i++) {
      const index = (turn + i) % backends.length;
      if (!up[index] || refused.includes(index)) continue;
      if (best === undefined || active[index]! < active[best]!) best = index;
    }
    turn = (turn + 1) % backends.length;
    return best;
  };
  const probe = (index: number) => {
    if (closed) return;
    const socket = createConnection({ port: backends[index]!, host: '127.0.0.1' });
    socket.once('connect', () => {
      up[index] = true;
      socket.destroy();
    });
    socket.once('error', () => {
      socket.destroy();
      setTimeout(() => probe(index), probeMs).unref();
    });
  };
  const markDown = (index: number) => {
    if (!up[index]) return;
    up[index] = false;
    setTimeout(() => probe(index), probeMs).unref();
  };
  const relay = (client: Socket, record: Accepted) => {
    const index = pick(record.refusedBy);
    if (index === undefined || client.destroyed) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ port: backends[index]!, host: '127.0.0.1' });
    track(upstream);
    active[index]! += 1;
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      record.backend = index;
      // The client was paused on accept, so nothing it sent is lost while a backend was chosen.
      client.pipe(upstream);
      upstream.pipe(client);
    });
    upstream.once('close', () => {
      active[index]! -= 1;
      if (connected) client.destroy();
      else if (!client.destroyed) {
        record.refusedBy.push(index);
        markDown(index);
        relay(client, record);
      }
    });
    client.once('close', () => upstream.destroy());
  };

  const server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    const record: Accepted = { at: Date.now(), backend: undefined, refusedBy: [] };
    accepted.push(record);
    relay(client, record);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    accepted,
    active: (backend) => active[backend]!,
    isUp: (backend) => up[backend]!,
    async close() {
      closed = true;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
