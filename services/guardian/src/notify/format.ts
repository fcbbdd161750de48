import { formatCount, formatLatency, formatRate, type Incident } from '@vigil/proto';
import { splitCohorts } from '@vigil/server';
import type { IncidentEvent } from './events.js';

// The helpers the postmortem draft shares live with it in the flag server, which serves it.
export { incidentLinks, severityLabel, splitCohorts } from '@vigil/server';

/** One line per treated cohort: its error rate against the control's, and p99. */
export function figureLines(incident: Incident): string[] {
  const { control, treated } = splitCohorts(incident);
  const lines = treated.map((c) => {
    const vs = control ? ` vs ${formatRate(control.errorRate)} in control \`${control.variant}\`` : '';
    return (
      `\`${c.variant}\`: ${formatRate(c.errorRate)} errors (${formatCount(c.errors)} of ` +
      `${formatCount(c.requests)})${vs}, p99 ${formatLatency(c.p99LatencyMs)}`
    );
  });
  return lines;
}

/** What happened, for a headline: `opened`, `escalated (level 2)`, `acknowledged by alice`. */
export function eventPhrase(event: IncidentEvent): string {
  const { incident } = event;
  switch (event.type) {
    case 'opened':
      return incident.killed ? 'opened, flag killed' : 'opened';
    case 'escalated':
      return event.level && event.level > 1 ? `escalated (level ${event.level})` : 'escalated';
    case 'acknowledged':
      return incident.acknowledgedBy ? `acknowledged by ${incident.acknowledgedBy}` : 'acknowledged';
    case 'resolved':
      return incident.resolvedBy ? `resolved by ${incident.resolvedBy}` : 'resolved';
  }
}

/** `text` cut to `max` characters (a trailing ellipsis counts as one). */
export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
