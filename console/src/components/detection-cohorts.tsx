import type { CohortFigures } from '@vigil/proto';
import { pct } from '../lib/format.js';

const msOrDash = (v: number | null | undefined) =>
  v === null || v === undefined ? '—' : `${Math.round(v)} ms`;

/** Cohort figures (requests, errors, error rate, p50/p95/p99), the control marked: an incident's at detection. */
export function DetectionCohorts({
  cohorts,
  controlVariant,
  caption,
  testId,
}: {
  cohorts: readonly CohortFigures[];
  controlVariant?: string | undefined;
  caption: string;
  testId?: string;
}) {
  return (
    <table className="table" data-testid={testId}>
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Variant</th>
          <th scope="col">Requests</th>
          <th scope="col">Errors</th>
          <th scope="col">Error rate</th>
          <th scope="col">p50</th>
          <th scope="col">p95</th>
          <th scope="col">p99</th>
        </tr>
      </thead>
      <tbody>
        {cohorts.map((c) => (
          <tr key={c.variant}>
            <th scope="row" className="mono">
              {c.variant}
              {c.variant === controlVariant ? ' (control)' : ''}
            </th>
            <td>{c.requests}</td>
            <td>{c.errors}</td>
            <td>{pct(c.errorRate)}</td>
            <td>{msOrDash(c.p50LatencyMs)}</td>
            <td>{msOrDash(c.p95LatencyMs)}</td>
            <td>{msOrDash(c.p99LatencyMs)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
