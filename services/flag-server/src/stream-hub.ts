import type { Socket } from 'node:net';
import { CLOSE_CODES } from '@vigil/proto';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { Tokens } from './auth.js';
import type { View } from './env-state.js';
import type { EnvEvent, Environments } from './environments.js';
import type { ServerMetrics } from './metrics.js';
import { textFrame } from './ws-frame.js';

const OPEN = 1;
/**
 * Each heartbeat period is split into this many ticks, each visiting one slice of the streams, so a
 * tick costs a fraction of the period's writes: pinging 10,000 streams at once blocks the event loop
 * (and any kill fanned out meanwhile) for the time of 20,000 socket writes.
 */
const HEARTBEAT_SLICES = 16;

/** One SDK stream. */
export interface Connection {
  socket: WebSocket;
  /**
   * The TCP socket under `socket` (the upgrade request's), when it is one: broadcasts write their
   * pre-framed patch to it directly. ws writes its own frames to the same socket, in call order (the
   * server never compresses, so ws queues nothing), so the two never interleave within a frame.
   */
  tcp?: Socket;
  env: string;
  view: View;
  tokenId: string;
  /** Kept to re-check the key while the stream is open (a deleted key closes its streams). */
  secret: string;
  openedAt: number;
  /** Last time anything (message or pong frame) arrived. */
  lastSeen: number;
  /** Answered its hello; receives every patch from now on. */
  live: boolean;
  closed: boolean;
}

export interface HubOptions {
  heartbeatMs: number;
  /** Unsent bytes above which a stream is closed with 4408 rather than buffered further. */
  maxBuffered: number;
  log: FastifyBaseLogger;
  metrics: ServerMetrics;
}

/**
 * The open SDK streams, per environment and view. Each change's patch is serialized once per view
 * (by `AppliedChange`) and the same bytes are written to every stream, so fan-out costs a loop of
 * `socket.send`. A stream that cannot keep up is closed instead of buffered without bound; one
 * silent for two heartbeat periods is dropped.
 */
export class StreamHub {
  private readonly byEnv = new Map<string, Record<View, Set<Connection>>>();
  private readonly all = new Set<Connection>();
  /** `all`, dealt round-robin into slices; the heartbeat visits one slice per tick. */
  private readonly slices = Array.from({ length: HEARTBEAT_SLICES }, () => new Set<Connection>());
  private dealt = 0;
  private tick = 0;
  private timer?: NodeJS.Timeout;
  private stopListening?: () => void;
  private stopRevoke?: () => void;

  constructor(
    private readonly envs: Environments,
    private readonly tokens: Tokens,
    private readonly options: HubOptions,
  ) {}

  start(): void {
    this.stopListening = this.envs.on((event) => this.broadcast(event));
    this.stopRevoke = this.tokens.onRevoke((id) =>
      this.closeWhere((c) => c.tokenId === id, CLOSE_CODES.badKey, 'key deleted'),
    );
    this.timer = setInterval(() => this.heartbeat(), this.options.heartbeatMs / HEARTBEAT_SLICES);
    this.timer.unref();
  }

  /** Number of open streams. */
  get size(): number {
    return this.all.size;
  }

  /** Tracks an authenticated stream (heartbeats start; no patches until {@link goLive}). */
  add(conn: Connection): void {
    this.all.add(conn);
    this.slices[this.dealt++ % HEARTBEAT_SLICES]!.add(conn);
    this.options.metrics.sdkConnections.inc({ env: conn.env, kind: conn.view });
  }

  /** Starts sending every patch to a stream; call in the same tick as sending its first message. */
  goLive(conn: Connection): void {
    if (conn.closed || conn.live) return;
    conn.live = true;
    let sets = this.byEnv.get(conn.env);
    if (!sets) {
      sets = { server: new Set(), client: new Set() };
      this.byEnv.set(conn.env, sets);
    }
    sets[conn.view].add(conn);
  }

  /** Forgets a stream (on close). */
  remove(conn: Connection): void {
    if (!this.all.delete(conn)) return;
    for (const slice of this.slices) if (slice.delete(conn)) break;
    conn.closed = true;
    this.byEnv.get(conn.env)?.[conn.view].delete(conn);
    this.options.metrics.sdkConnections.dec({ env: conn.env, kind: conn.view });
  }

  /**
   * Sends bytes to one stream unless it is too far behind, in which case it is closed (4408). With
   * `frame` (`data` as a text frame, shared by a broadcast) the bytes go straight to its TCP socket.
   */
  send(conn: Connection, data: Buffer, frame?: Buffer): boolean {
    const { socket } = conn;
    if (conn.closed || socket.readyState !== OPEN) return false;
    if (socket.bufferedAmount + data.length > this.options.maxBuffered) {
      this.options.metrics.slowClients.inc();
      this.options.log.warn(
        { env: conn.env, buffered: socket.bufferedAmount },
        'closing a stream that cannot keep up',
      );
      this.close(conn, CLOSE_CODES.tooSlow, 'too slow; reconnect and resync');
      return false;
    }
    if (frame && conn.tcp) conn.tcp.write(frame);
    else socket.send(data, { binary: false });
    return true;
  }

  /** Closes one stream with a code; a peer that does not complete the close is cut after 5 s. */
  close(conn: Connection, code: number, reason: string): void {
    this.remove(conn);
    conn.socket.close(code, reason);
    setTimeout(() => conn.socket.terminate(), 5000).unref();
  }

  /** Closes every stream (shutdown: 4503); resolves when all are closed or after `graceMs`. */
  async closeAll(code: number, reason: string, graceMs = 1000): Promise<void> {
    const sockets = [...this.all].map((c) => c.socket);
    this.closeWhere(() => true, code, reason);
    const closed = sockets.map(
      (s) =>
        new Promise<void>((resolve) => (s.readyState === 3 ? resolve() : s.once('close', () => resolve()))),
    );
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(closed), timeout]);
    for (const socket of sockets) socket.terminate();
  }

  stop(): void {
    clearInterval(this.timer);
    this.stopListening?.();
    this.stopRevoke?.();
  }

  private closeWhere(match: (conn: Connection) => boolean, code: number, reason: string): void {
    for (const conn of this.all) if (match(conn)) this.close(conn, code, reason);
  }

  private broadcast(event: EnvEvent): void {
    const sets = this.byEnv.get(event.state.env);
    if (!sets) return;
    for (const view of ['server', 'client'] as const) {
      const conns = sets[view];
      if (conns.size === 0) continue;
      const data = event.kind === 'patch' ? event.applied.message(view) : event.state.snapshot(view).message;
      // Framed once for all: ws would allocate a header and make two corked writes per stream.
      const frame = textFrame(data);
      for (const conn of conns) this.send(conn, data, frame);
    }
  }

  /** One tick: pings one slice of the streams, so each stream is visited once per heartbeat period. */
  private heartbeat(): void {
    const slice = this.slices[this.tick++ % HEARTBEAT_SLICES]!;
    if (slice.size === 0) return;
    const now = Date.now();
    const deadline = 2 * this.options.heartbeatMs;
    const ping = Buffer.from(`{"type":"ping","at":${now}}`);
    const secrets = new Set<string>();
    for (const conn of slice) {
      if (now - conn.lastSeen > deadline) {
        this.options.log.info({ env: conn.env }, 'dropping a silent stream');
        this.remove(conn);
        conn.socket.terminate();
        continue;
      }
      if (!conn.live && now - conn.openedAt > deadline) {
        this.close(conn, CLOSE_CODES.protocol, 'expected a hello message');
        continue;
      }
      if (conn.socket.readyState !== OPEN) continue;
      conn.socket.ping();
      this.send(conn, ping);
      secrets.add(conn.secret);
    }
    for (const secret of secrets) void this.recheck(secret);
  }

  /** Closes the streams of a key that no longer exists (deleted through another replica). */
  private async recheck(secret: string): Promise<void> {
    try {
      if (await this.tokens.authenticate(secret)) return;
    } catch {
      return; // store unreachable: keep serving
    }
    this.closeWhere((c) => c.secret === secret, CLOSE_CODES.badKey, 'key deleted');
  }
}
