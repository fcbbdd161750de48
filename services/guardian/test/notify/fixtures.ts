import { type Incident, incidentSchema } from '@vigil/proto';

export const T0 = Date.parse('2030-03-01T12:00:00.000Z');

export const iso = (ms: number) => new Date(ms).toISOString();

/** A sev1 regression of `checkout.new-flow`, killed 3 s after detection, 42 s after the change. */
export function exampleIncident(overrides: Partial<Incident> = {}): Incident {
  const changedAt = T0 - 42_000;
  return incidentSchema.parse({
    id: 'inc_01HZX4',
    env: 'production',
    flag: 'checkout.new-flow',
    flagVersion: 17,
    severity: 'sev1',
    status: 'open',
    title: 'checkout.new-flow: error rate 5.00% vs 0.50% in control',
    summary: 'Variant `on` of checkout.new-flow fails 10x more requests than the control.',
    killed: true,
    cohorts: [
      { variant: 'on', requests: 12_000, errors: 600, errorRate: 0.05, p99LatencyMs: 850 },
      { variant: 'off', requests: 11_800, errors: 59, errorRate: 0.005, p99LatencyMs: 310 },
    ],
    changedAt: iso(changedAt),
    detectedAt: iso(T0),
    mitigatedAt: iso(T0 + 3_000),
    timeline: [
      { at: iso(changedAt), kind: 'change', message: 'Rollout raised to 20%', actor: 'alice' },
      {
        at: iso(T0),
        kind: 'detection',
        message: 'Error rate 5.00% vs 0.50% in control (SPRT, 12,000 samples)',
        actor: 'guardian',
        data: { controlVariant: 'off' },
      },
      { at: iso(T0 + 3_000), kind: 'kill', message: 'Kill switch flipped', actor: 'guardian' },
    ],
    ...overrides,
  });
}

/** The incident acknowledged (by bob, 5 min in) and resolved (by carol, 47 min in). */
export function lifecycle(base: Incident = exampleIncident()) {
  const acknowledged: Incident = {
    ...base,
    status: 'acknowledged',
    acknowledgedAt: iso(T0 + 300_000),
    acknowledgedBy: 'bob',
    timeline: [
      ...base.timeline,
      { at: iso(T0 + 240_000), kind: 'escalation', message: 'Not acknowledged in 4 min; escalated' },
      { at: iso(T0 + 300_000), kind: 'acknowledged', message: 'Looking into it', actor: 'bob' },
    ],
  };
  const resolved: Incident = {
    ...acknowledged,
    status: 'resolved',
    resolvedAt: iso(T0 + 2_820_000),
    resolvedBy: 'carol',
    timeline: [
      ...acknowledged.timeline,
      {
        at: iso(T0 + 2_820_000),
        kind: 'resolved',
        message: 'Fix deployed; flag stays killed',
        actor: 'carol',
      },
    ],
  };
  return { opened: base, acknowledged, resolved };
}
