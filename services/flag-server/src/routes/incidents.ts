import { environmentSchema, INCIDENT_STATUSES, type Incident, type TimelineEntry } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { principalOf } from '../auth.js';
import { VigilError } from '../errors.js';
import { Idempotency, idempotent } from '../idempotency.js';
import { renderPostmortem } from '../incidents/postmortem.js';
import type { ServerMetrics } from '../metrics.js';
import { AUTH_ERRORS, doc, errors, ref, reply, requestHeaders } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { WRITE_ERRORS } from './common.js';

export interface IncidentRouteOptions {
  store: Store;
  metrics: ServerMetrics;
  /** Epoch ms; injectable for tests. */
  now: () => number;
  /** Vigil's public URL, linked from the postmortem draft. */
  publicUrl?: string;
}

const idParams = z.strictObject({ id: z.string().min(1).max(128).describe("The incident's id") });

export const incidentQuerySchema = z.strictObject({
  env: environmentSchema.optional().describe('Only incidents of this environment'),
  status: z.enum(INCIDENT_STATUSES).optional().describe('Only incidents in this state'),
  limit: z.coerce.number().int().min(1).max(500).default(50).describe('Most incidents returned'),
});

/** Body of ack and resolve: an optional note for the timeline. */
export const incidentNoteSchema = z
  .strictObject({
    note: z.string().trim().min(1).max(4096).optional().describe("Recorded in the incident's timeline"),
  })
  .default({});

const NO_INCIDENT = ['VIGIL_NOT_FOUND', 'no incident with this id.'] as const;

/** The episode an incident belongs to: one flag version's regression (as the guardian claims it). */
export function episodeKey(incident: Pick<Incident, 'env' | 'flag' | 'flagVersion'>): string {
  return `${incident.env}:${incident.flag}:${incident.flagVersion}`;
}

/**
 * Moves an incident to `acknowledged` or `resolved` with a timeline entry. Returns undefined when it
 * is already there (or past it): both are idempotent. A resolve of an open incident skips the ack.
 */
export function transition(
  incident: Incident,
  to: 'acknowledged' | 'resolved',
  by: string,
  at: string,
  note: string | undefined,
): Incident | undefined {
  if (incident.status === 'resolved' || incident.status === to) return undefined;
  const verb = to === 'acknowledged' ? 'Acknowledged' : 'Resolved';
  const entry: TimelineEntry = {
    at,
    kind: to,
    message: note === undefined ? `${verb} by ${by}` : `${verb} by ${by}: ${note}`,
    actor: by,
  };
  if (note !== undefined) entry.data = { note };
  const next: Incident = { ...incident, status: to, timeline: [...incident.timeline, entry] };
  if (to === 'acknowledged') {
    next.acknowledgedAt = at;
    next.acknowledgedBy = by;
  } else {
    next.resolvedAt = at;
    next.resolvedBy = by;
  }
  return next;
}

/**
 * Incidents the guardian opened, under `/api/v1/incidents`: list, read, acknowledge, resolve and the
 * postmortem draft. Writes go through the store (the guardian reads them there and tells the
 * integrations); incidents are not bound to one environment, so env-bound tokens cannot use them.
 */
export async function incidentRoutes(app: FastifyInstance, options: IncidentRouteOptions): Promise<void> {
  const { store, metrics, now } = options;
  const incident = async (id: string): Promise<Incident> => {
    const found = await store.getIncident(id);
    if (!found) throw new VigilError('VIGIL_NOT_FOUND', `no incident ${id}`);
    return found;
  };

  app.get(
    '/incidents',
    {
      config: { access: 'read' },
      schema: {
        tags: ['incidents'],
        summary: 'Incidents, newest first, optionally of one environment or status',
        description: 'Newest first by detection time.',
        querystring: doc(incidentQuerySchema),
        response: {
          200: reply('The incidents', {
            type: 'object',
            properties: { incidents: { type: 'array', items: ref('Incident') } },
          }),
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request) => {
      const { query } = parseRequest(request, { query: incidentQuerySchema });
      const incidents = await store.listIncidents({
        limit: query.limit,
        ...(query.env === undefined ? {} : { env: query.env }),
        ...(query.status === undefined ? {} : { status: query.status }),
      });
      return { incidents };
    },
  );

  app.get(
    '/incidents/:id',
    {
      config: { access: 'read' },
      schema: {
        tags: ['incidents'],
        summary: 'One incident with its timeline',
        params: doc(idParams),
        response: {
          200: reply('The incident', ref('Incident')),
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, NO_INCIDENT, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request) => {
      const { params } = parseRequest(request, { params: idParams });
      return incident(params.id);
    },
  );

  for (const [action, to] of [
    ['ack', 'acknowledged'],
    ['resolve', 'resolved'],
  ] as const) {
    app.post(
      `/incidents/:id/${action}`,
      {
        config: { access: 'ops' },
        schema: {
          tags: ['incidents'],
          summary:
            to === 'acknowledged'
              ? 'Acknowledge an incident (idempotent); stops its escalation'
              : 'Resolve an incident (idempotent); ends its episode and resolves it downstream',
          description:
            to === 'acknowledged'
              ? 'Sets `acknowledgedAt` and `acknowledgedBy` (the token name) and adds an `acknowledged` timeline ' +
                'entry; the guardian tells the integrations. On an acknowledged or resolved incident it changes nothing.'
              : 'Sets `resolvedAt` and `resolvedBy` and adds a `resolved` timeline entry (an open incident skips the ' +
                'acknowledgement); the guardian tells the integrations. The same flag version never opens a second ' +
                'incident. On a resolved incident it changes nothing.',
          params: doc(idParams),
          headers: requestHeaders('idempotency-key'),
          body: doc(incidentNoteSchema),
          response: {
            200: reply('The incident as stored', ref('Incident')),
            ...errors(
              'VIGIL_BAD_REQUEST',
              ...AUTH_ERRORS,
              NO_INCIDENT,
              ...WRITE_ERRORS,
              'VIGIL_STORE_UNAVAILABLE',
            ),
          },
        },
      },
      async (request) => {
        const { params, body } = parseRequest(request, { params: idParams, body: incidentNoteSchema });
        const by = principalOf(request).name;
        const at = new Date(now()).toISOString();
        const idem = Idempotency.of(request);
        const updated = await idempotent(
          store,
          idem,
          (record) => record.result as Incident,
          () =>
            store.updateIncident(
              params.id,
              (current) => transition(current, to, by, at, body.note),
              idem?.claim(200),
            ),
        );
        if (!updated) throw new VigilError('VIGIL_NOT_FOUND', `no incident ${params.id}`);
        if (updated.status === 'resolved') {
          // Idempotent, so a retried request also repairs a resolve whose episode mark was lost.
          await store.resolveEpisode(episodeKey(updated), updated.resolvedAt ?? at);
        }
        metrics.writes.inc({ action: `incident.${action}` });
        return updated;
      },
    );
  }

  app.get(
    '/incidents/:id/postmortem',
    {
      config: { access: 'read' },
      schema: {
        tags: ['incidents'],
        summary: "A Markdown draft of the incident's postmortem",
        description:
          'Summary, impact (each cohort against the control), timeline, time to detect, mitigate, acknowledge and ' +
          'resolve, and sections for people to complete (root cause, action items).',
        params: doc(idParams),
        response: {
          200: {
            description: 'The draft, as `text/markdown; charset=utf-8`',
            content: { 'text/markdown': { schema: { type: 'string' } } },
          },
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, NO_INCIDENT, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: idParams });
      const markdown = renderPostmortem(await incident(params.id), {
        now: now(),
        ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
      });
      return reply.type('text/markdown; charset=utf-8').send(markdown);
    },
  );
}
