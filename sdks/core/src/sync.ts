import { CLOSE_CODES, type ServerMessage } from '@vigil/proto';
import { fullJitter } from './backoff.js';
import type { FlagPatch, FlagSnapshot } from './flag-set.js';

/**
 * Where the stream stands. `polling` is separate (see {@link Synchronizer.polling}): it runs beside
 * `connecting`/`waiting` while the stream is unavailable, and alone when the stream is `disabled`.
 */
export type StreamState = 'idle' | 'connecting' | 'streaming' | 'waiting' | 'disabled' | 'refused' | 'closed';

/** The error codes the synchronizer reports; each SDK's error module defines them. */
export type SyncErrorCode =
  | 'VIGIL_SDK_UNAUTHORIZED'
  | 'VIGIL_SDK_FORBIDDEN'
  | 'VIGIL_SDK_PROTOCOL'
  | 'VIGIL_SDK_STREAM'
  | 'VIGIL_SDK_POLL';

/** What the synchronizer needs of an SDK's error. */
export interface SyncError {
  readonly code: string;
  readonly status: number | undefined;
  readonly message: string;
}

/** What the synchronizer feeds: the client's flag set and its events. */
export interface SyncTarget<E> {
  /** The revision of the flags held. */
  revision(): number;
  /** A whole environment from the server; replaces what is held. */
  load(snapshot: FlagSnapshot, source: 'stream' | 'poll'): void;
  apply(patch: FlagPatch): void;
  /** The flags held are the server's current ones (stream live, or a poll succeeded). */
  inSync(source: 'stream' | 'poll'): void;
  /** The connection that kept flags current was lost. */
  lost?(): void;
  /** The key was refused: nothing more will be tried. */
  refused(error: E): void;
  error(error: E): void;
}

/** Counters of the connection's life, exposed by `client.stats()`. */
export interface SyncStats {
  /** Stream connections attempted. */
  connects: number;
  /** Connections attempted after a previous one closed or failed. */
  reconnects: number;
  /** Stream attempts that closed before delivering any flags. */
  streamFailures: number;
  /** Streams dropped for silence (no message, ping or pong for `deadAfterMs`). */
  deadStreams: number;
  /** Invalid messages from the server (each forces a resync). */
  protocolErrors: number;
  snapshots: number;
  patches: number;
  /** `GET /v1/flags` requests made, and how many failed or were not modified. */
  polls: number;
  pollFailures: number;
  pollsNotModified: number;
  /** Moves to another of `SyncOptions.servers` after an attempt there failed. */
  failovers: number;
}

export interface SyncOptions {
  /** The SDK's name, sent in `hello`. */
  sdk: string;
  /**
   * The flag servers, replicas of one deployment (they share the revision counter, so a revision held
   * from one resumes on another); at least one. Opaque here: each is handed back to `connect` and
   * `fetchFlags`. The first is used until an attempt on it fails, then the next, and so on in a ring;
   * a server that works is kept. Every server failing in a row (a full round) backs off before the next round.
   */
  servers: readonly string[];
  /** Use the stream; false polls only (state `disabled`). */
  stream: boolean;
  /** The held flags came from this server (e.g. a cache), so the first hello may resume from them. */
  resumable: boolean;
  pollIntervalMs: number;
  reconnect: { baseMs: number; capMs: number; pollAfterFailures: number };
  heartbeat: {
    /** How often a live stream is checked for silence. */
    checkMs: number;
    /** A check sends a ping when this long has passed since the last one (0: every check). */
    pingMs: number;
    /** A stream silent this long is dropped and reopened. */
    deadAfterMs: number;
  };
  /** A stream that delivered for this long starts the backoff over when it drops; one that drops sooner does not. */
  stableAfterMs: number;
  /** When a stream cannot even be attempted (`connect` throws): poll instead, or stop as refused. */
  openFailure: 'poll' | 'stop';
}

/** How one stream connection ended, as the transport saw it. */
export interface StreamClose {
  code: number;
  reason: string;
  /** HTTP status of a refused upgrade. */
  status?: number | undefined;
  /** Transport error (connection refused, TLS, timeout). */
  failure?: unknown;
}

/** What a transport reports of one connection; calls for a connection that is no longer current are ignored. */
export interface StreamEvents {
  opened(): void;
  /** A text frame (a string), or anything else (a binary frame, which is a protocol error). */
  message(data: unknown): void;
  /** Heard from the server without a message (WebSocket ping or pong frames). */
  heard(): void;
  closed(close: StreamClose): void;
}

/** One stream connection, as the synchronizer drives it. */
export interface StreamConnection {
  /** Sends a text frame if the connection is open (else nothing); never throws. */
  send(text: string): void;
  /** Drops the connection from our side (an invalid message, silence): `closed` must follow, at once or later. */
  drop(why: 'invalid' | 'dead'): void;
  /** Closes it for good; whatever it reports afterwards is ignored. */
  close(): void;
}

/**
 * Timers, injected so the state machine runs on any platform: a page passes `globalThis`, Node its
 * unref'd timers. (The wall clock is `Date.now()`, which fake timers replace as well.)
 */
export interface Clock {
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(run: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** What the synchronizer went through, for an SDK's logs (a refusal reaches `SyncTarget.refused`). */
export type SyncNote =
  /** A stream that had delivered flags was lost; it is reopened. */
  | { type: 'lost'; why: string; code: number; reason: string }
  /** A stream attempt closed before delivering flags; `failures` in a row so far. */
  | { type: 'failed'; why: string; code: number; failures: number }
  /** The next attempts (and polls) go to another server, after one failed on `from`. */
  | { type: 'failover'; from: string; to: string }
  /** Polling `GET /v1/flags` starts. */
  | { type: 'polling' };

/** Everything the synchronizer does to the world, supplied by the SDK. */
export interface SyncIo<E extends SyncError> {
  /** Opens a stream to `server`'s `/v1/stream`; throws when one cannot even be attempted (a malformed URL). */
  connect(events: StreamEvents, server: string): StreamConnection;
  /** `server`'s `GET /v1/flags` with `If-None-Match: etag` when given; resolves with the status and body (JSON on 200). */
  fetchFlags(etag: string | undefined, server: string): Promise<{ status: number; body: unknown }>;
  /** Cancels requests in flight, for good. */
  abort(): void;
  /** A text frame as a server message; throws an Error naming what is wrong. */
  decodeMessage(text: string): ServerMessage;
  /** A `GET /v1/flags` body as a snapshot; throws an Error naming what is wrong. */
  decodeSnapshot(body: unknown): FlagSnapshot;
  clock: Clock;
  /** Makes the SDK's error. */
  error(
    code: SyncErrorCode,
    message: string,
    options?: { status?: number; details?: unknown; cause?: unknown },
  ): E;
  /** A short description of anything thrown. */
  describe(error: unknown): string;
  note?(note: SyncNote): void;
}

/** A running synchronizer: where it stands, its counters, and what its client may ask of it. */
export interface Synchronizer {
  readonly state: StreamState;
  /** Polling `GET /v1/flags` (the stream is unavailable, or disabled). */
  readonly polling: boolean;
  /** The server in use (one of `SyncOptions.servers`): the stream, polls and metrics go to it. */
  readonly server: string;
  readonly stats: SyncStats;
  start(): void;
  /** Reconnects now if waiting for a backoff (e.g. the browser came back online). */
  nudge(): void;
  /** Stops for good: closes the stream, cancels timers and in-flight polls. */
  close(): void;
}

/** One stream attempt. */
interface Attempt {
  connection: StreamConnection;
  lastSeen: number;
  lastPing: number;
  /** Received its first snapshot or patch. */
  synced: boolean;
  syncedAt: number;
  /** The server's `error` message before it closed. */
  serverError?: { code: string; message: string };
  /** Why it was dropped for silence. */
  failure?: Error;
  heartbeat?: unknown;
  /** Closed by us (an invalid message, already reported; or silence). */
  dropped?: 'invalid' | 'dead';
}

/**
 * Keeps an SDK's flags in step with the flag server, over the transport the SDK supplies. The stream
 * is the normal path: `hello` with the held revision (so a reconnect resumes with a patch), then
 * snapshot/patch messages, heartbeats both ways. A lost stream is reopened with exponential backoff and
 * full jitter. When the upgrade is answered with an HTTP status, or the stream fails `pollAfterFailures`
 * times in a row, `GET /v1/flags` is polled (with `If-None-Match`) until a stream delivers again. A
 * refused key (4401/4403, HTTP 401/403) stops everything; any other failure keeps the last known flags
 * and retries. With several servers, an attempt that fails moves to the next one at once (a lost stream
 * is first retried where it was, after the backoff), keeping the revision held so the next server
 * resumes with a patch; only a full round of failures backs off. Nothing here throws: it runs from
 * timers and socket callbacks.
 *
 * State lives in closures rather than class fields: the browser bundle is minified, and local names
 * shrink where property names cannot.
 */
export function createSynchronizer<E extends SyncError>(
  options: SyncOptions,
  io: SyncIo<E>,
  target: SyncTarget<E>,
): Synchronizer {
  const { clock, describe, error: makeError } = io;
  const { heartbeat, reconnect, pollIntervalMs, servers } = options;
  if (servers.length === 0) throw new Error('createSynchronizer needs at least one server');
  const stats = emptySyncStats();
  /** The server in use: `servers[index]`. */
  let index = 0;
  let state: StreamState = 'idle';
  let polling = false;
  let current: Attempt | undefined;
  /** Backoff exponent: grows with each failure, back to 0 after a stream that stayed up. */
  let backoff = 0;
  /** Stream attempts in a row that delivered nothing. */
  let failures = 0;
  /** The held flags came from this server, so the revision may be sent to resume. */
  let resumable = options.resumable;
  let pollFailing = false;
  let pollInFlight = false;
  let reconnectTimer: unknown;
  let pollTimer: unknown;

  const over = (): boolean => state === 'closed' || state === 'refused';

  function connect(): void {
    if (over()) return;
    state = 'connecting';
    if (stats.connects > 0) stats.reconnects += 1;
    stats.connects += 1;
    const now = Date.now();
    // `connection` is set below, before any event can arrive (transports report asynchronously).
    const attempt = { lastSeen: now, lastPing: now, synced: false, syncedAt: 0 } as Attempt;
    try {
      attempt.connection = io.connect(
        {
          opened: () => opened(attempt),
          message(data) {
            attempt.lastSeen = Date.now();
            onMessage(attempt, data);
          },
          heard() {
            attempt.lastSeen = Date.now();
          },
          closed: (close) => onClose(attempt, close),
        },
        servers[index]!,
      );
    } catch (error) {
      if (options.openFailure === 'stop') {
        refuse(makeError('VIGIL_SDK_STREAM', describe(error)));
        return;
      }
      // The HTTP path may still work.
      target.error(makeError('VIGIL_SDK_STREAM', describe(error), { cause: error }));
      state = 'disabled';
      startPolling();
      return;
    }
    current = attempt;
  }

  function opened(attempt: Attempt): void {
    if (current !== attempt) return;
    const now = Date.now();
    attempt.lastSeen = attempt.lastPing = now;
    const revision = resumable ? target.revision() : undefined;
    attempt.connection.send(
      JSON.stringify(
        revision === undefined
          ? { type: 'hello', sdk: options.sdk }
          : { type: 'hello', sdk: options.sdk, revision },
      ),
    );
    attempt.heartbeat = clock.setInterval(() => beat(attempt), heartbeat.checkMs);
  }

  function beat(attempt: Attempt): void {
    if (current !== attempt) return;
    const now = Date.now();
    const silentMs = now - attempt.lastSeen;
    if (silentMs > heartbeat.deadAfterMs) {
      stats.deadStreams += 1;
      attempt.failure = new Error(`no message, ping or pong for ${silentMs} ms`);
      drop(attempt, 'dead');
    } else if (now - attempt.lastPing >= heartbeat.pingMs) {
      attempt.lastPing = now;
      attempt.connection.send(JSON.stringify({ type: 'ping', at: now }));
    }
  }

  function onMessage(attempt: Attempt, data: unknown): void {
    if (current !== attempt || attempt.dropped) return;
    let message: ServerMessage;
    try {
      if (typeof data !== 'string') throw new Error('binary frame');
      message = io.decodeMessage(data);
    } catch (error) {
      invalid(attempt, describe(error));
      return;
    }
    try {
      switch (message.type) {
        case 'snapshot':
          stats.snapshots += 1;
          target.load(message, 'stream');
          synced(attempt);
          break;
        case 'patch':
          stats.patches += 1;
          target.apply(message);
          synced(attempt);
          break;
        case 'ping':
          attempt.connection.send(
            JSON.stringify(message.at === undefined ? { type: 'pong' } : { type: 'pong', at: message.at }),
          );
          break;
        case 'error':
          attempt.serverError = { code: message.code, message: message.message };
          break;
        case 'pong':
          break;
      }
    } catch (error) {
      // Nothing here should throw (evaluation and listeners are guarded); if it does, start over.
      invalid(attempt, `failed to apply a ${message.type} message: ${describe(error)}`);
    }
  }

  /** Drops a connection that sent something invalid; the next one starts from a snapshot. */
  function invalid(attempt: Attempt, why: string): void {
    stats.protocolErrors += 1;
    // Whatever we hold may be what was wrong.
    resumable = false;
    target.error(makeError('VIGIL_SDK_PROTOCOL', `${why}; reconnecting for a fresh snapshot`));
    drop(attempt, 'invalid');
  }

  function drop(attempt: Attempt, why: 'invalid' | 'dead'): void {
    attempt.dropped = why;
    clock.clearInterval(attempt.heartbeat);
    attempt.connection.drop(why);
  }

  function synced(attempt: Attempt): void {
    resumable = true;
    if (attempt.synced) return;
    attempt.synced = true;
    attempt.syncedAt = Date.now();
    state = 'streaming';
    failures = 0;
    stopPolling();
    target.inSync('stream');
  }

  function onClose(attempt: Attempt, { code, reason, status, failure }: StreamClose): void {
    clock.clearInterval(attempt.heartbeat);
    if (current !== attempt) return;
    current = undefined;
    if (over()) return;

    const refusal = refusalOf(code, status);
    if (refusal) {
      const message =
        attempt.serverError?.message ??
        (status ? `HTTP ${status} on upgrade` : reason || `closed with ${code}`);
      refuse(makeError(refusal, message, { status: status ?? code, details: attempt.serverError }));
      return;
    }
    if (code === CLOSE_CODES.protocol) resumable = false;

    failure ??= attempt.failure;
    const why = status
      ? `HTTP ${status} on upgrade`
      : failure !== undefined
        ? describe(failure)
        : (attempt.serverError?.message ?? `closed with ${code}${reason ? ` (${reason})` : ''}`);
    if (attempt.synced) {
      if (Date.now() - attempt.syncedAt >= options.stableAfterMs) backoff = 0;
      io.note?.({ type: 'lost', why, code, reason });
      target.lost?.();
    } else {
      stats.streamFailures += 1;
      failures += 1;
      if (attempt.dropped !== 'invalid' && failures === 1)
        target.error(makeError('VIGIL_SDK_STREAM', why, { status: status ?? code }));
      io.note?.({ type: 'failed', why, code, failures });
    }
    // Another replica may be up: try it at once, unless this failure ends a round of them all.
    const rotate = !attempt.synced && servers.length > 1;
    if (rotate) failover();
    // An HTTP answer to the upgrade means no stream here for now: poll at once (the next server).
    if (status !== undefined || failures >= reconnect.pollAfterFailures) startPolling();

    let delay = 0;
    if (!rotate || failures % servers.length === 0) {
      delay = fullJitter(backoff, reconnect.baseMs, reconnect.capMs);
      backoff += 1;
    }
    state = 'waiting';
    reconnectTimer = clock.setTimeout(connect, delay);
  }

  /** Moves to the next server in the ring: the next stream attempt and poll go there. */
  function failover(): void {
    const from = servers[index]!;
    index = (index + 1) % servers.length;
    stats.failovers += 1;
    io.note?.({ type: 'failover', from, to: servers[index]! });
  }

  function startPolling(): void {
    if (polling || over()) return;
    polling = true;
    io.note?.({ type: 'polling' });
    void poll();
  }

  function stopPolling(): void {
    polling = pollFailing = false;
    clock.clearTimeout(pollTimer);
  }

  async function poll(): Promise<void> {
    if (!polling || pollInFlight) return;
    pollInFlight = true;
    try {
      await pollOnce();
    } catch (error) {
      // Runs from a timer: a rejection here would be unhandled.
      if (polling) pollFailed(makeError('VIGIL_SDK_POLL', describe(error), { cause: error }));
    } finally {
      pollInFlight = false;
      if (polling) {
        clock.clearTimeout(pollTimer);
        pollTimer = clock.setTimeout(() => void poll(), pollIntervalMs);
      }
    }
  }

  async function pollOnce(): Promise<void> {
    stats.polls += 1;
    let status: number;
    let body: unknown;
    try {
      ({ status, body } = await io.fetchFlags(
        resumable ? `"${target.revision()}"` : undefined,
        servers[index]!,
      ));
    } catch (error) {
      if (polling) pollFailed(makeError('VIGIL_SDK_POLL', describe(error), { cause: error }));
      return;
    }
    // The stream may have come back (or the client closed) while the request was out.
    if (!polling) return;
    const answered = `GET /v1/flags answered ${status}: ${errorMessage(body)}`;
    const refusal = refusalOf(undefined, status);
    if (refusal) return refuse(makeError(refusal, answered, { status }));
    if (status === 304) {
      stats.pollsNotModified += 1;
      return pollSucceeded();
    }
    if (status !== 200) return pollFailed(makeError('VIGIL_SDK_POLL', answered, { status }));
    let snapshot: FlagSnapshot;
    try {
      snapshot = io.decodeSnapshot(body);
    } catch (error) {
      stats.protocolErrors += 1;
      resumable = false;
      return pollFailed(
        makeError(
          'VIGIL_SDK_PROTOCOL',
          `GET /v1/flags returned something that is not a snapshot (${describe(error)})`,
        ),
      );
    }
    target.load(snapshot, 'poll');
    resumable = true;
    pollSucceeded();
  }

  function pollSucceeded(): void {
    pollFailing = false;
    target.inSync('poll');
  }

  /** Reports the first failure of a run of them; later ones only count. */
  function pollFailed(error: E): void {
    stats.pollFailures += 1;
    // Polling alone (no stream attempts to rotate servers): the next poll tries the next server.
    if (state === 'disabled' && servers.length > 1) failover();
    if (pollFailing) return;
    pollFailing = true;
    target.error(error);
    target.lost?.();
  }

  function refuse(error: E): void {
    state = 'refused';
    shutdown();
    target.refused(error);
  }

  function shutdown(): void {
    clock.clearTimeout(reconnectTimer);
    stopPolling();
    io.abort();
    const attempt = current;
    current = undefined;
    if (attempt) {
      clock.clearInterval(attempt.heartbeat);
      attempt.connection.close();
    }
  }

  return {
    get state() {
      return state;
    },
    get polling() {
      return polling;
    },
    get server() {
      return servers[index]!;
    },
    stats,
    start() {
      if (state !== 'idle') return;
      if (options.stream) connect();
      else {
        state = 'disabled';
        startPolling();
      }
    },
    nudge() {
      if (state !== 'waiting') return;
      clock.clearTimeout(reconnectTimer);
      connect();
    },
    close() {
      if (state === 'closed') return;
      state = 'closed';
      shutdown();
    },
  };
}

/** Counters of a synchronizer that has done nothing yet. */
export function emptySyncStats(): SyncStats {
  return {
    connects: 0,
    reconnects: 0,
    streamFailures: 0,
    deadStreams: 0,
    protocolErrors: 0,
    snapshots: 0,
    patches: 0,
    polls: 0,
    pollFailures: 0,
    pollsNotModified: 0,
    failovers: 0,
  };
}

/** What the synchronizer needs of an HTTP response (a `fetch` Response fits). */
export interface FlagsResponse {
  status: number;
  json(): Promise<unknown>;
  text(): Promise<string>;
}

/** A `GET /v1/flags` response as `SyncIo.fetchFlags` resolves it: the JSON body on 200, else the text. */
export async function readFlagsResponse(response: FlagsResponse): Promise<{ status: number; body: unknown }> {
  const status = response.status;
  return { status, body: status === 200 ? await response.json() : await response.text().catch(() => '') };
}

/** The refusal a close code or HTTP status means, if any. */
function refusalOf(code: number | undefined, status: number | undefined): SyncErrorCode | undefined {
  if (code === CLOSE_CODES.badKey || status === 401) return 'VIGIL_SDK_UNAUTHORIZED';
  if (code === CLOSE_CODES.forbidden || status === 403) return 'VIGIL_SDK_FORBIDDEN';
  return undefined;
}

/** The message of a `{ error: { code, message } }` body, or the text itself. */
function errorMessage(body: unknown): string {
  if (typeof body !== 'string') return '(unexpected body)';
  try {
    const parsed = JSON.parse(body) as { error?: { code?: string; message?: string } };
    if (parsed.error?.message) return `${parsed.error.code ?? ''} ${parsed.error.message}`.trim();
  } catch {
    // not JSON: use the text
  }
  return body.slice(0, 200) || '(empty body)';
}
