import type { Severity } from '@vigil/proto';
import type { PagerDutyIntegration } from './config.js';
import type { IncidentEvent } from './events.js';
import { eventPhrase, incidentLinks, severityLabel, splitCohorts, truncate } from './format.js';
import { postJson } from './http.js';
import { boundedKey, type Notifier, type NotifierOptions, wantsEvent } from './notifier.js';

// PagerDuty Events API v2, as documented in PagerDuty/api-schema reference/events-v2/openapiv3.json and
// https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ — one alert per dedup_key;
// `trigger` opens or updates it, `acknowledge` and `resolve` act on it (and are dropped when PagerDuty
// has no open alert under that key, which is why the outbox keeps an incident's events in order).

/** Vigil severities as PagerDuty's `payload.severity`. */
export const PAGERDUTY_SEVERITY: Record<Severity, 'critical' | 'error' | 'warning'> = {
  sev1: 'critical',
  sev2: 'error',
  sev3: 'warning',
};

export interface PagerDutyLink {
  href: string;
  text?: string;
}

export interface PagerDutyTrigger {
  routing_key: string;
  event_action: 'trigger';
  dedup_key: string;
  payload: {
    summary: string;
    source: string;
    severity: 'critical' | 'error' | 'warning' | 'info';
    timestamp: string;
    component: string;
    group: string;
    class: string;
    custom_details: Record<string, unknown>;
  };
  client: string;
  client_url?: string;
  links?: PagerDutyLink[];
}

export interface PagerDutyUpdate {
  routing_key: string;
  event_action: 'acknowledge' | 'resolve';
  dedup_key: string;
}

export type PagerDutyEvent = PagerDutyTrigger | PagerDutyUpdate;

/** The dedup key of every event of one incident: PagerDuty keeps one alert per key. */
export function pagerDutyDedupKey(incidentId: string): string {
  return boundedKey('vigil-', incidentId, 255);
}

/** The Events API v2 body for an incident event (`opened` and `escalated` trigger; the rest update). */
export function pagerDutyEvent(
  event: IncidentEvent,
  integration: Pick<PagerDutyIntegration, 'routingKey' | 'source'>,
  options: NotifierOptions = {},
): PagerDutyEvent {
  const { incident } = event;
  const dedup_key = pagerDutyDedupKey(incident.id);
  if (event.type === 'acknowledged' || event.type === 'resolved') {
    return {
      routing_key: integration.routingKey,
      event_action: event.type === 'acknowledged' ? 'acknowledge' : 'resolve',
      dedup_key,
    };
  }
  const { control } = splitCohorts(incident);
  const prefix = event.type === 'escalated' ? 'not acknowledged, escalated: ' : '';
  const trigger: PagerDutyTrigger = {
    routing_key: integration.routingKey,
    event_action: 'trigger',
    dedup_key,
    payload: {
      summary: truncate(`[${severityLabel(incident)}] ${prefix}${incident.title}`, 1024),
      source: integration.source,
      severity: PAGERDUTY_SEVERITY[incident.severity],
      timestamp: event.at,
      component: incident.flag,
      group: incident.env,
      class: 'flag-regression',
      custom_details: {
        incident_id: incident.id,
        event: eventPhrase(event),
        environment: incident.env,
        flag: incident.flag,
        flag_version: incident.flagVersion,
        severity: incident.severity,
        status: incident.status,
        killed: incident.killed,
        summary: incident.summary,
        detected_at: incident.detectedAt,
        ...(incident.changedAt ? { changed_at: incident.changedAt } : {}),
        ...(incident.mitigatedAt ? { mitigated_at: incident.mitigatedAt } : {}),
        ...(control ? { control_variant: control.variant } : {}),
        ...(event.level ? { escalation_level: event.level } : {}),
        cohorts: incident.cohorts.map((c) => ({
          variant: c.variant,
          requests: c.requests,
          errors: c.errors,
          error_rate: c.errorRate,
          p99_latency_ms: c.p99LatencyMs,
        })),
      },
    },
    client: 'Vigil',
  };
  const links = incidentLinks(options.publicUrl, incident);
  if (options.publicUrl) trigger.client_url = options.publicUrl;
  if (links) {
    trigger.links = [
      { href: links.incident, text: 'Vigil incident' },
      { href: links.postmortem, text: 'Postmortem draft' },
    ];
  }
  return trigger;
}

/** Sends incident events to a PagerDuty service through its Events API v2 integration. */
export function createPagerDutyNotifier(
  integration: PagerDutyIntegration,
  options: NotifierOptions = {},
): Notifier {
  const url = `${integration.baseUrl.replace(/\/+$/, '')}/v2/enqueue`;
  return {
    name: integration.name,
    type: 'pagerduty',
    wants: (event) => wantsEvent(integration, event),
    key: (event) => pagerDutyDedupKey(event.incident.id),
    async send(event, context) {
      const body = JSON.stringify(pagerDutyEvent(event, integration, options));
      const response = await postJson(url, body, { timeoutMs: integration.timeoutMs, now: context.now });
      return { status: response.status };
    },
  };
}
