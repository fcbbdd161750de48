import type { FlagPatch, FlagSnapshot } from '@vigil/core';
import { CLOSE_CODES } from '@vigil/proto';
import { fullJitter } from './backoff.js';
import { describe, type SdkErrorCode, VigilSdkError } from './errors.js';
import { parseServerMessage, type ServerMessage, snapshotIssue } from './wire.js';

/** Where the stream stands; polling runs beside `connecting`/`waiting` while the stream is unavailable. */
export type StreamState = 'idle' | 'connecting' | 'streaming' | 'waiting' | 'refused' | 'closed';

/** What the synchronizer feeds: the client's flags and its events. */
export interface SyncTarget {
  /** The revision of the flags held. */
  revision(): number;
  load(snapshot: FlagSnapshot, source: 'stream' | 'poll'): void;
  apply(patch: FlagPatch): void;
  /** The flags held are the server's current ones (stream live, or a poll succeeded). */
  inSync(source: 'stream' | 'poll'): void;
  /** The key was refused: nothing more will be tried. */
  refused(error: VigilSdkError): void;
  error(error: VigilSdkError): void;
}

export interface SyncOptions {
  /** `http(s)://host[:port]` of the flag server, without a trailing slash. */
  url: string;
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

/** Counters of the connection's life, exposed by `client.stats()`. */
export interface SyncStats {
  connects: number;
  /** Stream attempts that closed before delivering any flags. */
  streamFailures: number;
  /** Streams dropped for silence. */
  deadStreams: number;
  /** Invalid messages from the server (each forces a resync). */
  protocolErrors: number;
  snapshots: number;
  patches: number;
  polls: number;
  pollFailures: number;
  pollsNotModified: number;
}

interface Attempt {
  socket: WebSocket;
  lastSeen: number;
  synced: boolean;
  syncedAt: number;
  serverError?: { code: string; message: string };
  heartbeat?: ReturnType<typeof setInterval>;
  /** Closed by us (invalid message, silence); already accounted for. */
  dropped?: 'invalid' | 'dead';
}

/**
 * Keeps one page's flags in step with the flag server, as the Node SDK does: a native WebSocket to
 * `/v1/stream` carrying the key in a subprotocol (`vigil.<key>`), `hello` with the held revision, then
 * snapshot/patch messages, heartbeats both ways. A lost stream is reopened with exponential backoff
 * and full jitter; after `pollAfterFailures` failed attempts in a row, `GET /v1/flags` is polled (with
 * `If-None-Match`) until a stream delivers again. A refused key (4401/4403, HTTP 401/403) stops
 * everything; any other failure keeps the last known flags and retries.
 */
export class Synchronizer {
  state: StreamState = 'idle';
  polling = false;
  readonly stats: SyncStats = {
    connects: 0,
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
  private backoff = 0;
  private failures = 0;
  private resumable: boolean;
  private pollFailing = false;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private pollTimer?: ReturnType<typeof setTimeout>;
  private pollInFlight = false;
  private readonly aborter = new AbortController();

  constructor(
    private readonly options: SyncOptions,
    private readonly target: SyncTarget,
  ) {
    this.resumable = options.resumable;
  }

  start(): void {
    if (this.state === 'idle') this.connect();
  }

  /** Reconnects now if waiting for a backoff (the browser came back online, the tab became visible). */
  nudge(): void {
    if (this.state !== 'waiting') return;
    clearTimeout(this.reconnectTimer);
    this.connect();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.shutdown();
  }

  private connect(): void {
    if (this.state === 'closed' || this.state === 'refused') return;
    this.state = 'connecting';
    this.stats.connects += 1;
    const base = `${this.options.url.replace(/^http/, 'ws')}/v1/stream`;
    let socket: WebSocket;
    try {
      // The key in a subprotocol keeps it out of URLs (and so out of proxy logs); the server selects `vigil`.
      socket = new WebSocket(base, ['vigil', `vigil.${this.options.clientKey}`]);
    } catch {
      // A key that is not a valid subprotocol token goes in the query instead.
      try {
        socket = new WebSocket(`${base}?key=${encodeURIComponent(this.options.clientKey)}`);
      } catch (error) {
        this.refuse('VIGIL_SDK_STREAM', `cannot open ${base}: ${describe(error)}`);
        return;
      }
    }
    const attempt: Attempt = { socket, lastSeen: Date.now(), synced: false, syncedAt: 0 };
    this.attempt = attempt;
    socket.onopen = () => {
      attempt.lastSeen = Date.now();
      const revision = this.resumable ? this.target.revision() : undefined;
      this.send(attempt, {
        type: 'hello',
        sdk: this.options.sdk,
        ...(revision === undefined ? {} : { revision }),
      });
      const tick = Math.min(this.options.heartbeatMs, Math.max(1000, this.options.deadAfterMs / 3));
      let lastPing = Date.now();
      attempt.heartbeat = setInterval(() => {
        const now = Date.now();
        if (now - attempt.lastSeen > this.options.deadAfterMs) {
          this.stats.deadStreams += 1;
          this.drop(attempt, 'dead');
        } else if (now - lastPing >= this.options.heartbeatMs) {
          lastPing = now;
          this.send(attempt, { type: 'ping', at: now });
        }
      }, tick);
    };
    socket.onmessage = (event: MessageEvent) => {
      attempt.lastSeen = Date.now();
      this.onMessage(attempt, event.data);
    };
    socket.onclose = (event: CloseEvent) => this.onClose(attempt, event.code, event.reason);
  }

  private send(attempt: Attempt, message: object): void {
    try {
      if (attempt.socket.readyState === WebSocket.OPEN) attempt.socket.send(JSON.stringify(message));
    } catch {
      // closing: onclose follows
    }
  }

  private onMessage(attempt: Attempt, data: unknown): void {
    if (this.attempt !== attempt || attempt.dropped) return;
    let message: ServerMessage;
    try {
      if (typeof data !== 'string') throw new Error('binary frame');
      message = parseServerMessage(data);
    } catch (error) {
      this.stats.protocolErrors += 1;
      // The next connection starts from a snapshot: whatever we hold may be what was wrong.
      this.resumable = false;
      this.target.error(
        new VigilSdkError('VIGIL_SDK_PROTOCOL', `${describe(error)}; reconnecting for a fresh snapshot`),
      );
      this.drop(attempt, 'invalid');
      return;
    }
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
        this.send(attempt, message.at === undefined ? { type: 'pong' } : { type: 'pong', at: message.at });
        break;
      case 'error':
        attempt.serverError = { code: message.code, message: message.message };
        break;
      case 'pong':
        break;
    }
  }

  /** Closes an attempt from our side; it is then handled as a lost stream. */
  private drop(attempt: Attempt, why: 'invalid' | 'dead'): void {
    attempt.dropped = why;
    clearInterval(attempt.heartbeat);
    try {
      attempt.socket.close(why === 'invalid' ? CLOSE_CODES.protocol : 1000, why);
    } catch {
      // already closing
    }
    // A dead connection may never fire onclose; do not wait for it.
    this.onClose(attempt, why === 'invalid' ? CLOSE_CODES.protocol : 1006, why);
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
    attempt.socket.onopen = attempt.socket.onmessage = attempt.socket.onclose = null;
    if (this.attempt !== attempt) return;
    this.attempt = undefined;
    if (this.state === 'closed' || this.state === 'refused') return;

    if (code === CLOSE_CODES.badKey || code === CLOSE_CODES.forbidden) {
      const message = attempt.serverError?.message ?? (reason || `closed with ${code}`);
      this.refuse(
        code === CLOSE_CODES.badKey ? 'VIGIL_SDK_UNAUTHORIZED' : 'VIGIL_SDK_FORBIDDEN',
        message,
        code,
      );
      return;
    }
    if (code === CLOSE_CODES.protocol) this.resumable = false;
    if (attempt.synced) {
      // A stream that stayed up a while starts the backoff over; one that drops at once does not.
      if (Date.now() - attempt.syncedAt >= this.options.heartbeatMs) this.backoff = 0;
    } else {
      this.stats.streamFailures += 1;
      this.failures += 1;
      if (attempt.dropped !== 'invalid' && this.failures === 1) {
        const why = attempt.serverError?.message ?? `closed with ${code}${reason ? ` (${reason})` : ''}`;
        this.target.error(new VigilSdkError('VIGIL_SDK_STREAM', why, { status: code }));
      }
    }
    if (this.failures >= this.options.reconnect.pollAfterFailures) this.startPolling();
    const delay = fullJitter(this.backoff, this.options.reconnect.baseMs, this.options.reconnect.capMs);
    this.backoff += 1;
    this.state = 'waiting';
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private startPolling(): void {
    if (this.polling || this.state === 'closed' || this.state === 'refused') return;
    this.polling = true;
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
      this.pollFailed(new VigilSdkError('VIGIL_SDK_POLL', describe(error), { cause: error }));
    } finally {
      this.pollInFlight = false;
      if (this.polling) {
        clearTimeout(this.pollTimer);
        this.pollTimer = setTimeout(() => void this.poll(), this.options.pollIntervalMs);
      }
    }
  }

  private async pollOnce(): Promise<void> {
    this.stats.polls += 1;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.resumable) headers['if-none-match'] = `"${this.target.revision()}"`;
    const url = `${this.options.url}/v1/flags?key=${encodeURIComponent(this.options.clientKey)}`;
    let response: Response;
    let body: unknown;
    try {
      response = await fetch(url, {
        headers,
        cache: 'no-store',
        signal: AbortSignal.any([this.aborter.signal, AbortSignal.timeout(this.options.requestTimeoutMs)]),
      });
      body = response.status === 200 ? await response.json() : await response.text().catch(() => '');
    } catch (error) {
      if (this.polling)
        this.pollFailed(new VigilSdkError('VIGIL_SDK_POLL', describe(error), { cause: error }));
      return;
    }
    // The stream may have come back (or the client closed) while the request was out.
    if (!this.polling) return;
    const status = response.status;
    if (status === 401 || status === 403) {
      this.refuse(
        status === 401 ? 'VIGIL_SDK_UNAUTHORIZED' : 'VIGIL_SDK_FORBIDDEN',
        `GET /v1/flags answered ${status}: ${errorMessage(body)}`,
        status,
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
    const issue = snapshotIssue(body);
    if (issue) {
      this.stats.protocolErrors += 1;
      this.resumable = false;
      this.pollFailed(new VigilSdkError('VIGIL_SDK_PROTOCOL', `GET /v1/flags: ${issue}`));
      return;
    }
    this.target.load(body as FlagSnapshot, 'poll');
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
  }

  private refuse(code: SdkErrorCode, message: string, status?: number): void {
    this.state = 'refused';
    this.shutdown();
    this.target.refused(new VigilSdkError(code, message, status === undefined ? {} : { status }));
  }

  private shutdown(): void {
    clearTimeout(this.reconnectTimer);
    this.stopPolling();
    this.aborter.abort();
    const attempt = this.attempt;
    this.attempt = undefined;
    if (attempt) {
      clearInterval(attempt.heartbeat);
      attempt.socket.onopen = attempt.socket.onmessage = attempt.socket.onclose = null;
      try {
        attempt.socket.close(1000, 'client closed');
      } catch {
        // already closed
      }
    }
  }
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
