import { escapeBlock, escapeInline } from '@vigil/server';
import type { IncidentIoIntegration } from './config.js';
import type { IncidentEvent } from './events.js';
import { eventPhrase, figureLines, incidentLinks, severityLabel, truncate } from './format.js';
import { DeliveryError, postJson } from './http.js';
import { boundedKey, type Notifier, type NotifierOptions, wantsEvent } from './notifier.js';

// incident.io API, Incidents V2 (https://docs.incident.io/api-reference/incidents-v2/create and
// .../edit): `POST /v2/incidents` creates an incident, de-duplicated by `idempotency_key`
// (required with `severity_id` and `visibility`); `POST /v2/incidents/{id}/actions/edit` changes the
// given fields only, with a required `notify_incident_channel`. The edit endpoint can only move an
// incident between active statuses, so resolution sets a configured active status (if any) and
// says "resolved" in the summary.

export interface IncidentIoCreate {
  idempotency_key: string;
  name: string;
  summary: string;
  severity_id: string;
  visibility: 'public' | 'private';
  mode: 'standard' | 'test' | 'tutorial';
  incident_type_id?: string;
}

export interface IncidentIoEdit {
  incident: {
    summary: string;
    severity_id: string;
    incident_status_id?: string;
  };
  notify_incident_channel: boolean;
}

type Settings = Pick<
  IncidentIoIntegration,
  'severityIds' | 'visibility' | 'mode' | 'incidentTypeId' | 'statusIds' | 'notifyIncidentChannel'
>;

/** The idempotency key of the one incident.io incident a Vigil incident maps to. */
export function incidentIoIdempotencyKey(incidentId: string): string {
  return boundedKey('vigil-', incidentId, 200);
}

/** The `POST /v2/incidents` body. */
export function incidentIoCreateBody(
  event: IncidentEvent,
  settings: Settings,
  options: NotifierOptions = {},
): IncidentIoCreate {
  const { incident } = event;
  const body: IncidentIoCreate = {
    idempotency_key: incidentIoIdempotencyKey(incident.id),
    name: truncate(incident.title, 250),
    summary: incidentIoSummary(event, options),
    severity_id: settings.severityIds[incident.severity],
    visibility: settings.visibility,
    mode: settings.mode,
  };
  if (settings.incidentTypeId) body.incident_type_id = settings.incidentTypeId;
  return body;
}

/** The `POST /v2/incidents/{id}/actions/edit` body for an event after `opened`. */
export function incidentIoEditBody(
  event: IncidentEvent,
  settings: Settings,
  options: NotifierOptions = {},
): IncidentIoEdit {
  const edit: IncidentIoEdit = {
    incident: {
      summary: incidentIoSummary(event, options),
      severity_id: settings.severityIds[event.incident.severity],
    },
    notify_incident_channel: settings.notifyIncidentChannel,
  };
  const status =
    event.type === 'acknowledged'
      ? settings.statusIds.acknowledged
      : event.type === 'resolved'
        ? settings.statusIds.resolved
        : undefined;
  if (status) edit.incident.incident_status_id = status;
  return edit;
}

/**
 * The incident's summary as incident.io shows it: what Vigil saw, and the latest event. incident.io
 * renders it as Markdown, so free text (the summary, who acknowledged or resolved) is escaped and
 * cannot turn into a link, an image or a heading; `name` is plain text and stays as it is.
 */
export function incidentIoSummary(event: IncidentEvent, options: NotifierOptions = {}): string {
  const { incident } = event;
  const lines = [
    markdownSummary(incident.summary),
    '',
    `${severityLabel(incident)} on flag \`${incident.flag}\` (version ${incident.flagVersion}) in ` +
      `\`${incident.env}\`; ${incident.killed ? 'the guardian killed the flag' : 'the flag was not killed'}.`,
    ...figureLines(incident).map((line) => `- ${line}`),
  ];
  if (event.type !== 'opened') lines.push('', `Vigil: ${escapeInline(eventPhrase(event))} at ${event.at}.`);
  const links = incidentLinks(options.publicUrl, incident);
  if (links) lines.push('', `Vigil incident: ${links.incident}`, `Postmortem draft: ${links.postmortem}`);
  return truncate(lines.join('\n'), 10_000);
}

/**
 * Free text as Markdown that shows as written: nothing in it can open a link, an image, HTML, a heading
 * or a list. Code spans stay (the guardian's summaries quote flag and variant keys in them): text in a
 * code span is literal, so a backtick cannot smuggle markup in.
 */
function markdownSummary(text: string): string {
  return escapeBlock(text).replace(/(?<!\\)\\`/g, '`');
}

/**
 * Opens one incident.io incident per Vigil incident and edits it on later events. A later event
 * whose incident.io id is unknown (the outbox restarted, or `opened` failed for good) creates the
 * incident first with the same idempotency key, which incident.io de-duplicates.
 */
export function createIncidentIoNotifier(
  integration: IncidentIoIntegration,
  options: NotifierOptions = {},
): Notifier {
  const base = integration.baseUrl.replace(/\/+$/, '');
  const headers = { authorization: `Bearer ${integration.apiKey}` };
  const post = (path: string, body: unknown, now: number) =>
    postJson(`${base}${path}`, JSON.stringify(body), { headers, timeoutMs: integration.timeoutMs, now });
  return {
    name: integration.name,
    type: 'incident-io',
    wants: (event) => wantsEvent(integration, event),
    key: (event) => incidentIoIdempotencyKey(event.incident.id),
    async send(event, context) {
      let ref = context.ref;
      if (event.type === 'opened' || !ref) {
        const created = await post(
          '/v2/incidents',
          incidentIoCreateBody(event, integration, options),
          context.now,
        );
        ref = incidentIdOf(created.body);
        if (event.type === 'opened') return { status: created.status, ref };
      }
      const edited = await post(
        `/v2/incidents/${encodeURIComponent(ref)}/actions/edit`,
        incidentIoEditBody(event, integration, options),
        context.now,
      );
      return { status: edited.status, ref };
    },
  };
}

function incidentIdOf(body: string): string {
  let id: unknown;
  try {
    id = (JSON.parse(body) as { incident?: { id?: unknown } }).incident?.id;
  } catch {
    id = undefined;
  }
  if (typeof id !== 'string' || id === '') {
    throw new DeliveryError('incident.io answered without an incident id', { retryable: true });
  }
  return id;
}
