import type { ServerResponse } from 'node:http';
import { environmentSchema, type Incident } from '@vigil/proto';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorize, bearerToken, type Principal, type Tokens } from '../auth.js';
import { SESSION_COOKIE, type Sessions } from '../console-auth.js';
import type { EnvEvent, Environments } from '../environments.js';
import { AUTH_ERRORS, doc, errors } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { consoleCaller } from './session.js';

const querySchema = z.strictObject({ env: environmentSchema.describe('The environment to follow') });

/** How many incidents (newest first) each poll compares. */
const INCIDENT_WINDOW = 200;

export interface EventRouteOptions {
  envs: Environments;
  tokens: Tokens;
  sessions: Sessions;
  store: Pick<Store, 'listIncidents'>;
  /** Period of the comment ping, and of re-checking that the feed's token or session still holds. */
  pingMs: number;
  /** How often the store's incidents are compared while any feed is open. */
  incidentPollMs: number;
  /** Unsent bytes above which a feed is closed (the browser reconnects) rather than buffered further. */
  maxBuffered: number;
}

/** What a change feed sends as `event: change`. */
export interface ChangeEvent {
  env: string;
  revision: number;
  /** Flags written (created, edited, killed, revived, scheduled). */
  flags: string[];
  /** Flags deleted. */
  deleted: string[];
  segments: string[];
  deletedSegments: string[];
  /** The environment was reloaded from a snapshot: `flags` lists every flag; refetch everything. */
  reset?: true;
}

/** An `event: change` body for an environment event. */
export function changeEvent(event: EnvEvent): ChangeEvent {
  if (event.kind === 'reset') {
    return {
      env: event.state.env,
      revision: event.state.revision,
      flags: [...event.state.flags.keys()],
      deleted: [],
      segments: [...event.state.segments.keys()],
      deletedSegments: [],
      reset: true,
    };
  }
  const { change } = event.applied;
  return {
    env: change.env,
    revision: change.revision,
    flags: change.flags.map((f) => f.key),
    deleted: change.deleted.flags,
    segments: change.segments.map((s) => s.key),
    deletedSegments: change.deleted.segments,
  };
}

/** One open feed. */
interface Feed {
  env: string;
  principal: Principal;
  /** How to check again that the caller may still read: its bearer secret or its session cookie. */
  bearer?: string;
  cookie?: string;
  res: ServerResponse;
  closed: boolean;
}

/** An incident's state as far as the console shows it. */
const fingerprint = (i: Incident) => `${i.status}|${i.killed}|${i.timeline.length}|${i.severity}`;

/**
 * Polls the store's incidents once per process for all open feeds (the store has no incident
 * subscription) and reports each one created or changed since the previous poll.
 */
class IncidentWatch {
  private seen?: Map<string, string>;
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(
    private readonly store: Pick<Store, 'listIncidents'>,
    private readonly periodMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly onChange: (incident: Incident) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.periodMs);
    this.timer.unref();
    void this.poll();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.seen = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const incidents = await this.store.listIncidents({ limit: INCIDENT_WINDOW });
      if (!this.timer) return;
      const next = new Map(incidents.map((i) => [i.id, fingerprint(i)]));
      // The first poll only learns what exists.
      if (this.seen) for (const i of incidents) if (this.seen.get(i.id) !== next.get(i.id)) this.onChange(i);
      this.seen = next;
    } catch (error) {
      this.log.debug({ err: error }, 'cannot poll incidents for console feeds');
    } finally {
      this.polling = false;
    }
  }
}

/**
 * `GET /api/v1/events?env=`: a server-sent-events feed for the console, authorized like the REST API
 * (session cookie or bearer token, `read`). Sends `change` for every flag or segment write in the
 * environment as it is applied (the same change subscription the SDK streams use), `incident` when an
 * incident is opened or changes, and a comment ping every `pingMs`, at which the caller's token or
 * session is checked again (a deleted token or ended session ends the feed).
 */
export async function eventRoutes(app: FastifyInstance, options: EventRouteOptions): Promise<void> {
  const { envs, tokens, sessions } = options;
  const feeds = new Set<Feed>();

  const write = (feed: Feed, text: string) => {
    if (feed.closed) return;
    if (feed.res.writableLength > options.maxBuffered) {
      end(feed);
      return;
    }
    feed.res.write(text);
  };
  const send = (feed: Feed, event: string, data: unknown) =>
    write(feed, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const end = (feed: Feed) => {
    if (feed.closed) return;
    feed.closed = true;
    feeds.delete(feed);
    if (feeds.size === 0) incidents.stop();
    feed.res.end();
  };

  const incidents = new IncidentWatch(options.store, options.incidentPollMs, app.log, (incident) => {
    for (const feed of feeds) {
      if (feed.principal.env !== undefined && feed.principal.env !== incident.env) continue;
      send(feed, 'incident', {
        id: incident.id,
        env: incident.env,
        flag: incident.flag,
        status: incident.status,
      });
    }
  });
  const stopChanges = envs.on((event) => {
    let text: string | undefined;
    for (const feed of feeds) {
      if (feed.env !== event.state.env) continue;
      // Serialized once per change, whatever the number of feeds.
      text ??= `event: change\ndata: ${JSON.stringify(changeEvent(event))}\n\n`;
      write(feed, text);
    }
  });
  const stopRevoke = tokens.onRevoke((id) => {
    for (const feed of feeds) if (feed.principal.id === id) end(feed);
  });

  /** Whether the feed's caller may still read its environment. */
  const stillAllowed = async (feed: Feed): Promise<boolean> => {
    try {
      if (feed.bearer !== undefined) return (await tokens.authenticate(feed.bearer)) !== undefined;
      return (await sessions.verify(feed.cookie)) !== undefined;
    } catch {
      // The store is unreachable: keep serving, as SDK streams do.
      return true;
    }
  };
  const pinger = setInterval(() => {
    for (const feed of feeds) {
      write(feed, ': ping\n\n');
      void stillAllowed(feed).then((ok) => ok || end(feed));
    }
  }, options.pingMs);
  pinger.unref();

  app.addHook('preClose', async () => {
    clearInterval(pinger);
    stopChanges();
    stopRevoke();
    for (const feed of [...feeds]) end(feed);
    incidents.stop();
  });

  app.get(
    '/events',
    {
      schema: {
        tags: ['console'],
        summary: "Server-sent events: the environment's changes, incidents (the console's live feed)",
        description:
          'A `text/event-stream` that sends `event: change` with `{ env, revision, flags, deleted, segments, ' +
          'deletedSegments }` (keys) for every flag or segment write as it is applied, `reset: true` (and every ' +
          'flag key) when the environment was reloaded; `event: incident` with `{ id, env, flag, status }` when ' +
          'an incident is opened or changes (polled every 500 ms); a comment ping every heartbeat. Schedule ' +
          'steps are flag writes, so `change` covers them. Takes the console session cookie or a bearer token; ' +
          'the feed ends when the token is deleted or the session ends.',
        'x-vigil-access': 'read',
        'x-vigil-bound-tokens': 'own-env',
        querystring: doc(querySchema),
        response: {
          200: {
            description: 'The event stream',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request: FastifyRequest, reply) => {
      const principal = await consoleCaller(request, tokens, sessions);
      const { query } = parseRequest(request, { query: querySchema });
      authorize(principal, 'read', query.env);
      const state = await envs.get(query.env);
      const bearer = bearerToken(request);
      const cookie = request.cookies?.[SESSION_COOKIE];
      const feed: Feed = {
        env: query.env,
        principal,
        ...(bearer === undefined ? { cookie } : { bearer }),
        res: reply.raw,
        closed: false,
      };
      reply.hijack();
      reply.raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // The connection ends with the feed: a keep-alive socket left idle would hold up a shutdown.
        connection: 'close',
        // Proxies (nginx) must pass each event on at once.
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      // A HEAD learns the headers; there is no stream to keep open for it.
      if (request.method === 'HEAD') {
        reply.raw.end();
        return;
      }
      reply.raw.socket?.setNoDelay(true);
      feeds.add(feed);
      incidents.start();
      // `retry`: how soon a browser reconnects after the feed drops.
      write(
        feed,
        `retry: 1000\nevent: hello\ndata: ${JSON.stringify({ env: query.env, revision: state.revision })}\n\n`,
      );
      // The browser went away: the request is aborted when it half-closes (the response would wait for
      // the next write to notice), the response closes when the socket does.
      request.raw.on('close', () => end(feed));
      reply.raw.on('close', () => end(feed));
    },
  );
}
