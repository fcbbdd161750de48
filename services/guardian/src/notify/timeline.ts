import type { Incident, TimelineEntry } from '@vigil/proto';
import type { Delivery, DeliveryFailure } from './outbox.js';

const NAMES: Record<Delivery['integrationType'], string> = {
  pagerduty: 'PagerDuty',
  'incident-io': 'incident.io',
  slack: 'Slack',
  webhook: 'webhook',
};

/**
 * The `notification` timeline entry for a delivery (from `onDelivered`). Its `data.ref` is how a later
 * event finds the service's own incident (incident.io's id) after a restart, so append it as is.
 * `data.deliveryId` is the same on a repeated callback: skip an entry whose delivery is already there.
 */
export function notificationTimelineEntry(delivery: Delivery): TimelineEntry {
  const data: Record<string, unknown> = {
    integration: delivery.integration,
    integrationType: delivery.integrationType,
    event: delivery.stage,
    deliveryId: delivery.id,
    key: delivery.key,
    attempts: delivery.attempts,
    status: delivery.status,
  };
  if (delivery.ref) data.ref = delivery.ref;
  return {
    at: new Date(delivery.at).toISOString(),
    kind: 'notification',
    message:
      `${NAMES[delivery.integrationType]} (${delivery.integration}) notified: ${delivery.stage}` +
      (delivery.attempts > 1 ? ` (after ${delivery.attempts} attempts)` : ''),
    actor: 'guardian',
    data,
  };
}

/** The `notification_failed` timeline entry for a delivery that failed for good (from `onFailed`). */
export function notificationFailedTimelineEntry(failure: DeliveryFailure): TimelineEntry {
  const data: Record<string, unknown> = {
    integration: failure.integration,
    integrationType: failure.integrationType,
    event: failure.stage,
    deliveryId: failure.id,
    key: failure.key,
    attempts: failure.attempts,
    error: failure.error,
  };
  if (failure.status !== undefined) data.status = failure.status;
  return {
    at: new Date(failure.at).toISOString(),
    kind: 'notification_failed',
    message: `${NAMES[failure.integrationType]} (${failure.integration}) not notified of ${failure.stage}: ${failure.error}`,
    actor: 'guardian',
    data,
  };
}

/** The service's id for `incident` recorded by an earlier `notification` entry of `integration`. */
export function refFromTimeline(incident: Incident, integration: string): string | undefined {
  for (let i = incident.timeline.length - 1; i >= 0; i--) {
    const entry = incident.timeline[i];
    if (entry?.kind !== 'notification' || entry.data?.integration !== integration) continue;
    if (typeof entry.data.ref === 'string' && entry.data.ref !== '') return entry.data.ref;
  }
  return undefined;
}

/** Whether the timeline already records this delivery (callbacks are at-least-once). */
export function hasDeliveryEntry(incident: Incident, deliveryId: string): boolean {
  return incident.timeline.some(
    (entry) =>
      (entry.kind === 'notification' || entry.kind === 'notification_failed') &&
      entry.data?.deliveryId === deliveryId,
  );
}
