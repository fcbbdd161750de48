import { Socket } from 'node:net';
import { CLOSE_CODES, clientMessageSchema, type HelloMessage } from '@vigil/proto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { bearerToken, type Principal, type Tokens } from '../auth.js';
import type { EnvState, PatchBody } from '../env-state.js';
import type { Environments } from '../environments.js';
import { toVigilError } from '../error-handler.js';
import { VigilError } from '../errors.js';
import type { LogBudget } from '../log-budget.js';
import type { ServerMetrics } from '../metrics.js';
import { reply } from '../openapi.js';
import type { Change, Store } from '../store/store.js';
import type { Connection, StreamHub } from '../stream-hub.js';

/** Subprotocol prefix carrying an SDK key: browsers offer `['vigil', 'vigil.<key>']`. */
export const KEY_PROTOCOL_PREFIX = 'vigil.';
/** The subprotocol the server selects when offered. */
export const STREAM_PROTOCOL = 'vigil';

/** Close code for "the store is unreachable, try again later" (RFC 6455's 1013). */
const TRY_AGAIN_LATER = 1013;

export interface StreamRouteOptions {
  store: Store;
  tokens: Tokens;
  envs: Environments;
  hub: StreamHub;
  metrics: ServerMetrics;
}

/**
 * Chooses the subprotocol to answer with: `vigil` when offered, else the first one offered (a browser
 * fails the handshake when none of its offers is selected).
 */
export function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(STREAM_PROTOCOL)) return STREAM_PROTOCOL;
  const [first] = protocols;
  return first ?? false;
}

/** The SDK key of an upgrade request: bearer header, `?key=`, or a `vigil.<key>` subprotocol. */
export function streamKey(request: FastifyRequest): string | undefined {
  const bearer = bearerToken(request);
  if (bearer) return bearer;
  const key = (request.query as Record<string, unknown> | undefined)?.key;
  if (typeof key === 'string' && key !== '') return key;
  const offered = request.headers['sec-websocket-protocol'];
  if (!offered) return undefined;
  for (const protocol of offered.split(',')) {
    const p = protocol.trim();
    if (p.startsWith(KEY_PROTOCOL_PREFIX) && p.length > KEY_PROTOCOL_PREFIX.length)
      return p.slice(KEY_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

/** Everything a run of changes did, as one patch. */
export function mergeChanges(changes: readonly Change[], from: number): PatchBody {
  const flags = new Map<string, Change['flags'][number]>();
  const segments = new Map<string, Change['segments'][number]>();
  const deletedFlags = new Set<string>();
  const deletedSegments = new Set<string>();
  let revision = from;
  for (const change of changes) {
    revision = Math.max(revision, change.revision);
    for (const flag of change.flags) {
      flags.set(flag.key, flag);
      deletedFlags.delete(flag.key);
    }
    for (const key of change.deleted.flags) {
      flags.delete(key);
      deletedFlags.add(key);
    }
    for (const segment of change.segments) {
      segments.set(segment.key, segment);
      deletedSegments.delete(segment.key);
    }
    for (const key of change.deleted.segments) {
      segments.delete(key);
      deletedSegments.add(key);
    }
  }
  return {
    revision,
    flags: [...flags.values()],
    segments: [...segments.values()],
    deleted: { flags: [...deletedFlags], segments: [...deletedSegments] },
  };
}

function patchBytes(body: PatchBody): Buffer {
  return Buffer.from(JSON.stringify({ type: 'patch', ...body }));
}

function errorBytes(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ type: 'error', code, message }));
}

/** Why a stream's client frame was refused: the label of `vigil_stream_frames_refused_total`. */
export type FrameRefusal = 'too_large' | 'invalid_utf8' | 'protocol' | 'invalid_message';

/** The refusal a `ws` error stands for (ws closes the stream itself: 1009, 1007, 1002), else undefined. */
export function frameRefusal(error: unknown): Exclude<FrameRefusal, 'invalid_message'> | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return undefined;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH')
    return 'too_large';
  if (code === 'WS_ERR_INVALID_UTF8') return 'invalid_utf8';
  return 'protocol';
}

/**
 * The websocket plugin's handler for errors on an open stream. Frames `ws` refuses (too large, not
 * UTF-8, bad framing) are the client's doing and any client can send them: they are counted, and
 * logged at warn, without a stack, within `budget` (the plugin's default logged each one at error
 * with a stack). Anything else is a bug of ours and logged at error.
 */
export function streamErrorHandler(
  metrics: ServerMetrics,
  budget: LogBudget,
): (error: Error, socket: WebSocket, request: FastifyRequest) => void {
  return (error, socket, request) => {
    const reason = frameRefusal(error);
    if (reason === undefined) request.log.error({ err: error }, 'stream failed');
    else {
      metrics.framesRefused.inc({ reason });
      const allowed = budget.take();
      if (allowed) {
        request.log.warn(
          {
            reason,
            code: (error as { code?: string }).code,
            detail: error.message,
            ip: request.ip,
            ...allowed,
          },
          'stream frame refused; stream closed',
        );
      }
    }
    socket.terminate();
  };
}

/** A plain GET of the stream (no upgrade) gets a 400 in the error shape instead of the plugin's empty 404. */
async function upgradeOnly(request: FastifyRequest): Promise<void> {
  if (!request.ws) {
    throw new VigilError(
      'VIGIL_BAD_REQUEST',
      'GET /v1/stream is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket',
    );
  }
}

/**
 * `GET /v1/stream`: the SDK stream. The key is checked after the upgrade so a bad key gets a protocol
 * `error` message and close code 4401 a client can act on (an HTTP 401 on the upgrade is opaque to
 * browsers). After `hello`, the client gets a snapshot, or a patch from its revision, then every patch.
 */
export async function streamRoutes(app: FastifyInstance, options: StreamRouteOptions): Promise<void> {
  const { store, tokens, envs, hub, metrics } = options;

  /** The first message for a client at `revision`; reads the store only when memory does not reach back. */
  async function firstMessage(
    state: EnvState,
    conn: Connection,
    revision: number | undefined,
  ): Promise<Buffer> {
    if (revision === undefined || revision > state.revision) return state.snapshot(conn.view).message;
    if (revision === state.revision) return patchBytes(mergeChanges([], revision));
    // A client key's patch depends on what it could see at its revision; a snapshot is exact and cached.
    if (conn.view === 'client') return state.snapshot('client').message;
    const recent = state.changesSince(revision);
    if (recent)
      return recent.length === 1
        ? recent[0]!.message('server')
        : patchBytes(
            mergeChanges(
              recent.map((a) => a.change),
              revision,
            ),
          );
    let logged: Change[] | undefined;
    try {
      logged = await store.changesSince(state.env, revision);
    } catch {
      logged = undefined;
    }
    // Re-read memory after the await: changes applied meanwhile are in its recent list.
    if (logged === undefined || logged.some((c) => c.reset)) return state.snapshot('server').message;
    const last = logged.at(-1)?.revision ?? revision;
    if (last >= state.revision) return patchBytes(mergeChanges(logged, revision));
    const rest = state.changesSince(last);
    if (!rest) return state.snapshot('server').message;
    return patchBytes(mergeChanges([...logged, ...rest.map((a) => a.change)], revision));
  }

  function refuse(socket: WebSocket, code: string, message: string, closeCode: number): void {
    if (socket.readyState === 1) socket.send(errorBytes(code, message), { binary: false });
    socket.close(closeCode, code);
  }

  async function authenticate(request: FastifyRequest, socket: WebSocket): Promise<Principal | undefined> {
    const secret = streamKey(request);
    if (!secret) {
      refuse(
        socket,
        'VIGIL_UNAUTHORIZED',
        'missing SDK key (Authorization: Bearer, ?key= or a vigil.<key> subprotocol)',
        CLOSE_CODES.badKey,
      );
      return undefined;
    }
    let principal: Principal | undefined;
    try {
      principal = await tokens.authenticate(secret);
    } catch (error) {
      const e = toVigilError(error);
      refuse(socket, e.code, e.message, TRY_AGAIN_LATER);
      return undefined;
    }
    if (!principal) {
      refuse(socket, 'VIGIL_UNAUTHORIZED', 'unknown SDK key', CLOSE_CODES.badKey);
      return undefined;
    }
    if (!principal.env || !principal.scopes.some((s) => s === 'sdk-server' || s === 'sdk-client')) {
      refuse(
        socket,
        'VIGIL_FORBIDDEN',
        'streams need an SDK key (sdk-server or sdk-client)',
        CLOSE_CODES.forbidden,
      );
      return undefined;
    }
    return principal;
  }

  const schema = {
    tags: ['sdk'],
    summary: 'The SDK stream: a WebSocket carrying a snapshot, then a patch for every change',
    description:
      'The key comes as `Authorization: Bearer`, `?key=`, or the subprotocol `vigil.<key>` (offer ' +
      "`['vigil', 'vigil.<key>']`; the server selects `vigil`). It is checked after the upgrade: a refusal is " +
      'an `error` message and a close code (4401, 4403, 1013), not an HTTP status. The messages, heartbeats, ' +
      'close codes and resuming are in [wire-protocol.md](wire-protocol.md).',
    'x-vigil-access': 'sdk',
    response: { 101: reply('Switching Protocols: the WebSocket is open; send `hello`') },
  } as const;

  app.get('/v1/stream', { websocket: true, schema, preHandler: upgradeOnly }, (socket, request) => {
    let conn: Connection | undefined;
    // Handlers attach now (messages may arrive while the key is checked) and run in arrival order.
    let chain: Promise<unknown> = authenticate(request, socket).then((principal) => {
      if (!principal || socket.readyState !== 1) return;
      const now = Date.now();
      const tcp = request.raw.socket;
      conn = {
        socket,
        // Under inject (tests) the request's socket is not a TCP socket: such streams get ws's framing.
        ...(tcp instanceof Socket ? { tcp } : {}),
        env: principal.env!,
        view: principal.clientOnly ? 'client' : 'server',
        tokenId: principal.id,
        secret: streamKey(request)!,
        openedAt: now,
        lastSeen: now,
        live: false,
        closed: false,
      };
      hub.add(conn);
    });

    const onHello = async (c: Connection, hello: HelloMessage) => {
      let state: EnvState;
      try {
        state = await envs.get(c.env);
      } catch (error) {
        const e = toVigilError(error);
        hub.remove(c);
        refuse(socket, e.code, `cannot load environment ${c.env}: ${e.message}`, TRY_AGAIN_LATER);
        return;
      }
      const message = await firstMessage(state, c, hello.revision);
      // No await between the first message and going live: no patch can fall in between.
      if (hub.send(c, message)) hub.goLive(c);
    };

    const onMessage = async (data: RawData, isBinary: boolean) => {
      const c = conn;
      if (!c || c.closed) return;
      let parsed: ReturnType<typeof clientMessageSchema.safeParse> | undefined;
      if (!isBinary) {
        try {
          parsed = clientMessageSchema.safeParse(JSON.parse(data.toString()));
        } catch {
          parsed = undefined;
        }
      }
      if (!parsed?.success) {
        const why = parsed
          ? parsed.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ')
          : 'not JSON text';
        metrics.framesRefused.inc({ reason: 'invalid_message' });
        hub.remove(c);
        refuse(socket, 'VIGIL_BAD_REQUEST', `invalid message: ${why}`, CLOSE_CODES.protocol);
        return;
      }
      const message = parsed.data;
      if (message.type === 'hello') await onHello(c, message);
      else if (message.type === 'ping') {
        hub.send(
          c,
          Buffer.from(
            JSON.stringify(message.at === undefined ? { type: 'pong' } : { type: 'pong', at: message.at }),
          ),
        );
      }
    };

    socket.on('message', (data, isBinary) => {
      if (conn) conn.lastSeen = Date.now();
      chain = chain
        .then(() => onMessage(data, isBinary))
        .catch((error: unknown) => {
          request.log.error({ err: error }, 'stream message failed');
          if (conn) hub.remove(conn);
          refuse(socket, 'VIGIL_INTERNAL', 'internal error', 1011);
        });
    });
    socket.on('pong', () => {
      if (conn) conn.lastSeen = Date.now();
    });
    socket.on('close', () => {
      if (conn) hub.remove(conn);
    });
    socket.on('error', (error) => request.log.debug({ err: error }, 'stream socket error'));
  });
}
