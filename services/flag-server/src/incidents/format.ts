import type { CohortFigures, Incident } from '@vigil/proto';

// Formatting shared by the postmortem draft (served by the flag server) and the guardian's notifiers;
// the figures themselves (rates, counts, latencies) are written by @vigil/proto's formatters.

/**
 * The control cohort's variant: the incident's `controlVariant`, else what the `detection` timeline
 * entry names in `data.controlVariant` (the flag's `offVariant`, which the guardian knows when it
 * decides), else a cohort named `off`.
 */
export function controlVariantOf(incident: Incident): string | undefined {
  if (
    incident.controlVariant !== undefined &&
    incident.cohorts.some((c) => c.variant === incident.controlVariant)
  )
    return incident.controlVariant;
  for (const entry of incident.timeline) {
    const named = entry.kind === 'detection' ? entry.data?.controlVariant : undefined;
    if (typeof named === 'string' && incident.cohorts.some((c) => c.variant === named)) return named;
  }
  return incident.cohorts.some((c) => c.variant === 'off') ? 'off' : undefined;
}

/** The incident's cohorts split into the control and the others (the ones the flag turned on). */
export function splitCohorts(incident: Incident): { control?: CohortFigures; treated: CohortFigures[] } {
  const controlVariant = controlVariantOf(incident);
  const control = incident.cohorts.find((c) => c.variant === controlVariant);
  const treated = incident.cohorts.filter((c) => c !== control);
  return control ? { control, treated } : { treated };
}

/** `253000` → `4 min 13 s`; `3723000` → `1 h 2 min 3 s`; `850` → `850 ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0 s';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let seconds = Math.round(ms / 1000);
  const days = Math.floor(seconds / 86_400);
  seconds -= days * 86_400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts: string[] = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  if (seconds || parts.length === 0) parts.push(`${seconds} s`);
  return parts.join(' ');
}

/** `SEV1` */
export function severityLabel(incident: Incident): string {
  return incident.severity.toUpperCase();
}

/** Links into Vigil's API for the incident, when the public URL is configured. */
export function incidentLinks(
  publicUrl: string | undefined,
  incident: Incident,
): { incident: string; postmortem: string } | undefined {
  if (!publicUrl) return undefined;
  const base = `${publicUrl}/api/v1/incidents/${encodeURIComponent(incident.id)}`;
  return { incident: base, postmortem: `${base}/postmortem` };
}
