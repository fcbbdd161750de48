import type { FlagPatch, FlagSnapshot } from '@vigil/core';
import { CLOSE_CODES, type ServerMessage, serverMessageSchema } from '@vigil/proto';
import { type RawData, WebSocket } from 'ws';
import { fullJitter } from './backoff.js';
import { snapshotBodySchema } from './bootstrap.js';
import { describe, type SdkErrorCode, VigilSdkError } from './errors.js';
import type { Logger } from './options.js';
import { SDK_NAME } from './version.js';

/**
 * Where the stream stands. `polling` is separate (see {@link Synchronizer.polling}): it runs beside
 * `connecting`/`waiting` while the stream is unavailable, and alone when the stream is `disabled`.
 */
export type StreamState = 'idle' | 'connecting' | 'streaming' | 'waiting' | 'disabled' | 'refused' | 'closed';

/** What the synchronizer feeds: the client's flag set and its events. */
export interface SyncTarget {
  /** The revision of the flags held. */
  revision(): number;
  /** A whole environment from the server; replaces what is held. */
  load(snapshot: FlagSnapshot, source: 'stream' | 'poll'): void;
  apply(patch: FlagPatch): void;
  /** The flags held are the server's current ones (stream live, or a poll succeeded). */
  inSync(source: 'stream' | 'poll'): void;
  /** The connection that kept flags current was lost. */
  lost(): void;
  /** The key was refused: nothing more will be tried. */
  refused(error: VigilSdkError): void;
  error(error: VigilSdkError): void;
}

export interface SyncOptions {
  streamUrl: string;
  httpUrl: string;
  sdkKey: string;
  stream: boolean;
  pollIntervalMs: number;
  reconnect: { baseMs: number; capMs: number; pollAfterFailures: number };
  heartbeatMs: number;
  requestTimeoutMs: number;
  logger: Logger;
}

/** Counters of the connection's life, exposed by `client.stats()`. */
export interface SyncStats {
  /** Stream connections attempted. */
  connects: number;
  /** Connections attempted after a previous one closed or failed. */
  reconnects: number;
  /** Stream attempts that closed before delivering any flags. */
  streamFailures: number;
  /** Streams dropped for silence (no message, ping or pong for three heartbeats). */
  deadStreams: number;
  /** Invalid messages from the server (each forces a resync). */
  protocolErrors: number;
  snapshots: number;
  patches: number;
  /** `GET /v1/flags` requests made, and how many failed or were not modified. */
  polls: number;
  pollFailures: number;
  pollsNotModified: number;
}

/** One WebSocket attempt. */
interface Attempt {
  socket: WebSocket;
  lastSeen: number;
  /** Received its first snapshot or patch. */
  synced: boolean;
  syncedAt: number;
  /** HTTP status of a refused upgrade. */
  status?: number;
  /** The server's `error` message before it closed. */
  serverError?: { code: string; message: string };
  /** Transport error (connection refused, TLS, timeout). */
  failure?: Error;
  heartbeat?: NodeJS.Timeout;
  /** Closed by us after an invalid message (already reported). */
  invalid?: boolean;
}

/** Dropped after this many heartbeat periods without hearing from the server. */
const DEAD_AFTER_HEARTBEATS = 3;

/**
 * Keeps the client's flags in step with the flag server. The stream is the normal path: `hello` with
 * the held revision (so a reconnect resumes with a patch), then snapshot/patch messages, heartbeats
 * both ways. A lost stream is reopened with exponential backoff and full jitter. When the stream is
 * refused with an HTTP status, or fails `pollAfterFailures` times in a row, `GET /v1/flags` is polled
 * (with `If-None-Match`) until a stream delivers again. A refused key (4401/4403, HTTP 401/403) stops
 * everything; any other failure keeps the last known flags and retries.
 */
export class Synchronizer {
  state: StreamState = 'idle';
  /** Polling `GET /v1/flags` (the stream is unavailable, or disabled). */
  polling = false;
  readonly stats: SyncStats = {
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
  };
  private attempt?: Attempt;
  /** Backoff exponent: grows with each failure, back to 0 after a stream that stayed up. */
  private backoff = 0;
  /** Stream attempts in a row that delivered nothing. */
  private failures = 0;
  /** The held flags came from this server, so the revision may be sent to resume. */
  private resumable = false;
  private pollFailing = false;
  private reconnectTimer?: NodeJS.Timeout;
  private pollTimer?: NodeJS.Timeout;
  private pollInFlight = false;
  private readonly aborter = new AbortController();

  constructor(
    private readonly options: SyncOptions,
    private readonly target: SyncTarget,
  ) {}

  start(): void {
    if (this.state !== 'idle') return;
    if (this.options.stream) this.connect();
    else {
      this.state = 'disabled';
      this.startPolling();
    }
  }

  /** Stops for good: closes the stream, cancels timers and in-flight polls. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.shutdown();
  }

  private get authorization(): Record<string, string> {
    return { authorization: `Bearer ${this.options.sdkKey}`, 'user-agent': SDK_NAME };
  }

  private connect(): void {
    if (this.state === 'closed' || this.state === 'refused') return;
    this.state = 'connecting';
    if (this.stats.connects > 0) this.stats.reconnects += 1;
    this.stats.connects += 1;
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.options.streamUrl, {
        headers: this.authorization,
        handshakeTimeout: this.options.requestTimeoutMs,
      });
    } catch (error) {
      // Runs from a timer: nothing may be thrown from here. Poll instead (the HTTP path may still work).
      this.target.error(new VigilSdkError('VIGIL_SDK_STREAM', describe(error), { cause: error }));
      this.state = 'disabled';
      this.startPolling();
      return;
    }
    const attempt: Attempt = { socket, lastSeen: Date.now(), synced: false, syncedAt: 0 };
    this.attempt = attempt;
    const seen = () => {
      attempt.lastSeen = Date.now();
    };
    socket.on('unexpected-response', (_request, response) => {
      // An HTTP answer instead of an upgrade (a proxy without WebSocket support, a 401 from a gateway).
      attempt.status = response.statusCode;
      response.resume();
      socket.terminate();
    });
    socket.on('open', () => {
      seen();
      const revision = this.resumable ? this.target.revision() : undefined;
      socket.send(
        JSON.stringify(
          revision === undefined
            ? { type: 'hello', sdk: SDK_NAME }
            : { type: 'hello', sdk: SDK_NAME, revision },
        ),
      );
      attempt.heartbeat = setInterval(() => this.heartbeat(attempt), this.options.heartbeatMs);
      attempt.heartbeat.unref();
    });
    socket.on('message', (data, isBinary) => {
      seen();
      this.onMessage(attempt, data, isBinary);
    });
    socket.on('ping', seen);
    socket.on('pong', seen);
    socket.on('error', (error) => {
      attempt.failure = error;
    });
    socket.on('close', (code, reason) => this.onClose(attempt, code, reason.toString()));
  }

  private heartbeat(attempt: Attempt): void {
    if (this.attempt !== attempt || attempt.socket.readyState !== WebSocket.OPEN) return;
    const silentMs = Date.now() - attempt.lastSeen;
    if (silentMs > DEAD_AFTER_HEARTBEATS * this.options.heartbeatMs) {
      this.stats.deadStreams += 1;
      attempt.failure = new Error(`no message, ping or pong for ${silentMs} ms`);
      attempt.socket.terminate();
      return;
    }
    attempt.socket.send(JSON.stringify({ type: 'ping', at: Date.now() }));
  }

  private onMessage(attempt: Attempt, data: RawData, isBinary: boolean): void {
    if (this.attempt !== attempt || attempt.invalid) return;
    let message: ServerMessage;
    try {
      if (isBinary) throw new Error('binary frame');
      const parsed = serverMessageSchema.safeParse(JSON.parse(rawText(data)));
      if (!parsed.success) {
        const issues = parsed.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`);
        throw new Error(issues.join('; '));
      }
      message = parsed.data;
    } catch (error) {
      this.invalidMessage(attempt, describe(error));
      return;
    }
    try {
      this.handle(attempt, message);
    } catch (error) {
      // Nothing here should throw (evaluation and listeners are guarded); if it does, start over.
      this.invalidMessage(attempt, `failed to apply a ${message.type} message: ${describe(error)}`);
    }
  }

  private handle(attempt: Attempt, message: ServerMessage): void {
    switch (message.type) {
      case 'snapshot':
        this.stats.snapshots += 1;
        this.target.load(message, 'stream');
        this.synced(attempt);
        break;
      case 'patch':
        this.stats.patches += 1;
        this.target.apply(message);
        this.synced(attempt);
        break;
      case 'ping':
        attempt.socket.send(
          JSON.stringify(message.at === undefined ? { type: 'pong' } : { type: 'pong', at: message.at }),
        );
        break;
      case 'error':
        attempt.serverError = { code: message.code, message: message.message };
        break;
      case 'pong':
        break;
    }
  }

  /** Drops a connection that sent something invalid; the next one starts from a snapshot. */
  private invalidMessage(attempt: Attempt, why: string): void {
    attempt.invalid = true;
    this.stats.protocolErrors += 1;
    this.resumable = false;
    this.target.error(new VigilSdkError('VIGIL_SDK_PROTOCOL', `${why}; reconnecting for a fresh snapshot`));
    attempt.socket.terminate();
  }

  private synced(attempt: Attempt): void {
    this.resumable = true;
    if (attempt.synced) return;
    attempt.synced = true;
    attempt.syncedAt = Date.now();
    this.state = 'streaming';
    this.failures = 0;
    this.stopPolling();
    this.target.inSync('stream');
  }

  private onClose(attempt: Attempt, code: number, reason: string): void {
    clearInterval(attempt.heartbeat);
    if (this.attempt !== attempt) return;
    this.attempt = undefined;
    if (this.state === 'closed' || this.state === 'refused') return;

    const refusal = refusalOf(code, attempt.status);
    if (refusal) {
      const message =
        attempt.serverError?.message ?? (attempt.status ? `HTTP ${attempt.status} on upgrade` : reason);
      this.refuse(
        new VigilSdkError(refusal, message, { status: attempt.status ?? code, details: attempt.serverError }),
      );
      return;
    }
    if (code === CLOSE_CODES.protocol) this.resumable = false;

    const why = attempt.status
      ? `HTTP ${attempt.status} on upgrade`
      : attempt.failure
        ? describe(attempt.failure)
        : `closed with ${code}${reason ? ` (${reason})` : ''}`;
    if (attempt.synced) {
      // A stream that stayed up a while starts the backoff over; one that drops at once does not.
      if (Date.now() - attempt.syncedAt >= this.options.heartbeatMs) this.backoff = 0;
      this.options.logger.warn({ code, reason }, `vigil: stream lost (${why}); reconnecting`);
      this.target.lost();
    } else {
      this.stats.streamFailures += 1;
      this.failures += 1;
      if (!attempt.invalid && this.failures === 1) {
        this.target.error(new VigilSdkError('VIGIL_SDK_STREAM', why, { status: attempt.status ?? code }));
      }
      this.options.logger.debug?.({ code, failures: this.failures }, `vigil: stream attempt failed: ${why}`);
    }
    // An HTTP answer to the upgrade means no stream here for now: poll at once.
    if (attempt.status !== undefined || this.failures >= this.options.reconnect.pollAfterFailures)
      this.startPolling();

    const delay = fullJitter(this.backoff, this.options.reconnect.baseMs, this.options.reconnect.capMs);
    this.backoff += 1;
    this.state = 'waiting';
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
  }

  private startPolling(): void {
    if (this.polling || this.state === 'closed' || this.state === 'refused') return;
    this.polling = true;
    this.options.logger.info?.({ intervalMs: this.options.pollIntervalMs }, 'vigil: polling GET /v1/flags');
    void this.poll();
  }

  private stopPolling(): void {
    this.polling = false;
    this.pollFailing = false;
    clearTimeout(this.pollTimer);
  }

  private async poll(): Promise<void> {
    if (!this.polling || this.pollInFlight) return;
    this.pollInFlight = true;
    try {
      await this.pollOnce();
    } catch (error) {
      // Runs from a timer: a rejection here would be unhandled.
      if (this.polling)
        this.pollFailed(new VigilSdkError('VIGIL_SDK_POLL', describe(error), { cause: error }));
    } finally {
      this.pollInFlight = false;
      if (this.polling) {
        clearTimeout(this.pollTimer);
        this.pollTimer = setTimeout(() => void this.poll(), this.options.pollIntervalMs);
        this.pollTimer.unref();
      }
    }
  }

  private async pollOnce(): Promise<void> {
    this.stats.polls += 1;
    const headers: Record<string, string> = { ...this.authorization, accept: 'application/json' };
    if (this.resumable) headers['if-none-match'] = `"${this.target.revision()}"`;
    let status: number;
    let body: unknown;
    try {
      const response = await fetch(`${this.options.httpUrl}/v1/flags`, {
        headers,
        signal: AbortSignal.any([this.aborter.signal, AbortSignal.timeout(this.options.requestTimeoutMs)]),
      });
      status = response.status;
      body = status === 200 ? await response.json() : await response.text().catch(() => '');
    } catch (error) {
      if (this.polling)
        this.pollFailed(new VigilSdkError('VIGIL_SDK_POLL', describe(error), { cause: error }));
      return;
    }
    // The stream may have come back (or the client closed) while the request was out.
    if (!this.polling) return;
    const refusal = refusalOf(undefined, status);
    if (refusal) {
      this.refuse(
        new VigilSdkError(refusal, `GET /v1/flags answered ${status}: ${errorMessage(body)}`, { status }),
      );
      return;
    }
    if (status === 304) {
      this.stats.pollsNotModified += 1;
      this.pollSucceeded();
      return;
    }
    if (status !== 200) {
      this.pollFailed(
        new VigilSdkError('VIGIL_SDK_POLL', `GET /v1/flags answered ${status}: ${errorMessage(body)}`, {
          status,
        }),
      );
      return;
    }
    const parsed = snapshotBodySchema.safeParse(body);
    if (!parsed.success) {
      this.stats.protocolErrors += 1;
      this.resumable = false;
      this.pollFailed(
        new VigilSdkError('VIGIL_SDK_PROTOCOL', 'GET /v1/flags returned something that is not a snapshot'),
      );
      return;
    }
    this.target.load(parsed.data, 'poll');
    this.resumable = true;
    this.pollSucceeded();
  }

  private pollSucceeded(): void {
    this.pollFailing = false;
    this.target.inSync('poll');
  }

  private pollFailed(error: VigilSdkError): void {
    this.stats.pollFailures += 1;
    if (this.pollFailing) return;
    this.pollFailing = true;
    this.target.error(error);
    this.target.lost();
  }

  private refuse(error: VigilSdkError): void {
    this.state = 'refused';
    this.shutdown();
    this.options.logger.error({ code: error.code, status: error.status }, `vigil: stopped: ${error.message}`);
    this.target.refused(error);
  }

  private shutdown(): void {
    clearTimeout(this.reconnectTimer);
    this.stopPolling();
    this.aborter.abort();
    const attempt = this.attempt;
    this.attempt = undefined;
    if (attempt) {
      clearInterval(attempt.heartbeat);
      if (attempt.socket.readyState === WebSocket.OPEN) attempt.socket.close(1000, 'client closed');
      else attempt.socket.terminate();
      setTimeout(() => attempt.socket.terminate(), 1000).unref();
    }
  }
}

/** The refusal a close code or HTTP status means, if any. */
function refusalOf(code: number | undefined, status: number | undefined): SdkErrorCode | undefined {
  if (code === CLOSE_CODES.badKey || status === 401) return 'VIGIL_SDK_UNAUTHORIZED';
  if (code === CLOSE_CODES.forbidden || status === 403) return 'VIGIL_SDK_FORBIDDEN';
  return undefined;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}

/** The message of a `{ error: { code, message } }` body, or the text itself. */
function errorMessage(body: unknown): string {
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { error?: { code?: string; message?: string } };
      if (parsed.error?.message) return `${parsed.error.code ?? ''} ${parsed.error.message}`.trim();
    } catch {
      // not JSON: use the text
    }
    return body.slice(0, 200) || '(empty body)';
  }
  return '(unexpected body)';
}
