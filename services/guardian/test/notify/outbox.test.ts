import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '@vigil/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { incidentEvent } from '../../src/notify/events.js';
import { FAILED_NOT_BEFORE } from '../../src/notify/outbox.js';
import { exampleIncident, iso, lifecycle, T0 } from './fixtures.js';
import { fail429, fail500, hang, reset } from './receivers.js';
import { counterValue, drain, makeOutbox, startWorld, type World } from './world.js';

let world: World;
let dataDir: string;
let store: EmbeddedStore;

beforeEach(async () => {
  world = await startWorld();
  dataDir = await mkdtemp(join(tmpdir(), 'vigil-outbox-'));
  store = new EmbeddedStore({ dataDir });
  await store.start();
});

afterEach(async () => {
  await store.close().catch(() => {});
  await world.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** Enqueues the four events of one episode, all at once (the harshest order for the outbox). */
async function enqueueEpisode(outbox: ReturnType<typeof makeOutbox>['outbox']) {
  const { opened, acknowledged, resolved } = lifecycle();
  await outbox.enqueue(incidentEvent('opened', opened));
  await outbox.enqueue(incidentEvent('escalated', opened, { at: iso(T0 + 240_000) }));
  await outbox.enqueue(incidentEvent('acknowledged', acknowledged));
  await outbox.enqueue(incidentEvent('resolved', resolved));
  return { opened, acknowledged, resolved };
}

describe('notification outbox', () => {
  it('delivers every event of an episode exactly once to each service through a 500, a 429 and a lost connection', async () => {
    const { pd, iio, slack, hook, clock } = world;
    pd.receiver.faults = [fail500, fail429(7), reset];
    iio.receiver.faults = [fail500, fail429(7), hang];
    slack.receiver.faults = [fail500, fail429(7), reset];
    hook.receiver.faults = [fail500, fail429(7), hang];
    const { outbox, seen, registry } = makeOutbox(world, store);

    const { opened } = await enqueueEpisode(outbox);
    // The incident step that enqueued `opened` ran again (e.g. after a crash): nothing new is written.
    await outbox.enqueue(incidentEvent('opened', opened));
    expect(await outbox.pending(100)).toHaveLength(16);

    // Pass 1: every service answers 500; the later events wait behind `opened`.
    expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 0, retried: 4, failed: 0, waiting: 12 });
    let opens = (await outbox.pending(100)).filter((item) => item.id.endsWith(':opened'));
    expect(opens).toHaveLength(4);
    for (const item of opens) {
      expect(item.attempts).toBe(1);
      expect(item.lastError).toMatch(/^HTTP 500/);
      expect(item.notBefore).toBe(clock.t + 500); // full jitter: 0.5 × 1 s
    }
    // Nothing is due until then.
    expect(await outbox.deliverDue(clock.t + 499)).toEqual({
      delivered: 0,
      retried: 0,
      failed: 0,
      waiting: 0,
    });

    // Pass 2: 429 with Retry-After: 7 — the next attempt waits exactly 7 s.
    clock.t += 500;
    expect(await outbox.deliverDue(clock.t)).toMatchObject({ retried: 4, delivered: 0 });
    opens = (await outbox.pending(100)).filter((item) => item.id.endsWith(':opened'));
    for (const item of opens) {
      expect(item.attempts).toBe(2);
      expect(item.lastError).toMatch(/^HTTP 429/);
      expect(item.notBefore).toBe(clock.t + 7000);
    }

    // Pass 3: connections reset (PagerDuty, Slack) or no answer in time (incident.io and the
    // webhook, which did process the request).
    clock.t += 7000;
    expect(await outbox.deliverDue(clock.t)).toMatchObject({ retried: 4, delivered: 0 });
    opens = (await outbox.pending(100)).filter((item) => item.id.endsWith(':opened'));
    for (const item of opens) {
      expect(item.attempts).toBe(3);
      expect(item.lastError).toMatch(/^(network error|no answer within 300 ms)/);
      expect(item.notBefore).toBe(clock.t + 2000); // 0.5 × 4 s
    }

    // Pass 4: everything goes through, each incident's events in order.
    clock.t += 2000;
    expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 16, retried: 0, failed: 0, waiting: 0 });
    expect(await outbox.pending(100)).toEqual([]);

    for (const receiver of world.receivers) {
      expect(receiver.rejected.map((r) => r.reason)).toEqual([]);
      expect(receiver.attempts).toHaveLength(7); // 3 failed tries + 4 events
    }

    // PagerDuty: one alert, triggered, re-triggered on escalation, acknowledged, resolved; nothing dropped.
    expect([...pd.alerts.values()]).toEqual([
      expect.objectContaining({
        dedupKey: 'vigil-inc_01HZX4',
        status: 'resolved',
        severity: 'critical',
        actions: ['trigger', 'trigger', 'acknowledge', 'resolve'],
      }),
    ]);
    expect(pd.dropped).toEqual([]);

    // incident.io: the create that timed out had gone through; its retry was de-duplicated.
    expect(iio.incidents.size).toBe(1);
    expect(iio.creates()).toBe(2);
    const [incidentIo] = [...iio.incidents.values()];
    expect(incidentIo?.edits.map((e) => e.incident.incident_status_id)).toEqual([
      undefined,
      'STATUS-FIXING',
      'STATUS-MONITORING',
    ]);
    expect(incidentIo?.statusId).toBe('STATUS-MONITORING');
    expect(incidentIo?.summary).toContain('resolved by carol');

    // Slack: one message per event, in order.
    expect(
      [...slack.messages.values()].map((m) => m.blocks[0]?.type === 'header' && m.blocks[0].text.text),
    ).toEqual([
      expect.stringContaining('Incident opened, flag killed'),
      expect.stringContaining('Incident escalated'),
      expect.stringContaining('Incident acknowledged by bob'),
      expect.stringContaining('Incident resolved by carol'),
    ]);

    // Webhook: one delivery per event; the retry of the unanswered one was a duplicate.
    expect([...hook.deliveries.values()].map((d) => d.type)).toEqual([
      'incident.opened',
      'incident.escalated',
      'incident.acknowledged',
      'incident.resolved',
    ]);
    expect(hook.duplicates()).toBe(1);

    // Callbacks: 16 deliveries, 12 retries, no failure.
    expect(new Set(seen.delivered.map((d) => d.id)).size).toBe(16);
    expect(seen.delivered.filter((d) => d.stage === 'opened').every((d) => d.attempts === 4)).toBe(true);
    expect(seen.retries).toHaveLength(12);
    expect(seen.failed).toEqual([]);
    expect(seen.delivered.find((d) => d.integration === 'incident-io' && d.stage === 'opened')?.ref).toBe(
      incidentIo?.id,
    );

    for (const integration of ['pagerduty', 'incident-io', 'slack', 'webhook']) {
      expect(await counterValue(registry, 'vigil_notifications_sent_total', integration)).toBe(4);
      expect(await counterValue(registry, 'vigil_notification_retries_total', integration)).toBe(3);
      expect(await counterValue(registry, 'vigil_notifications_failed_total', integration)).toBe(0);
    }
  });

  it('a resolve never overtakes its trigger', async () => {
    const { pd, clock } = world;
    pd.receiver.faults = [fail500, fail500, fail500];
    const { outbox } = makeOutbox(world, store, {
      notifiers: world.notifiers.filter((n) => n.type === 'pagerduty'),
    });
    const { resolved } = lifecycle();
    await outbox.enqueue(incidentEvent('opened', exampleIncident()));
    expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 0, retried: 1, failed: 0, waiting: 0 });
    const [trigger] = await outbox.pending();
    // The incident is resolved while its trigger waits for a retry: the resolve is due, the trigger is not.
    await outbox.enqueue(incidentEvent('resolved', resolved));
    expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 0, retried: 0, failed: 0, waiting: 1 });
    // It now waits for the trigger's next attempt instead of being read on every pass.
    expect((await outbox.pending()).map((item) => item.notBefore)).toEqual([
      trigger!.notBefore,
      trigger!.notBefore,
    ]);
    // Enqueued together, they stay in order through more failures.
    for (let i = 0; i < 2; i++) {
      clock.t += 60_000;
      expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 0, retried: 1, failed: 0, waiting: 1 });
    }
    expect(pd.receiver.attempts.map((a) => JSON.parse(a.body).event_action)).toEqual([
      'trigger',
      'trigger',
      'trigger',
    ]);
    clock.t += 60_000;
    expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 2, retried: 0, failed: 0, waiting: 0 });
    expect(pd.receiver.attempts.map((a) => JSON.parse(a.body).event_action).slice(3)).toEqual([
      'trigger',
      'resolve',
    ]);
    expect(pd.dropped).toEqual([]);
    expect([...pd.alerts.values()][0]?.status).toBe('resolved');
  });

  it('fails a delivery for good on a 4xx other than 408 or 429, keeps it for inspection, and reports it', async () => {
    const { hook, clock } = world;
    hook.receiver.faults = [
      { kind: 'status', status: 408 },
      { kind: 'status', status: 404, body: 'no such hook' },
    ];
    const { outbox, seen, registry } = makeOutbox(world, store, {
      notifiers: world.notifiers.filter((n) => n.type === 'webhook'),
    });
    const { opened, resolved } = lifecycle();
    seen.incidents.set(opened.id, opened);
    const [openedId] = await outbox.enqueue(incidentEvent('opened', opened));
    await outbox.enqueue(incidentEvent('resolved', resolved));

    expect(await outbox.deliverDue(clock.t)).toMatchObject({ retried: 1, waiting: 1 }); // 408 is retried
    clock.t += 60_000;
    // 404 fails `opened` for good; `resolved` no longer waits for it.
    expect(await outbox.deliverDue(clock.t)).toEqual({ delivered: 1, retried: 0, failed: 1, waiting: 0 });

    expect(seen.failed).toEqual([
      expect.objectContaining({
        id: openedId,
        integration: 'webhook',
        stage: 'opened',
        status: 404,
        attempts: 2,
      }),
    ]);
    expect(seen.failed[0]?.error).toMatch(/^HTTP 404: no such hook/);
    const failed = await outbox.failed();
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ id: openedId, attempts: 2, notBefore: FAILED_NOT_BEFORE });
    expect(await outbox.pending()).toEqual([]);
    expect(await counterValue(registry, 'vigil_notifications_failed_total', 'webhook')).toBe(1);
    // The orchestration's timeline got a `notification_failed` entry (and a `notification` for the resolve).
    expect(
      seen.incidents
        .get(opened.id)
        ?.timeline.slice(-2)
        .map((e) => e.kind),
    ).toEqual(['notification_failed', 'notification']);
    // A failed item is never due again...
    expect(await outbox.deliverDue(clock.t + 365 * 86_400_000)).toMatchObject({ delivered: 0, failed: 0 });
    // ...until someone retries it.
    expect(await outbox.retry(openedId!)).toBe(true);
    expect(await outbox.deliverDue(clock.t)).toMatchObject({ delivered: 1 });
    expect(await outbox.failed()).toEqual([]);
    expect([...hook.deliveries.values()].map((d) => d.type)).toEqual([
      'incident.resolved',
      'incident.opened',
    ]);
  });

  it('backs off exponentially with full jitter, capped at 5 minutes', async () => {
    const { hook, clock } = world;
    hook.receiver.faults = Array.from({ length: 13 }, () => fail500);
    let jitter = 0.999;
    const { outbox } = makeOutbox(world, store, {
      notifiers: world.notifiers.filter((n) => n.type === 'webhook'),
      random: () => jitter,
    });
    await outbox.enqueue(incidentEvent('opened', exampleIncident()));
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      await outbox.deliverDue(clock.t);
      const [item] = await outbox.pending();
      delays.push(item!.notBefore - clock.t);
      clock.t = item!.notBefore;
    }
    const caps = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300].map((s) => s * 1000);
    expect(delays).toEqual(caps.map((cap) => Math.round(0.999 * cap)));
    jitter = 0;
    await outbox.deliverDue(clock.t);
    const [item] = await outbox.pending();
    expect(item!.notBefore - clock.t).toBe(1); // never zero: a hot loop helps nobody
    expect(item!.attempts).toBe(13);
  });

  it('gives up after maxAttempts when configured', async () => {
    const { hook, clock } = world;
    hook.receiver.faults = [fail500, fail500, fail500];
    const { outbox, seen } = makeOutbox(world, store, {
      notifiers: world.notifiers.filter((n) => n.type === 'webhook'),
      maxAttempts: 3,
    });
    await outbox.enqueue(incidentEvent('opened', exampleIncident()));
    await drain(outbox, clock);
    expect(seen.failed).toEqual([expect.objectContaining({ attempts: 3, status: 500 })]);
    expect(await outbox.failed()).toHaveLength(1);
  });

  it('events waiting behind an earlier one never crowd it out of a small batch', async () => {
    const { hook, clock } = world;
    hook.receiver.faults = [fail500, fail500, fail500];
    const { outbox } = makeOutbox(world, store, {
      notifiers: world.notifiers.filter((n) => n.type === 'webhook'),
      batchSize: 2,
    });
    const incidents = ['inc_a', 'inc_b', 'inc_c'].map((id) => lifecycle(exampleIncident({ id })));
    for (const { opened } of incidents) await outbox.enqueue(incidentEvent('opened', opened));
    for (const { resolved } of incidents) await outbox.enqueue(incidentEvent('resolved', resolved));
    await drain(outbox, clock);
    const order = [...hook.deliveries.values()].map((d) => `${d.incident.id}:${d.type}`);
    expect(order).toHaveLength(6);
    for (const { opened } of incidents) {
      expect(order.indexOf(`${opened.id}:incident.opened`)).toBeLessThan(
        order.indexOf(`${opened.id}:incident.resolved`),
      );
    }
  });

  it('survives a restart: a new outbox over the same data directory delivers each event exactly once', async () => {
    const { pd, iio, slack, hook, clock } = world;
    for (const receiver of world.receivers) receiver.faults = [fail500];
    const a = makeOutbox(world, store);
    const { opened } = await enqueueEpisode(a.outbox);
    expect(await a.outbox.deliverDue(clock.t)).toMatchObject({ retried: 4, delivered: 0 });
    await a.outbox.stop();
    await store.close();

    store = new EmbeddedStore({ dataDir });
    await store.start();
    const b = makeOutbox(world, store);
    const pending = await b.outbox.pending(100);
    expect(pending).toHaveLength(16);
    expect(
      pending.filter((item) => item.attempts === 1 && /^HTTP 500/.test(item.lastError ?? '')),
    ).toHaveLength(4);
    // Enqueueing again after the restart keeps the recorded progress.
    await b.outbox.enqueue(incidentEvent('opened', opened));
    expect((await b.outbox.pending(100)).filter((item) => item.attempts === 1)).toHaveLength(4);

    await drain(b.outbox, clock);
    expect(b.seen.delivered).toHaveLength(16);
    expect(a.seen.delivered).toHaveLength(0);
    expect([...pd.alerts.values()].map((alert) => alert.status)).toEqual(['resolved']);
    expect(iio.incidents.size).toBe(1);
    expect(slack.messages.size).toBe(4);
    expect(hook.deliveries.size).toBe(4);
    expect(hook.duplicates()).toBe(0);
    for (const receiver of world.receivers) expect(receiver.attempts).toHaveLength(5);

    // A third life finds nothing left to do.
    await b.outbox.stop();
    await store.close();
    store = new EmbeddedStore({ dataDir });
    await store.start();
    const c = makeOutbox(world, store);
    expect(await c.outbox.pending(100)).toEqual([]);
    expect(await c.outbox.deliverDue(clock.t + 86_400_000)).toMatchObject({ delivered: 0 });
  });

  it('edits the incident.io incident recorded in the timeline, or finds it again by idempotency key', async () => {
    const { iio, clock } = world;
    const only = world.notifiers.filter((n) => n.type === 'incident-io');
    const a = makeOutbox(world, store, { notifiers: only });
    const { opened, acknowledged, resolved } = lifecycle();
    a.seen.incidents.set(opened.id, opened);
    await a.outbox.enqueue(incidentEvent('opened', opened));
    await drain(a.outbox, clock);
    expect(iio.creates()).toBe(1);
    const withRef = a.seen.incidents.get(opened.id)!;
    expect(withRef.timeline.at(-1)?.data?.ref).toBe([...iio.incidents.keys()][0]);

    // A fresh outbox (a restart) enqueues the acknowledgement of an incident whose timeline has the ref.
    const b = makeOutbox(world, store, { notifiers: only });
    await b.outbox.enqueue(incidentEvent('acknowledged', { ...acknowledged, timeline: withRef.timeline }));
    await drain(b.outbox, clock);
    expect(iio.creates()).toBe(1); // straight to the edit

    // Without the ref, the create is repeated with the same key and de-duplicated by incident.io.
    const c = makeOutbox(world, store, { notifiers: only });
    await c.outbox.enqueue(incidentEvent('resolved', resolved));
    await drain(c.outbox, clock);
    expect(iio.creates()).toBe(2);
    expect(iio.incidents.size).toBe(1);
    expect([...iio.incidents.values()][0]?.edits).toHaveLength(2);
    expect(iio.receiver.rejected).toEqual([]);
  });

  it('only the guardian holding the outbox lock delivers', async () => {
    const { hook, clock } = world;
    const only = world.notifiers.filter((n) => n.type === 'webhook');
    const a = makeOutbox(world, store, { notifiers: only, lock: { owner: 'guardian-a' } });
    const b = makeOutbox(world, store, { notifiers: only, lock: { owner: 'guardian-b' } });
    await a.outbox.enqueue(incidentEvent('opened', exampleIncident()));
    expect(await a.outbox.deliverDue(clock.t)).toMatchObject({ delivered: 1 });
    await b.outbox.enqueue(incidentEvent('escalated', exampleIncident()));
    expect(await b.outbox.deliverDue(clock.t)).toMatchObject({ skipped: true, delivered: 0 });
    expect(await a.outbox.deliverDue(clock.t)).toMatchObject({ delivered: 1 });
    expect(hook.deliveries.size).toBe(2);
  });

  it('delivers in the background once started, right after an enqueue', async () => {
    const { hook } = world;
    const { outbox } = makeOutbox(world, store, {
      notifiers: world.notifiers.filter((n) => n.type === 'webhook'),
      now: Date.now,
      pollIntervalMs: 60_000,
    });
    world.clock.t = Date.now(); // the receiver judges the signature's age by this clock
    outbox.start();
    await outbox.enqueue(incidentEvent('opened', exampleIncident()));
    const deadline = Date.now() + 5000;
    while (hook.deliveries.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await outbox.stop();
    expect(hook.deliveries.size).toBe(1);
    expect(await outbox.pending()).toEqual([]);
  });
});
