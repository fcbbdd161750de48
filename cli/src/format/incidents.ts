import type { Incident } from '@vigil/proto';
import type { IncidentAction } from '../api.js';
import { fields, table } from '../table.js';
import { relative, span, utc, when } from './common.js';
import { cohortTable } from './health.js';

/** `vigil incidents list`: newest first, one row each. */
export function formatIncidentList(incidents: readonly Incident[], now: number): string {
  if (incidents.length === 0) return 'No incidents.';
  return table(
    ['ID', 'SEV', 'STATUS', 'ENV', 'FLAG', 'DETECTED', 'TITLE'],
    incidents.map((i) => [i.id, i.severity, i.status, i.env, i.flag, relative(i.detectedAt, now), i.title]),
  );
}

/** `acknowledged 2030-03-01 12:04:00 UTC by alice (4m after detection)`. */
function milestone(at: string | undefined, by: string | undefined, detectedAt: string): string | undefined {
  if (at === undefined) return undefined;
  const after = Date.parse(at) - Date.parse(detectedAt);
  return `${utc(at)}${by ? ` by ${by}` : ''}${Number.isFinite(after) && after >= 0 ? ` (${span(after)} after detection)` : ''}`;
}

/** `vigil incidents show`: the facts, the cohorts at detection, then the timeline. */
export function formatIncident(incident: Incident, now: number): string {
  const lines = [
    `${incident.id} · ${incident.severity} · ${incident.status.toUpperCase()}`,
    fields([
      ['title', incident.title],
      [
        'flag',
        `${incident.flag} version ${incident.flagVersion} in ${incident.env}${incident.killed ? ' (killed by the guardian)' : ''}`,
      ],
      ['summary', incident.summary],
      ['changed', when(incident.changedAt, now)],
      ['detected', when(incident.detectedAt, now)],
      ['mitigated', milestone(incident.mitigatedAt, undefined, incident.detectedAt)],
      ['acknowledged', milestone(incident.acknowledgedAt, incident.acknowledgedBy, incident.detectedAt)],
      ['resolved', milestone(incident.resolvedAt, incident.resolvedBy, incident.detectedAt)],
    ]),
  ];
  if (incident.cohorts.length > 0) lines.push('', cohortTable(incident.cohorts, incident.controlVariant));
  if (incident.timeline.length > 0) {
    lines.push(
      '',
      'timeline',
      table(
        ['AT', 'KIND', 'WHAT'],
        incident.timeline.map((e) => [utc(e.at), e.kind, e.message]),
      )
        .split('\n')
        .map((line) => `  ${line}`)
        .join('\n'),
    );
  }
  return lines.join('\n');
}

/** `vigil incidents ack|resolve`: what changed, or that it was already so. */
export function formatIncidentAction(
  action: IncidentAction,
  before: Incident | undefined,
  after: Incident,
): string {
  const name = `${after.id} (${after.title})`;
  if (before !== undefined && before.status === after.status)
    return `${name} is already ${after.status}; nothing changed.`;
  if (action === 'ack') {
    return `Acknowledged ${name} as ${after.acknowledgedBy ?? 'you'}; its escalation stops.`;
  }
  const lines = [`Resolved ${name} as ${after.resolvedBy ?? 'you'}.`];
  if (after.killed) {
    lines.push(
      `Resolving does not revive ${after.flag}: once it is fixed, \`vigil revive ${after.flag}${
        after.env === 'production' ? '' : ` --env ${after.env}`
      } --reason "<why>"\`.`,
    );
  }
  return lines.join('\n');
}
