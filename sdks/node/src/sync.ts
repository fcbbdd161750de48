import {
  type Clock,
  type SyncTarget as CoreSyncTarget,
  createSynchronizer,
  type StreamConnection,
  type StreamEvents,
  type Synchronizer,
} from '@vigil/core';
import { serverMessageSchema } from '@vigil/proto';
import { type RawData, WebSocket } from 'ws';
import type { z } from 'zod';
import { snapshotBodySchema } from './bootstrap.js';
import { describe, VigilSdkError } from './errors.js';
import type { Logger } from './options.js';
import { SDK_NAME } from './version.js';

export type { StreamState, SyncStats } from '@vigil/core';

/** What the synchronizer feeds: the client's flag set and its events. */
export type SyncTarget = CoreSyncTarget<VigilSdkError>;

export interface SyncOptions {
  /** The servers' base HTTP URLs (replicas of one deployment), in the order they are tried. */
  httpUrls: readonly string[];
  sdkKey: string;
  stream: boolean;
  pollIntervalMs: number;
  reconnect: { baseMs: number; capMs: number; pollAfterFailures: number };
  heartbeatMs: number;
  requestTimeoutMs: number;
  logger: Logger;
}

/** Dropped after this many heartbeat periods without hearing from the server. */
const DEAD_AFTER_HEARTBEATS = 3;

/** Node's timers, unref'd: a client must never keep a process alive. */
const nodeClock: Clock = {
  setTimeout: (run, ms) => setTimeout(run, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
  setInterval: (run, ms) => setInterval(run, ms).unref(),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout | undefined),
};

/**
 * The core's synchronizer wired to Node: a `ws` WebSocket to `/v1/stream` (of the server in use; the
 * core moves to the next of `httpUrls` when one fails) with the key in the
 * `Authorization` header (a refused upgrade's HTTP status is seen, and starts polling at once), `fetch`
 * for `GET /v1/flags`, messages checked against `@vigil/proto`'s zod schemas, and the client's logger.
 */
export function createNodeSync(options: SyncOptions, target: SyncTarget): Synchronizer {
  const authorization = { authorization: `Bearer ${options.sdkKey}`, 'user-agent': SDK_NAME };
  const aborter = new AbortController();
  const { logger } = options;
  return createSynchronizer(
    {
      sdk: SDK_NAME,
      servers: options.httpUrls,
      stream: options.stream,
      resumable: false,
      pollIntervalMs: options.pollIntervalMs,
      reconnect: options.reconnect,
      // A ping every heartbeat; a stream silent for three heartbeats (~30 s by default) is dead.
      heartbeat: {
        checkMs: options.heartbeatMs,
        pingMs: 0,
        deadAfterMs: DEAD_AFTER_HEARTBEATS * options.heartbeatMs,
      },
      stableAfterMs: options.heartbeatMs,
      openFailure: 'poll',
    },
    {
      connect: (events, server) =>
        connectWs(events, streamUrl(server), {
          headers: authorization,
          handshakeTimeout: options.requestTimeoutMs,
        }),
      async fetchFlags(etag, server) {
        const headers: Record<string, string> = { ...authorization, accept: 'application/json' };
        if (etag !== undefined) headers['if-none-match'] = etag;
        const response = await fetch(`${server}/v1/flags`, {
          headers,
          signal: AbortSignal.any([aborter.signal, AbortSignal.timeout(options.requestTimeoutMs)]),
        });
        const status = response.status;
        return {
          status,
          body: status === 200 ? await response.json() : await response.text().catch(() => ''),
        };
      },
      abort: () => aborter.abort(),
      decodeMessage: (text) => parsed(serverMessageSchema.safeParse(JSON.parse(text))),
      decodeSnapshot: (body) => parsed(snapshotBodySchema.safeParse(body)),
      clock: nodeClock,
      error: (code, message, errorOptions) => new VigilSdkError(code, message, errorOptions),
      describe,
      note(note) {
        if (note.type === 'lost')
          logger.warn(
            { code: note.code, reason: note.reason },
            `vigil: stream lost (${note.why}); reconnecting`,
          );
        else if (note.type === 'failed')
          logger.debug?.(
            { code: note.code, failures: note.failures },
            `vigil: stream attempt failed: ${note.why}`,
          );
        else if (note.type === 'failover')
          logger.info?.({ from: note.from, to: note.to }, `vigil: moving to ${note.to}`);
        else logger.info?.({ intervalMs: options.pollIntervalMs }, 'vigil: polling GET /v1/flags');
      },
    },
    {
      ...target,
      refused(error) {
        logger.error({ code: error.code, status: error.status }, `vigil: stopped: ${error.message}`);
        target.refused(error);
      },
    },
  );
}

/** A base HTTP URL's stream endpoint. */
function streamUrl(httpUrl: string): string {
  return `${httpUrl.replace(/^http(s?):/i, 'ws$1:')}/v1/stream`;
}

/** One `ws` connection as the synchronizer drives it. */
function connectWs(events: StreamEvents, url: string, wsOptions: WebSocket.ClientOptions): StreamConnection {
  const socket = new WebSocket(url, wsOptions);
  let status: number | undefined;
  let failure: Error | undefined;
  socket.on('unexpected-response', (_request, response) => {
    // An HTTP answer instead of an upgrade (a proxy without WebSocket support, a 401 from a gateway).
    status = response.statusCode;
    response.resume();
    socket.terminate();
  });
  socket.on('open', () => events.opened());
  socket.on('message', (data, isBinary) => events.message(isBinary ? data : rawText(data)));
  socket.on('ping', () => events.heard());
  socket.on('pong', () => events.heard());
  socket.on('error', (error) => {
    failure = error;
  });
  socket.on('close', (code, reason) => events.closed({ code, reason: reason.toString(), status, failure }));
  return {
    send(text) {
      if (socket.readyState === WebSocket.OPEN) socket.send(text);
    },
    // `close` follows a terminate.
    drop: () => socket.terminate(),
    close() {
      if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'client closed');
      else socket.terminate();
      // A server that never answers the close handshake does not hold the socket open.
      setTimeout(() => socket.terminate(), 1000).unref();
    },
  };
}

/** The data of a zod parse, or an Error naming its first issues. */
function parsed<T>(result: z.ZodSafeParseResult<T>): T {
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`);
  throw new Error(issues.join('; '));
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}
