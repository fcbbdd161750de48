import {
  type StreamState as CoreStreamState,
  type SyncStats as CoreSyncStats,
  type SyncTarget as CoreSyncTarget,
  createSynchronizer,
  type FlagSnapshot,
  parseServerMessage,
  readFlagsResponse,
  type StreamConnection,
  type StreamEvents,
  type Synchronizer,
  snapshotIssue,
} from '@vigil/core';
import { CLOSE_CODES } from '@vigil/proto';
import { describe, VigilSdkError } from './errors.js';

/** Where the stream stands; polling runs beside `connecting`/`waiting` while the stream is unavailable. */
export type StreamState = Exclude<CoreStreamState, 'disabled'>;

/** Counters of the connection's life, exposed by `client.stats()`. */
export type SyncStats = Omit<CoreSyncStats, 'reconnects'>;

/** What the synchronizer feeds: the client's flags and its events. */
export type SyncTarget = CoreSyncTarget<VigilSdkError>;

export interface SyncOptions {
  /** `http(s)://host[:port]` of each flag server (replicas of one deployment), without a trailing slash, in the order tried. */
  urls: readonly string[];
  clientKey: string;
  /** The held flags came from this server (the cache), so the first hello may resume from them. */
  resumable: boolean;
  pollIntervalMs: number;
  reconnect: { baseMs: number; capMs: number; pollAfterFailures: number };
  /** How often the client pings; the server pings too. */
  heartbeatMs: number;
  /** A stream silent for this long is dropped and reopened. */
  deadAfterMs: number;
  requestTimeoutMs: number;
  sdk: string;
}

/**
 * The core's synchronizer wired to the page: a native WebSocket to `/v1/stream` carrying the key in a
 * subprotocol (`vigil.<key>`), `fetch` for `GET /v1/flags?key=`, and the core's zod-free message checks
 * (zod would triple the bundle). A browser's WebSocket shows neither the HTTP status of a refused
 * upgrade nor protocol pings, so polling starts after `pollAfterFailures` failed attempts, and a stream
 * that cannot even be opened (a malformed URL) stops the client.
 */
export function createPageSync(options: SyncOptions, target: SyncTarget): Synchronizer {
  const aborter = new AbortController();
  const key = encodeURIComponent(options.clientKey);
  return createSynchronizer(
    {
      sdk: options.sdk,
      servers: options.urls,
      stream: true,
      resumable: options.resumable,
      pollIntervalMs: options.pollIntervalMs,
      reconnect: options.reconnect,
      heartbeat: {
        // Checked often enough to notice silence within a third of deadAfterMs, at most once a second.
        checkMs: Math.min(options.heartbeatMs, Math.max(1000, options.deadAfterMs / 3)),
        pingMs: options.heartbeatMs,
        deadAfterMs: options.deadAfterMs,
      },
      stableAfterMs: options.heartbeatMs,
      openFailure: 'stop',
    },
    {
      connect: (events, server) =>
        connectNative(events, `${server.replace(/^http/, 'ws')}/v1/stream`, options.clientKey),
      async fetchFlags(etag, server) {
        const headers: Record<string, string> = { accept: 'application/json' };
        if (etag !== undefined) headers['if-none-match'] = etag;
        return readFlagsResponse(
          await fetch(`${server}/v1/flags?key=${key}`, {
            headers,
            cache: 'no-store',
            signal: AbortSignal.any([aborter.signal, AbortSignal.timeout(options.requestTimeoutMs)]),
          }),
        );
      },
      abort: () => aborter.abort(),
      decodeMessage: parseServerMessage,
      decodeSnapshot(body) {
        const issue = snapshotIssue(body);
        if (issue) throw new Error(issue);
        return body as FlagSnapshot;
      },
      // Looked up at each call, so tests can swap in fake timers.
      clock: globalThis,
      // The browser's errors carry no `details` (the server's error message is in the text).
      error: (code, message, errorOptions) => new VigilSdkError(code, message, errorOptions),
      describe,
    },
    target,
  );
}

/** One native WebSocket as the synchronizer drives it. */
function connectNative(events: StreamEvents, base: string, clientKey: string): StreamConnection {
  let socket: WebSocket;
  try {
    // The key in a subprotocol keeps it out of URLs (and so out of proxy logs); the server selects `vigil`.
    socket = new WebSocket(base, ['vigil', `vigil.${clientKey}`]);
  } catch {
    // A key that is not a valid subprotocol token goes in the query instead.
    try {
      socket = new WebSocket(`${base}?key=${encodeURIComponent(clientKey)}`);
    } catch (error) {
      throw new Error(`cannot open ${base}: ${describe(error)}`);
    }
  }
  const closed = (code: number, reason: string) => {
    socket.onopen = socket.onmessage = socket.onclose = null;
    events.closed({ code, reason });
  };
  socket.onopen = () => events.opened();
  socket.onmessage = (event: MessageEvent) => events.message(event.data);
  socket.onclose = (event: CloseEvent) => closed(event.code, event.reason);
  return {
    send(text) {
      try {
        if (socket.readyState === WebSocket.OPEN) socket.send(text);
      } catch {
        // closing: onclose follows
      }
    },
    drop(why) {
      const code = why === 'invalid' ? CLOSE_CODES.protocol : 1000;
      try {
        socket.close(code, why);
      } catch {
        // already closing
      }
      // A dead connection may never fire onclose; do not wait for it.
      closed(why === 'invalid' ? CLOSE_CODES.protocol : 1006, why);
    },
    close() {
      socket.onopen = socket.onmessage = socket.onclose = null;
      try {
        socket.close(1000, 'client closed');
      } catch {
        // already closed
      }
    },
  };
}
