import type { Incident } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Guardian } from '../../src/guardian.js';
import { ENV, rolloutFlag, run, type Stack, split, startStack } from './harness.js';

const MINUTE = 60_000;

/** A stack with one incident opened (and killed) by a guardian whose sweeps run every tick. */
async function withIncident(): Promise<{ stack: Stack; guardian: Guardian; incident: Incident }> {
  const stack = await startStack();
  await stack.store.putFlag(ENV, rolloutFlag('checkout', 10), undefined, { actor: 'alice' });
  const guardian = stack.guardian({ incidentSweepMs: 50 });
  await run(
    stack,
    guardian,
    'checkout',
    60,
    split(10, 0.05, 0.005),
    async () => (await stack.incidents()).length > 0,
  );
  const [incident] = await stack.incidents();
  if (!incident) throw new Error('no incident opened');
  return { stack, guardian, incident };
}

const types = (stack: Stack) => [...stack.hook.deliveries.values()].map((d) => d.type);

describe('guardian: incident lifecycle', () => {
  let stack: Stack;
  afterEach(async () => {
    await stack?.close();
  });

  it('escalates an unacknowledged incident after its severity minutes, and stops once acknowledged', async () => {
    const opened = await withIncident();
    stack = opened.stack;
    const { guardian, incident } = opened;
    // sev2 escalates after 15 minutes without an acknowledgement.
    stack.clock.t = Date.parse(incident.detectedAt) + 15 * MINUTE - 1000;
    await guardian.tick();
    expect((await stack.store.getIncident(incident.id))!.timeline.some((e) => e.kind === 'escalation')).toBe(
      false,
    );
    stack.clock.advance(1000);
    await guardian.tick();
    await guardian.tick();
    let stored = (await stack.store.getIncident(incident.id))!;
    const escalations = stored.timeline.filter((e) => e.kind === 'escalation');
    expect(escalations).toHaveLength(1);
    expect(escalations[0]).toMatchObject({
      data: { level: 1 },
      message: expect.stringContaining('15 minutes'),
    });
    expect(types(stack)).toEqual(['incident.opened', 'incident.escalated']);

    const ack = await stack.request('POST', `/api/v1/incidents/${incident.id}/ack`, {
      body: { note: 'on it' },
    });
    expect(ack.statusCode).toBe(200);
    stack.clock.advance(30 * MINUTE);
    await guardian.tick();
    await guardian.tick();
    stored = (await stack.store.getIncident(incident.id))!;
    expect(stored.timeline.filter((e) => e.kind === 'escalation')).toHaveLength(1);
    expect(types(stack)).toEqual(['incident.opened', 'incident.escalated', 'incident.acknowledged']);
    expect(stored.notified).toEqual(['opened', 'escalated-1', 'acknowledged']);
  });

  it('escalates again after each further period, up to maxEscalations', async () => {
    stack = await startStack();
    await stack.store.putFlag(ENV, rolloutFlag('payments', 10, { guard: { severity: 'sev1' } }), undefined, {
      actor: 'alice',
    });
    const guardian = stack.guardian({ incidentSweepMs: 50, maxEscalations: 2 });
    await run(
      stack,
      guardian,
      'payments',
      60,
      split(10, 0.05, 0.005),
      async () => (await stack.incidents()).length > 0,
    );
    const [incident] = await stack.incidents();
    const detected = Date.parse(incident!.detectedAt);
    const levels = async () =>
      (await stack.store.getIncident(incident!.id))!.timeline
        .filter((e) => e.kind === 'escalation')
        .map((e) => e.data?.level);
    // sev1 escalates every 5 minutes.
    for (const [minutes, expected] of [
      [4, []],
      [5, [1]],
      [9, [1]],
      [10, [1, 2]],
      [60, [1, 2]],
    ] as const) {
      stack.clock.t = detected + minutes * MINUTE;
      await guardian.tick();
      expect(await levels(), `${minutes} min`).toEqual(expected);
    }
    await guardian.tick();
    expect(types(stack)).toEqual(['incident.opened', 'incident.escalated', 'incident.escalated']);
  });

  it('acknowledges and resolves through REST, idempotently, with timeline entries, and resolves downstream', async () => {
    const opened = await withIncident();
    stack = opened.stack;
    const { guardian, incident } = opened;
    const ops = await stack.token(['ops']);
    const reader = await stack.token(['read']);

    expect(
      (await stack.request('POST', `/api/v1/incidents/${incident.id}/ack`, { token: reader })).statusCode,
    ).toBe(403);
    stack.clock.advance(2 * MINUTE);
    const ack = await stack.request('POST', `/api/v1/incidents/${incident.id}/ack`, {
      token: ops,
      body: { note: 'looking' },
    });
    expect(ack.statusCode).toBe(200);
    expect(ack.json()).toMatchObject({
      status: 'acknowledged',
      acknowledgedBy: 'ops',
      acknowledgedAt: new Date(stack.clock.t).toISOString(),
    });
    // Again: nothing changes.
    const again = await stack.request('POST', `/api/v1/incidents/${incident.id}/ack`, { token: ops });
    expect(again.json()).toEqual(ack.json());

    stack.clock.advance(10 * MINUTE);
    const resolve = await stack.request('POST', `/api/v1/incidents/${incident.id}/resolve`, {
      token: ops,
      body: { note: 'bad config reverted' },
    });
    expect(resolve.statusCode).toBe(200);
    const resolved = resolve.json() as Incident;
    expect(resolved).toMatchObject({ status: 'resolved', resolvedBy: 'ops' });
    expect(resolved.timeline.filter((e) => e.kind === 'acknowledged')).toHaveLength(1);
    expect(resolved.timeline.at(-1)).toMatchObject({
      kind: 'resolved',
      actor: 'ops',
      message: 'Resolved by ops: bad config reverted',
    });
    const twice = await stack.request('POST', `/api/v1/incidents/${incident.id}/resolve`, { token: ops });
    expect(twice.json()).toEqual(resolved);
    expect(await stack.store.getEpisode(`${ENV}:checkout:${incident.flagVersion}`)).toEqual({
      incidentId: incident.id,
      resolvedAt: resolved.resolvedAt,
    });

    // The guardian sees the store's incident and tells the integrations, once each.
    await guardian.tick();
    await guardian.tick();
    await guardian.tick();
    expect(types(stack)).toEqual(['incident.opened', 'incident.acknowledged', 'incident.resolved']);
    expect(stack.hook.duplicates()).toBe(0);
    const resolvedDelivery = [...stack.hook.deliveries.values()].find((d) => d.type === 'incident.resolved')!;
    expect(resolvedDelivery.incident).toMatchObject({ status: 'resolved', resolvedBy: 'ops' });
    const stored = (await stack.store.getIncident(incident.id))!;
    expect(stored.timeline.filter((e) => e.kind === 'notification').map((e) => e.data?.event)).toEqual([
      'opened',
      'acknowledged',
      'resolved',
    ]);

    // Listing filters, reading, 404s.
    const list = await stack.request('GET', `/api/v1/incidents?env=${ENV}&status=resolved`, {
      token: reader,
    });
    expect((list.json() as { incidents: Incident[] }).incidents.map((i) => i.id)).toEqual([incident.id]);
    const none = await stack.request('GET', '/api/v1/incidents?status=open', { token: reader });
    expect(none.json()).toEqual({ incidents: [] });
    expect(
      (await stack.request('GET', `/api/v1/incidents/${incident.id}`, { token: reader })).json(),
    ).toEqual(stored);
    expect((await stack.request('GET', '/api/v1/incidents/inc_nope', { token: reader })).statusCode).toBe(
      404,
    );
    expect(
      (await stack.request('POST', '/api/v1/incidents/inc_nope/resolve', { token: ops })).statusCode,
    ).toBe(404);

    // The postmortem draft renders from the stored incident.
    const postmortem = await stack.request('GET', `/api/v1/incidents/${incident.id}/postmortem`, {
      token: reader,
    });
    expect(postmortem.statusCode).toBe(200);
    expect(postmortem.headers['content-type']).toMatch(/^text\/markdown/);
    const markdown = postmortem.body;
    expect(markdown).toMatch(/^# Postmortem: checkout \(production\)/);
    for (const heading of ['## Summary', '## Timeline', '## Impact', '## Root cause', '## Action items']) {
      expect(markdown).toContain(heading);
    }
    expect(markdown).toContain('Resolved by ops: bad config reverted');
  });

  it('delivers an incident opened while the receiver is down once it answers again', async () => {
    const opened = await withIncident();
    stack = opened.stack;
    const { guardian } = opened;
    expect(types(stack)).toEqual(['incident.opened']);
    // A second flag regresses while the webhook fails: retried with backoff, delivered once.
    await stack.store.putFlag(ENV, rolloutFlag('search', 10), undefined, { actor: 'alice' });
    stack.hook.receiver.faults.push({ kind: 'status', status: 500 }, { kind: 'status', status: 503 });
    await run(
      stack,
      guardian,
      'search',
      60,
      split(10, 0.05, 0.005),
      async () => (await stack.incidents()).length > 1,
    );
    for (let i = 0; i < 30 && types(stack).length < 2; i++) {
      stack.clock.advance(5000);
      await guardian.tick();
    }
    expect(types(stack)).toEqual(['incident.opened', 'incident.opened']);
    expect(stack.hook.receiver.attempts.length).toBe(4);
    expect(stack.hook.duplicates()).toBe(0);
    const search = (await stack.incidents()).find((i) => i.flag === 'search')!;
    const entry = search.timeline.find((e) => e.kind === 'notification');
    expect(entry?.message).toMatch(/after 3 attempts/);
  });
});
