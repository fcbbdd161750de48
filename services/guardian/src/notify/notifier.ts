import { createHash } from 'node:crypto';
import type { IntegrationType, NotifyConfig, ResolvedIntegration } from './config.js';
import type { IncidentEvent } from './events.js';
import { createIncidentIoNotifier } from './incident-io.js';
import { createPagerDutyNotifier } from './pagerduty.js';
import { createSlackNotifier } from './slack.js';
import { createWebhookNotifier } from './webhook.js';

/** What a notifier knows about the attempt it is making. */
export interface DeliveryContext {
  /** The outbox item's id: one per (integration, incident, event), stable across attempts and restarts. */
  deliveryId: string;
  /** The integration's idempotency/dedup key for this event (`Notifier.key`). */
  key: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** Epoch ms on the outbox's clock. */
  now: number;
  /** What the service called this incident when an earlier event reached it (incident.io's id). */
  ref?: string;
}

export interface SendResult {
  /** The final HTTP status. */
  status: number;
  /** The service's own id for the incident, when it has one, for later events to address it. */
  ref?: string;
}

/**
 * Turns incident events into one service's requests. `send` resolves on success and rejects with a
 * `DeliveryError` that says whether retrying can help; the outbox does the retrying.
 */
export interface Notifier {
  readonly name: string;
  readonly type: IntegrationType;
  /** Whether this integration hears about the event (its configured `events` and `severities`). */
  wants(event: IncidentEvent): boolean;
  /** The idempotency/dedup key the service sees for this event. */
  key(event: IncidentEvent, deliveryId: string): string;
  send(event: IncidentEvent, context: DeliveryContext): Promise<SendResult>;
}

/** Options every notifier takes besides its integration's settings. */
export interface NotifierOptions {
  /** Vigil's public URL, for links back to the incident. */
  publicUrl?: string;
}

/** One notifier per enabled integration of a resolved `notify` configuration. */
export function createNotifiers(config: NotifyConfig): Notifier[] {
  const options: NotifierOptions = config.publicUrl ? { publicUrl: config.publicUrl } : {};
  return config.integrations.map((integration) => createNotifier(integration, options));
}

/** The notifier for one integration. */
export function createNotifier(integration: ResolvedIntegration, options: NotifierOptions = {}): Notifier {
  switch (integration.type) {
    case 'pagerduty':
      return createPagerDutyNotifier(integration, options);
    case 'incident-io':
      return createIncidentIoNotifier(integration, options);
    case 'slack':
      return createSlackNotifier(integration, options);
    case 'webhook':
      return createWebhookNotifier(integration, options);
  }
}

/** The configured `events`/`severities` filter shared by every notifier. */
export function wantsEvent(
  integration: Pick<ResolvedIntegration, 'events' | 'severities'>,
  event: IncidentEvent,
): boolean {
  return integration.events.includes(event.type) && integration.severities.includes(event.incident.severity);
}

/** `prefix + id`, or `prefix + sha256(id)` when that would exceed `max` characters. */
export function boundedKey(prefix: string, id: string, max: number): string {
  const key = prefix + id;
  return key.length <= max ? key : prefix + createHash('sha256').update(id).digest('hex').slice(0, 40);
}
