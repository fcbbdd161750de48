import type { Incident } from '@vigil/proto';
import type { Store } from '@vigil/server';
import { afterEach, describe, expect, it } from 'vitest';
import { COORDINATOR_LOCK, type Guardian } from '../../src/guardian.js';
import { ENV, rolloutFlag, run, type Stack, split, startStack } from './harness.js';

/**
 * `store` as a guardian that dies right after the call `last` picks sees it: that call is made, its
 * answer never arrives, and every later call fails — what a SIGKILL at that point leaves behind.
 */
function dyingAfter(store: Store, last: (method: string) => boolean): Store {
  let dead = false;
  const died = () => new Error('the guardian process died');
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (dead) return Promise.reject(died());
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then((answer) => {
          if (!last(String(property))) return answer;
          dead = true;
          throw died();
        });
      };
    },
  });
}

const killState = (incident: Incident | undefined) =>
  incident?.timeline.find((e) => e.kind === 'detection')?.data?.kill;

describe('guardian: a guardian that dies between deciding a kill and recording it', () => {
  let stack: Stack;
  afterEach(async () => {
    await stack?.close();
  });

  /** Runs a regression past a first guardian that dies after `last`; its locks then expire. */
  async function diesAfter(last: string, until: () => Promise<boolean>): Promise<number> {
    stack = await startStack();
    const flag = await stack.store.putFlag(ENV, rolloutFlag('checkout', 10), undefined, { actor: 'alice' });
    const first = stack.guardian({ id: 'g1' }, { store: dyingAfter(stack.store, (m) => m === last) });
    await run(stack, first, 'checkout', 60, split(10, 0.05, 0.005), until);
    await stack.store.releaseLock(COORDINATOR_LOCK, 'g1');
    await stack.store.releaseLock('notify-outbox', 'g1');
    return flag.version;
  }

  /** Ticks `guardian` a second at a time (with traffic when `traffic`) until `until` holds. */
  async function tickUntil(guardian: Guardian, until: () => Promise<boolean>, traffic = false) {
    const second = split(10, 0.05, 0.005);
    for (let s = 0; s < 60 && !(await until()); s++) {
      stack.clock.advance(1000);
      if (traffic) await stack.traffic('checkout', second(s));
      await guardian.tick();
    }
  }

  /** The flag killed once by the guardian, one incident recording it, notified once. */
  async function expectKilledOnceNotifiedOnce(version: number): Promise<Incident> {
    const flag = await stack.flag('checkout');
    expect(flag).toMatchObject({ killed: true, killedBy: 'guardian' });
    expect(flag.killReason).toMatch(new RegExp(`^sev2 regression of version ${version}: variant on`));
    const kills = (await stack.store.audit(ENV, { limit: 50, target: 'checkout' })).filter(
      (e) => e.action === 'flag.kill',
    );
    expect(kills).toHaveLength(1);
    const incidents = await stack.incidents();
    expect(incidents).toHaveLength(1);
    const incident = incidents[0]!;
    expect(incident).toMatchObject({ flagVersion: version, killed: true, mitigatedAt: flag.killedAt });
    expect(killState(incident)).toBe('done');
    expect(incident.timeline.map((e) => e.kind)).toEqual(['change', 'detection', 'kill', 'notification']);
    expect([...stack.hook.deliveries.values()].map((d) => [d.type, d.incident.killed])).toEqual([
      ['incident.opened', true],
    ]);
    expect(stack.hook.duplicates()).toBe(0);
    return incident;
  }

  const notified = async () =>
    stack.hook.deliveries.size > 0 && (await stack.incidents())[0]?.notified !== undefined;

  it('after its kill: the next guardian records the kill on the pending incident and notifies it once', async () => {
    const version = await diesAfter('setKill', async () => (await stack.flag('checkout')).killed);
    const [pending] = await stack.incidents();
    expect(pending).toMatchObject({ killed: false });
    expect(killState(pending)).toBe('pending');
    expect(pending!.summary).toMatch(/The guardian is killing the flag\.$/);
    expect(stack.hook.deliveries.size).toBe(0);

    const second = stack.guardian({ id: 'g2', incidentSweepMs: 50 });
    await tickUntil(second, notified);
    const incident = await expectKilledOnceNotifiedOnce(version);
    expect(incident.id).toBe(pending!.id);
    expect(incident.summary).toMatch(
      /The guardian killed the flag .+ after detection: everyone is served `off`\.$/,
    );
  });

  it('after writing the incident: with no more traffic, the next guardian makes the kill once its writer is presumed dead', async () => {
    const version = await diesAfter('putIncident', async () => (await stack.incidents()).length > 0);
    expect((await stack.flag('checkout')).killed).toBe(false);
    const [pending] = await stack.incidents();
    const second = stack.guardian({ id: 'g2', incidentSweepMs: 50, lockTtlMs: 5000 });
    const detected = Date.parse(pending!.detectedAt);
    await tickUntil(second, async () => (await stack.flag('checkout')).killed);
    // Not before lockTtlMs after the detection: a live guardian kills within milliseconds of the write.
    expect(Date.parse((await stack.flag('checkout')).killedAt!) - detected).toBeGreaterThanOrEqual(5000);
    await tickUntil(second, notified);
    await expectKilledOnceNotifiedOnce(version);
  });

  it('after claiming the episode: the next guardian kills on the regression it sees and writes that episode’s incident', async () => {
    let version = 0;
    await diesAfter('claimEpisode', async () => {
      version = (await stack.flag('checkout')).version;
      return (await stack.store.getEpisode(`${ENV}:checkout:${version}`)) !== undefined;
    });
    const claimed = (await stack.store.getEpisode(`${ENV}:checkout:${version}`))!.incidentId;
    expect(await stack.incidents()).toEqual([]);
    expect((await stack.flag('checkout')).killed).toBe(false);

    const second = stack.guardian({ id: 'g2', incidentSweepMs: 50 });
    await tickUntil(second, notified, true);
    const incident = await expectKilledOnceNotifiedOnce(version);
    expect(incident.id).toBe(claimed);
  });

  it('after writing the incident, when a person changed the flag meanwhile: the kill is dropped with a note and the incident notified', async () => {
    await diesAfter('putIncident', async () => (await stack.incidents()).length > 0);
    const flag = await stack.flag('checkout');
    await stack.store.putFlag(
      ENV,
      { ...rolloutFlag('checkout', 0) },
      { version: flag.version },
      { actor: 'bob' },
    );
    const second = stack.guardian({ id: 'g2', incidentSweepMs: 50 });
    await tickUntil(second, notified);
    expect((await stack.flag('checkout')).killed).toBe(false);
    const [incident] = await stack.incidents();
    expect(incident).toMatchObject({ killed: false });
    expect(killState(incident)).toBe('skipped');
    expect(incident!.timeline.at(-2)).toMatchObject({
      kind: 'note',
      message: `Not killed: the flag changed first (version ${flag.version + 1})`,
    });
    expect(incident!.summary).toMatch(/The flag was not killed: the flag changed first/);
    expect([...stack.hook.deliveries.values()].map((d) => d.type)).toEqual(['incident.opened']);
  });
});
