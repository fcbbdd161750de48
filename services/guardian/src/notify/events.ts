import { type Incident, incidentSchema } from '@vigil/proto';
import { z } from 'zod';

/** What can happen to an incident that the outside world hears about, in lifecycle order. */
export const INCIDENT_EVENT_TYPES = ['opened', 'escalated', 'acknowledged', 'resolved'] as const;
export type IncidentEventType = (typeof INCIDENT_EVENT_TYPES)[number];

/**
 * One incident event handed to the outbox: the incident as it stood when the event happened.
 * `level` numbers repeated escalations of one incident (1, 2, ...); only `escalated` carries it.
 */
export const incidentEventSchema = z
  .strictObject({
    type: z.enum(INCIDENT_EVENT_TYPES),
    incident: incidentSchema,
    /** When the event happened (ISO 8601). */
    at: z.iso.datetime(),
    level: z.int().min(1).max(999).optional(),
  })
  .refine((event) => event.level === undefined || event.type === 'escalated', {
    message: 'only an escalated event has a level',
    path: ['level'],
  });
export type IncidentEvent = z.infer<typeof incidentEventSchema>;

/**
 * Builds an event for `incident`, taking its time from the incident where the incident records it
 * (detection, acknowledgement, resolution) and from `now` otherwise.
 */
export function incidentEvent(
  type: IncidentEventType,
  incident: Incident,
  options: { at?: string; level?: number; now?: number } = {},
): IncidentEvent {
  const now = new Date(options.now ?? Date.now()).toISOString();
  const recorded =
    type === 'opened'
      ? incident.detectedAt
      : type === 'acknowledged'
        ? incident.acknowledgedAt
        : type === 'resolved'
          ? incident.resolvedAt
          : undefined;
  const event: IncidentEvent = { type, incident, at: options.at ?? recorded ?? now };
  if (type === 'escalated') event.level = options.level ?? 1;
  return incidentEventSchema.parse(event);
}

/** The event's step in its incident's life, unique per incident: `opened`, `escalated-2`, `resolved`. */
export function eventStage(event: Pick<IncidentEvent, 'type' | 'level'>): string {
  return event.type === 'escalated' ? `escalated-${event.level ?? 1}` : event.type;
}

/**
 * The order in which an incident's events must reach an integration: PagerDuty drops an acknowledge
 * for an alert it has not seen, so a resolve overtaking its trigger would leave a page open forever.
 */
export function eventRank(event: Pick<IncidentEvent, 'type' | 'level'>): number {
  switch (event.type) {
    case 'opened':
      return 0;
    case 'escalated':
      return event.level ?? 1;
    case 'acknowledged':
      return 1000;
    case 'resolved':
      return 1001;
  }
}
