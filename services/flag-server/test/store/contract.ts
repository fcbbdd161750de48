import {
  type CohortSummary,
  cohortSummarySchema,
  type Flag,
  type FlagInput,
  flagSchema,
  type Incident,
  type Schedule,
  type Segment,
  type Serve,
  scheduleSchema,
  segmentSchema,
  type Verdict,
  verdictSchema,
} from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { type ErrorCode, isVigilError } from '../../src/errors.js';
import {
  type Change,
  type IdempotencyClaim,
  type IdempotencyRecord,
  IdempotentReplay,
  type OutboxItem,
  type Store,
  type StoredToken,
} from '../../src/store/store.js';

/** Limits a test may shrink to reach trimming quickly. */
export interface StoreLimits {
  changeLogLimit?: number;
  auditLimit?: number;
  idempotencyTtlMs?: number;
}

/** Resolves with the record a write answered as a replay (fails when it resolves or rejects otherwise). */
export async function replayOf(promise: Promise<unknown>): Promise<IdempotencyRecord> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof IdempotentReplay) return error.record;
    throw error;
  }
  throw new Error('expected the write to be answered as a replay');
}

/** An idempotency claim as the REST layer makes one. */
export function claim(
  id: string,
  status = 200,
  fingerprint = `fp-${id}`,
  attachment?: string,
): IdempotencyClaim {
  return { id, fingerprint, status, ...(attachment === undefined ? {} : { attachment }) };
}

/** Makes a fresh, started store with nothing in it. */
export type StoreFactory = (limits?: StoreLimits) => Promise<Store>;

const actor = { actor: 'alice' };

/** A boolean flag with defaults applied, as the REST layer hands it to the store. */
export function makeFlag(key: string, overrides: Partial<FlagInput> = {}): Flag {
  return flagSchema.parse({
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'on' },
    rules: [
      { id: 'beta', clauses: [{ attribute: 'plan', op: 'in', values: ['beta'] }], serve: { variant: 'on' } },
    ],
    tags: [],
    ...overrides,
  });
}

/** A segment with defaults applied. */
export function makeSegment(key: string, included: string[] = ['u1']): Segment {
  return segmentSchema.parse({
    key,
    included,
    rules: [[{ attribute: 'country', op: 'in', values: ['TH'] }]],
  });
}

/** A cohort summary for the metrics bus. */
export function makeSummary(flag: string, requests: number): CohortSummary {
  return cohortSummarySchema.parse({
    env: 'production',
    flag,
    variant: 'on',
    version: 1,
    windowStart: '2025-01-01T00:00:00.000Z',
    windowEnd: '2025-01-01T00:00:10.000Z',
    requests,
    errors: 0,
    latency: { alpha: 0.01, zero: 0, bins: [[100, requests]], count: requests, sum: requests * 10 },
  });
}

/** Resolves with the VigilError code a promise rejects with (fails when it resolves). */
export async function rejectionCode(promise: Promise<unknown>): Promise<ErrorCode> {
  try {
    await promise;
  } catch (error) {
    if (isVigilError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** Collects a store's changes; `until` waits (subscriptions may be asynchronous) for a condition. */
export function collect(store: Store): {
  changes: Change[];
  until(done: (changes: Change[]) => boolean, timeoutMs?: number): Promise<Change[]>;
  stop(): void;
} {
  const changes: Change[] = [];
  const stop = store.subscribe((change) => changes.push(change));
  return {
    changes,
    stop,
    async until(done, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done(changes)) {
        if (Date.now() > deadline)
          throw new Error(`timed out; got revisions ${revisions(changes).join(',')}`);
        await sleep(10);
      }
      return changes;
    },
  };
}

/** Revisions of changes, for order assertions. */
export function revisions(changes: Change[]): number[] {
  return changes.map((c) => c.revision);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withoutVersion(flag: Flag | undefined): Omit<Flag, 'version'> {
  const { version: _version, ...rest } = flag!;
  return rest;
}

function token(id: string, secretHash: string, createdAt: string): StoredToken {
  return { id, name: `token-${id}`, scopes: ['read'], createdAt, secretHash };
}

function incident(id: string, env: string, status: Incident['status'], detectedAt: string): Incident {
  return {
    id,
    env,
    flag: 'checkout',
    flagVersion: 3,
    severity: 'sev2',
    status,
    title: `checkout regressed (${id})`,
    summary: 'error rate 12% vs 0.4% control',
    killed: true,
    cohorts: [{ variant: 'on', requests: 1000, errors: 120, errorRate: 0.12, p99LatencyMs: null }],
    detectedAt,
    timeline: [{ at: detectedAt, kind: 'detection', message: 'error rate above 1%' }],
  };
}

function outboxItem(id: string, notBefore: number): OutboxItem {
  return { id, target: 'pagerduty', key: `dedup-${id}`, payload: { id }, attempts: 0, notBefore };
}

/** The one suite both stores must pass. */
export function storeContract(name: string, factory: StoreFactory): void {
  describe(`${name} store contract`, () => {
    const open: Store[] = [];
    const create = async (limits?: StoreLimits) => {
      const store = await factory(limits);
      open.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });

    describe('flags', () => {
      it('creates, reads, updates and deletes a flag', async () => {
        const store = await create();
        const created = await store.putFlag('production', makeFlag('checkout'), { absent: true }, actor);
        expect(created.version).toBe(1);
        expect(created.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
        expect(created.updatedAt).toBe(created.createdAt);
        expect(await store.getFlag('production', 'checkout')).toEqual(created);

        const updated = await store.putFlag(
          'production',
          makeFlag('checkout', { description: 'new checkout', fallthrough: { variant: 'off' } }),
          { version: 1 },
          actor,
        );
        expect(updated.version).toBe(2);
        expect(updated.description).toBe('new checkout');
        expect(updated.createdAt).toBe(created.createdAt);
        expect(await store.getFlag('production', 'checkout')).toEqual(updated);

        await store.deleteFlag('production', 'checkout', { version: 2 }, actor);
        expect(await store.getFlag('production', 'checkout')).toBeUndefined();
        const snapshot = await store.snapshot('production');
        expect(snapshot).toEqual({ env: 'production', revision: 3, flags: [], segments: [] });
      });

      it('stores the flag it is given, with every field intact', async () => {
        const store = await create();
        const flag = makeFlag('pricing', {
          description: 'ünïcode — ทดสอบ 🚀 "quotes" \\ slash/',
          tags: ['a', 'b'],
          owner: 'team-pay',
          variants: [
            {
              key: 'a',
              value: { price: 9.99, big: 12345678901234, nested: [1, 'x', null, { deep: [] }], empty: {} },
            },
            { key: 'b', value: 0.1 },
            { key: 'off', value: [] },
          ],
          fallthrough: {
            rollout: {
              weights: [
                { variant: 'a', weight: 33_333 },
                { variant: 'b', weight: 66_667 },
              ],
            },
          },
          clientSide: true,
          guard: { enabled: true, maxErrorRate: 0.01 },
        });
        const stored = await store.putFlag('production', flag, undefined, actor);
        expect(withoutVersion(await store.getFlag('production', 'pricing'))).toEqual({
          ...flag,
          version: undefined,
          createdAt: stored.createdAt,
          updatedAt: stored.updatedAt,
        });
        expect((await store.snapshot('production')).flags).toEqual([stored]);
      });

      it('rejects a stale version with VIGIL_VERSION_CONFLICT and changes nothing', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), { absent: true }, actor);
        await store.putFlag('production', makeFlag('checkout', { enabled: false }), { version: 1 }, actor);
        const code = await rejectionCode(
          store.putFlag('production', makeFlag('checkout', { description: 'lost' }), { version: 1 }, actor),
        );
        expect(code).toBe('VIGIL_VERSION_CONFLICT');
        expect(await rejectionCode(store.deleteFlag('production', 'checkout', { version: 1 }, actor))).toBe(
          'VIGIL_VERSION_CONFLICT',
        );
        const flag = await store.getFlag('production', 'checkout');
        expect(flag?.version).toBe(2);
        expect(flag?.description).toBe('');
        expect((await store.snapshot('production')).revision).toBe(2);
        expect(await store.audit('production', { limit: 10 })).toHaveLength(2);
      });

      it('lets exactly one of several concurrent writers with the same version win', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), { absent: true }, actor);
        const results = await Promise.allSettled(
          [1, 2, 3, 4, 5].map((n) =>
            store.putFlag(
              'production',
              makeFlag('checkout', { description: `w${n}` }),
              { version: 1 },
              actor,
            ),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(isVigilError(r.reason, 'VIGIL_VERSION_CONFLICT')).toBe(true);
        }
        expect((await store.snapshot('production')).revision).toBe(2);
      });

      it('honours the absent expectation and reports missing flags', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), { absent: true }, actor);
        expect(
          await rejectionCode(store.putFlag('production', makeFlag('checkout'), { absent: true }, actor)),
        ).toBe('VIGIL_ALREADY_EXISTS');
        expect(
          await rejectionCode(store.putFlag('production', makeFlag('ghost'), { version: 1 }, actor)),
        ).toBe('VIGIL_NOT_FOUND');
        expect(await rejectionCode(store.deleteFlag('production', 'ghost', undefined, actor))).toBe(
          'VIGIL_NOT_FOUND',
        );
        expect(
          await rejectionCode(store.setKill('production', 'ghost', { killed: true, actor: 'bob' })),
        ).toBe('VIGIL_NOT_FOUND');
        expect((await store.snapshot('production')).revision).toBe(1);
      });

      it('upserts without an expectation', async () => {
        const store = await create();
        const first = await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        const second = await store.putFlag(
          'production',
          makeFlag('checkout', { enabled: false }),
          undefined,
          actor,
        );
        expect([first.version, second.version]).toEqual([1, 2]);
        expect(second.createdAt).toBe(first.createdAt);
        expect((await store.getFlag('production', 'checkout'))?.enabled).toBe(false);
      });

      it('keeps environments apart, each with its own revision counter', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('a'), undefined, actor);
        await store.putFlag('production', makeFlag('b'), undefined, actor);
        const staging = await store.putFlag('staging', makeFlag('a', { enabled: false }), undefined, actor);
        expect(staging.version).toBe(1);
        expect((await store.snapshot('production')).revision).toBe(2);
        expect((await store.snapshot('staging')).flags).toEqual([staging]);
        expect(await store.getFlag('staging', 'b')).toBeUndefined();
        expect(await store.listEnvs()).toEqual(['production', 'staging']);
        expect(await store.snapshot('nowhere')).toEqual({
          env: 'nowhere',
          revision: 0,
          flags: [],
          segments: [],
        });
      });

      it('raises the revision by exactly one per write', async () => {
        const store = await create();
        const seen: number[] = [];
        for (let i = 0; i < 5; i++)
          seen.push((await store.putFlag('production', makeFlag(`f${i}`), undefined, actor)).version);
        seen.push((await store.putSegment('production', makeSegment('s'), actor)).version);
        await store.deleteFlag('production', 'f0', undefined, actor);
        seen.push((await store.snapshot('production')).revision);
        expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
      });
    });

    describe('kill switch', () => {
      it('kills idempotently: a second kill writes no revision and no audit entry', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        const killed = await store.setKill('production', 'checkout', {
          killed: true,
          actor: 'guardian',
          reason: 'error rate 12% — "ทดสอบ" / 🚀 \\ done',
          at: '2025-03-01T10:00:00.000Z',
        });
        expect(killed).toMatchObject({
          killed: true,
          killedAt: '2025-03-01T10:00:00.000Z',
          killedBy: 'guardian',
          killReason: 'error rate 12% — "ทดสอบ" / 🚀 \\ done',
          version: 2,
        });
        const again = await store.setKill('production', 'checkout', {
          killed: true,
          actor: 'bob',
          reason: 'again',
        });
        expect(again).toEqual(killed);
        expect((await store.snapshot('production')).revision).toBe(2);
        expect(await store.audit('production', { limit: 10 })).toHaveLength(2);
      });

      it('restores exactly what was served before on revive', async () => {
        const store = await create();
        const original = await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        await store.setKill('production', 'checkout', { killed: true, actor: 'guardian', reason: 'bad' });
        const revived = await store.setKill('production', 'checkout', { killed: false, actor: 'bob' });
        expect(revived.version).toBe(3);
        expect(withoutVersion(revived)).toEqual(withoutVersion(original));
        expect(revived).not.toHaveProperty('killedAt');
        expect(revived).not.toHaveProperty('killedBy');
        expect(revived).not.toHaveProperty('killReason');
        expect(await store.getFlag('production', 'checkout')).toEqual(revived);
        const noop = await store.setKill('production', 'checkout', { killed: false, actor: 'bob' });
        expect(noop.version).toBe(3);
      });

      it('never checks the version, and an edit does not undo a kill', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        await store.putFlag(
          'production',
          makeFlag('checkout', { description: 'edited' }),
          { version: 1 },
          actor,
        );
        const killed = await store.setKill('production', 'checkout', { killed: true, actor: 'oncall' });
        expect(killed.version).toBe(3);
        const edited = await store.putFlag(
          'production',
          makeFlag('checkout', { description: 'later' }),
          undefined,
          actor,
        );
        expect(edited).toMatchObject({ killed: true, killedBy: 'oncall', description: 'later', version: 4 });
        expect(
          await rejectionCode(store.putFlag('production', makeFlag('checkout'), { version: 2 }, actor)),
        ).toBe('VIGIL_VERSION_CONFLICT');
      });
    });

    describe('schedules', () => {
      const schedule = (overrides: Partial<Schedule> = {}): Schedule =>
        scheduleSchema.parse({
          variant: 'on',
          steps: [
            { percent: 5, hold: '5m' },
            { percent: 12.5, hold: 600 },
            { percent: 100, hold: 0 },
          ],
          ...overrides,
        });
      const rollout = (percent: number): Serve => ({
        rollout: {
          weights: [
            { variant: 'on', weight: percent * 1000 },
            { variant: 'off', weight: 100_000 - percent * 1000 },
          ],
        },
      });

      it('writes a schedule and a step serve as a new version audited as flag.schedule', async () => {
        const store = await create();
        const seen = collect(store);
        await store.putFlag('production', makeFlag('checkout', { description: 'keep me' }), undefined, actor);
        const step = schedule({ status: 'running', stepIndex: 1, stepStartedAt: '2025-01-01T00:00:00.000Z' });
        const written = await store.putSchedule(
          'production',
          'checkout',
          { schedule: step, fallthrough: rollout(12.5), actor: 'guardian', reason: 'step 2: 12.5%' },
          { version: 1 },
        );
        expect(written).toMatchObject({ version: 2, description: 'keep me', schedule: step });
        expect(written.fallthrough).toEqual(rollout(12.5));
        expect(await store.getFlag('production', 'checkout')).toEqual(written);
        const [entry] = await store.audit('production', { limit: 1 });
        expect(entry).toMatchObject({
          action: 'flag.schedule',
          actor: 'guardian',
          reason: 'step 2: 12.5%',
          revision: 2,
        });
        expect((entry!.after as Flag).schedule).toEqual(step);
        await seen.until((changes) => changes.length === 2);
        expect(seen.changes[1]!.flags[0]).toEqual(written);
        seen.stop();

        // Without a fallthrough only the schedule changes; without a schedule it is removed.
        const paused = await store.putSchedule(
          'production',
          'checkout',
          { schedule: { ...step, status: 'paused', remainingHoldMs: 1234 }, actor: 'alice' },
          undefined,
        );
        expect(paused).toMatchObject({ version: 3, schedule: { status: 'paused', remainingHoldMs: 1234 } });
        expect(paused.fallthrough).toEqual(rollout(12.5));
        const removed = await store.putSchedule(
          'production',
          'checkout',
          { schedule: undefined, ...actor },
          undefined,
        );
        expect(removed.schedule).toBeUndefined();
        expect(removed.version).toBe(4);
      });

      it('refuses a stale version and a missing flag', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        const input = { schedule: schedule(), fallthrough: rollout(5), actor: 'guardian' };
        expect(await rejectionCode(store.putSchedule('production', 'checkout', input, { version: 1 }))).toBe(
          'VIGIL_VERSION_CONFLICT',
        );
        expect(await rejectionCode(store.putSchedule('production', 'nope', input, undefined))).toBe(
          'VIGIL_NOT_FOUND',
        );
        expect((await store.getFlag('production', 'checkout'))!.schedule).toBeUndefined();
      });

      it('keeps the stored schedule through ordinary edits and kills; a create takes the given one', async () => {
        const store = await create();
        const given = schedule({ status: 'pending' });
        const created = await store.putFlag(
          'production',
          makeFlag('checkout', { schedule: given }),
          undefined,
          actor,
        );
        expect(created.schedule).toEqual(given);
        const running = schedule({
          status: 'running',
          stepIndex: 0,
          stepStartedAt: '2025-01-01T00:00:00.000Z',
        });
        await store.putSchedule(
          'production',
          'checkout',
          { schedule: running, fallthrough: rollout(5), ...actor },
          undefined,
        );
        // An edit carrying no schedule, or an older one, keeps the stored progress.
        const edited = await store.putFlag(
          'production',
          makeFlag('checkout', { description: 'x' }),
          undefined,
          actor,
        );
        expect(edited.schedule).toEqual(running);
        const stale = await store.putFlag(
          'production',
          makeFlag('checkout', { schedule: given }),
          undefined,
          actor,
        );
        expect(stale.schedule).toEqual(running);
        const killed = await store.setKill('production', 'checkout', { killed: true, actor: 'guardian' });
        expect(killed.schedule).toEqual(running);
        const marked = await store.putSchedule(
          'production',
          'checkout',
          { schedule: { ...running, status: 'rolled_back' }, actor: 'guardian' },
          undefined,
        );
        expect(marked).toMatchObject({
          killed: true,
          killedBy: 'guardian',
          schedule: { status: 'rolled_back' },
        });
      });
    });

    describe('segments', () => {
      it('upserts and deletes segments as revisions of the environment', async () => {
        const store = await create();
        await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        const segment = await store.putSegment('production', makeSegment('beta', ['u1', 'u2']), actor);
        expect(segment).toMatchObject({ key: 'beta', included: ['u1', 'u2'], version: 2 });
        expect(segment.updatedAt).toMatch(/^\d{4}-/);
        const replaced = await store.putSegment('production', makeSegment('beta', ['u3']), actor);
        expect(replaced.version).toBe(3);
        expect((await store.snapshot('production')).segments).toEqual([replaced]);
        await store.deleteSegment('production', 'beta', actor);
        expect((await store.snapshot('production')).segments).toEqual([]);
        expect(await rejectionCode(store.deleteSegment('production', 'beta', actor))).toBe('VIGIL_NOT_FOUND');
        expect((await store.snapshot('production')).revision).toBe(4);
      });

      it('lets exactly one of several concurrent segment writers expecting the same version win', async () => {
        const store = await create();
        const first = await store.putSegment('production', makeSegment('beta'), actor, { absent: true });
        const results = await Promise.allSettled(
          [1, 2, 3, 4, 5].map((n) =>
            store.putSegment('production', makeSegment('beta', [`u${n}`]), actor, { version: first.version }),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(isVigilError(r.reason, 'VIGIL_VERSION_CONFLICT')).toBe(true);
        }
        expect((await store.snapshot('production')).revision).toBe(2);
        expect(await store.audit('production', { limit: 10 })).toHaveLength(2);
        expect(
          await rejectionCode(store.putSegment('production', makeSegment('beta'), actor, { absent: true })),
        ).toBe('VIGIL_ALREADY_EXISTS');
        expect(
          await rejectionCode(store.putSegment('production', makeSegment('ghost'), actor, { version: 1 })),
        ).toBe('VIGIL_NOT_FOUND');
        expect((await store.snapshot('production')).revision).toBe(2);
      });
    });

    describe('change log', () => {
      it('returns the changes after a revision, in order, with their full content', async () => {
        const store = await create();
        const a = await store.putFlag('production', makeFlag('a'), undefined, actor);
        const s = await store.putSegment('production', makeSegment('beta'), actor);
        const killed = await store.setKill('production', 'a', { killed: true, actor: 'guardian' });
        await store.deleteSegment('production', 'beta', actor);
        await store.deleteFlag('production', 'a', undefined, actor);
        await store.putFlag('staging', makeFlag('z'), undefined, actor);

        const all = await store.changesSince('production', 0);
        expect(all).toEqual([
          { env: 'production', revision: 1, flags: [a], segments: [], deleted: { flags: [], segments: [] } },
          { env: 'production', revision: 2, flags: [], segments: [s], deleted: { flags: [], segments: [] } },
          {
            env: 'production',
            revision: 3,
            flags: [killed],
            segments: [],
            deleted: { flags: [], segments: [] },
          },
          {
            env: 'production',
            revision: 4,
            flags: [],
            segments: [],
            deleted: { flags: [], segments: ['beta'] },
          },
          {
            env: 'production',
            revision: 5,
            flags: [],
            segments: [],
            deleted: { flags: ['a'], segments: [] },
          },
        ]);
        expect(revisions((await store.changesSince('production', 3))!)).toEqual([4, 5]);
        expect(await store.changesSince('production', 5)).toEqual([]);
        expect(await store.changesSince('production', 9)).toBeUndefined();
        expect(await store.changesSince('nowhere', 0)).toEqual([]);
      });

      it('answers undefined once the trimmed log no longer reaches back that far', async () => {
        const store = await create({ changeLogLimit: 10 });
        // Redis trims approximately (whole stream nodes of 100 entries), so write well past that.
        const writes = 260;
        for (let i = 0; i < writes; i++) {
          await store.putFlag('production', makeFlag('churn', { description: `v${i}` }), undefined, actor);
        }
        expect(await store.changesSince('production', 0)).toBeUndefined();
        const recent = await store.changesSince('production', writes - 10);
        expect(revisions(recent!)).toEqual([251, 252, 253, 254, 255, 256, 257, 258, 259, 260]);
        expect(recent![9]!.flags[0]!.description).toBe(`v${writes - 1}`);
      });
    });

    describe('subscribe', () => {
      it('delivers every change, in revision order, to every listener until it unsubscribes', async () => {
        const store = await create();
        const first = collect(store);
        const second = collect(store);
        await Promise.all([
          store.putFlag('production', makeFlag('a'), undefined, actor),
          store.putFlag('production', makeFlag('b'), undefined, actor),
          store.putSegment('production', makeSegment('s'), actor),
          store.putFlag('staging', makeFlag('a'), undefined, actor),
        ]);
        await store.setKill('production', 'a', { killed: true, actor: 'guardian' });
        await first.until((c) => c.length === 5);
        await second.until((c) => c.length === 5);
        const production = first.changes.filter((c) => c.env === 'production');
        expect(revisions(production)).toEqual([1, 2, 3, 4]);
        expect(production[3]!.flags[0]).toMatchObject({ key: 'a', killed: true, version: 4 });
        expect(first.changes.filter((c) => c.env === 'staging')).toHaveLength(1);
        expect(second.changes).toEqual(first.changes);

        second.stop();
        await store.putFlag('production', makeFlag('c'), undefined, actor);
        await first.until((c) => c.length === 6);
        await sleep(100);
        expect(second.changes).toHaveLength(5);
      });

      it('keeps delivering to other listeners when one throws', async () => {
        const store = await create();
        store.subscribe(() => {
          throw new Error('listener bug');
        });
        const good = collect(store);
        await store.putFlag('production', makeFlag('a'), undefined, actor);
        await store.putFlag('production', makeFlag('b'), undefined, actor);
        await good.until((c) => c.length === 2);
      });
    });

    describe('audit', () => {
      it('records who did what, when, why, with before and after, newest first', async () => {
        const store = await create();
        const created = await store.putFlag(
          'production',
          makeFlag('checkout'),
          { absent: true },
          {
            actor: 'alice',
            reason: 'launch',
          },
        );
        const updated = await store.putFlag(
          'production',
          makeFlag('checkout', { enabled: false }),
          { version: 1 },
          {
            actor: 'bob',
          },
        );
        const killed = await store.setKill('production', 'checkout', {
          killed: true,
          actor: 'guardian',
          reason: 'errors',
        });
        const revived = await store.setKill('production', 'checkout', {
          killed: false,
          actor: 'carol',
          reason: 'fixed',
        });
        const segment = await store.putSegment('production', makeSegment('beta'), { actor: 'dave' });
        await store.deleteSegment('production', 'beta', { actor: 'dave' });
        await store.deleteFlag('production', 'checkout', undefined, { actor: 'erin', reason: 'cleanup' });

        const entries = await store.audit('production', { limit: 50 });
        expect(entries.map((e) => [e.action, e.actor, e.target, e.revision])).toEqual([
          ['flag.delete', 'erin', 'checkout', 7],
          ['segment.delete', 'dave', 'beta', 6],
          ['segment.upsert', 'dave', 'beta', 5],
          ['flag.revive', 'carol', 'checkout', 4],
          ['flag.kill', 'guardian', 'checkout', 3],
          ['flag.update', 'bob', 'checkout', 2],
          ['flag.create', 'alice', 'checkout', 1],
        ]);
        const [del, segDel, segUp, revive, kill, update, creation] = entries;
        expect(creation).toMatchObject({ env: 'production', reason: 'launch', after: created });
        expect(creation).not.toHaveProperty('before');
        expect(update).toMatchObject({ before: created, after: updated });
        expect(update).not.toHaveProperty('reason');
        expect(kill).toMatchObject({ reason: 'errors', before: updated, after: killed });
        expect(revive).toMatchObject({ reason: 'fixed', before: killed, after: revived });
        expect(segUp).toMatchObject({ after: segment });
        expect(segDel).toMatchObject({ before: segment });
        expect(del).toMatchObject({ reason: 'cleanup', before: revived });
        expect(del).not.toHaveProperty('after');
        for (const entry of entries) {
          expect(typeof entry.id).toBe('string');
          expect(Date.parse(entry.at)).not.toBeNaN();
        }
        expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
        expect(await store.audit('staging', { limit: 10 })).toEqual([]);
      });

      it('filters by target and pages backwards with before', async () => {
        const store = await create();
        for (let i = 0; i < 6; i++) {
          await store.putFlag(
            'production',
            makeFlag(i % 2 === 0 ? 'even' : 'odd', { description: `${i}` }),
            undefined,
            actor,
          );
        }
        const page1 = await store.audit('production', { limit: 2 });
        expect(page1.map((e) => e.revision)).toEqual([6, 5]);
        const page2 = await store.audit('production', { limit: 2, before: page1[1]!.id });
        expect(page2.map((e) => e.revision)).toEqual([4, 3]);
        const page3 = await store.audit('production', { limit: 10, before: page2[1]!.id });
        expect(page3.map((e) => e.revision)).toEqual([2, 1]);
        const odd = await store.audit('production', { limit: 2, target: 'odd' });
        expect(odd.map((e) => e.revision)).toEqual([6, 4]);
        const olderOdd = await store.audit('production', { limit: 5, target: 'odd', before: odd[1]!.id });
        expect(olderOdd.map((e) => e.revision)).toEqual([2]);
      });
    });

    describe('tokens', () => {
      it('creates, finds by secret hash, lists without the hash, and deletes tokens', async () => {
        const store = await create();
        await store.createToken(token('t2', 'hash-2', '2025-01-02T00:00:00.000Z'));
        await store.createToken({
          ...token('t1', 'hash-1', '2025-01-01T00:00:00.000Z'),
          env: 'production',
          scopes: ['sdk-server'],
        });
        expect(
          await rejectionCode(store.createToken(token('t1', 'hash-x', '2025-01-03T00:00:00.000Z'))),
        ).toBe('VIGIL_ALREADY_EXISTS');
        expect(await store.findToken('hash-1')).toMatchObject({
          id: 't1',
          env: 'production',
          secretHash: 'hash-1',
        });
        expect(await store.findToken('hash-x')).toBeUndefined();
        const listed = await store.listTokens();
        expect(listed.map((t) => t.id)).toEqual(['t1', 't2']);
        for (const info of listed) expect(info).not.toHaveProperty('secretHash');
        expect(await store.deleteToken('t1')).toBe(true);
        expect(await store.deleteToken('t1')).toBe(false);
        expect(await store.findToken('hash-1')).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual(['t2']);
      });
    });

    describe('metrics bus', () => {
      it('shares entries between the consumers of a group, and gives every group all of them', async () => {
        const store = await create();
        await store.publishMetrics([1, 2, 3, 4, 5, 6].map((n) => makeSummary('checkout', n)));
        const opts = { count: 4, blockMs: 0, claimIdleMs: 60_000 };
        const a = await store.readMetrics('guardians', 'g1', opts);
        const b = await store.readMetrics('guardians', 'g2', opts);
        expect(a).toHaveLength(4);
        expect(b).toHaveLength(2);
        expect([...a, ...b].map((e) => e.summary.requests)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(a[0]!.summary).toEqual(makeSummary('checkout', 1));
        expect(await store.readMetrics('guardians', 'g1', opts)).toEqual([]);
        const other = await store.readMetrics('reporting', 'r1', { ...opts, count: 10 });
        expect(other).toHaveLength(6);
      });

      it('lets another consumer claim entries left pending past claimIdleMs, but not acknowledged ones', async () => {
        const store = await create();
        await store.publishMetrics([1, 2, 3].map((n) => makeSummary('checkout', n)));
        const taken = await store.readMetrics('guardians', 'g1', {
          count: 3,
          blockMs: 0,
          claimIdleMs: 60_000,
        });
        await store.ackMetrics('guardians', [taken[0]!.id]);
        expect(
          await store.readMetrics('guardians', 'g2', { count: 10, blockMs: 0, claimIdleMs: 60_000 }),
        ).toEqual([]);
        await sleep(150);
        const claimed = await store.readMetrics('guardians', 'g2', {
          count: 10,
          blockMs: 0,
          claimIdleMs: 100,
        });
        expect(claimed.map((e) => e.summary.requests)).toEqual([2, 3]);
        await store.ackMetrics(
          'guardians',
          claimed.map((e) => e.id),
        );
        await sleep(150);
        expect(
          await store.readMetrics('guardians', 'g3', { count: 10, blockMs: 0, claimIdleMs: 100 }),
        ).toEqual([]);
      });

      it('waits up to blockMs for new entries and wakes when they arrive', async () => {
        const store = await create();
        const started = Date.now();
        expect(
          await store.readMetrics('guardians', 'g1', { count: 10, blockMs: 200, claimIdleMs: 60_000 }),
        ).toEqual([]);
        expect(Date.now() - started).toBeGreaterThanOrEqual(150);
        const reading = store.readMetrics('guardians', 'g1', {
          count: 10,
          blockMs: 5_000,
          claimIdleMs: 60_000,
        });
        await sleep(50);
        const publishedAt = Date.now();
        await store.publishMetrics([makeSummary('checkout', 7)]);
        const got = await reading;
        expect(got.map((e) => e.summary.requests)).toEqual([7]);
        expect(Date.now() - publishedAt).toBeLessThan(2_000);
      });
    });

    describe('incidents', () => {
      it('stores, updates and lists incidents newest first with filters', async () => {
        const store = await create();
        await store.putIncident(incident('i1', 'production', 'open', '2025-01-01T00:00:00.000Z'));
        await store.putIncident(incident('i2', 'staging', 'open', '2025-01-02T00:00:00.000Z'));
        await store.putIncident(incident('i3', 'production', 'open', '2025-01-03T00:00:00.000Z'));
        const acked = {
          ...incident('i1', 'production', 'acknowledged', '2025-01-01T00:00:00.000Z'),
          acknowledgedBy: 'bob',
        };
        await store.putIncident(acked);
        expect(await store.getIncident('i1')).toEqual(acked);
        expect(await store.getIncident('nope')).toBeUndefined();
        expect((await store.listIncidents({ limit: 10 })).map((i) => i.id)).toEqual(['i3', 'i2', 'i1']);
        expect((await store.listIncidents({ limit: 2 })).map((i) => i.id)).toEqual(['i3', 'i2']);
        expect((await store.listIncidents({ env: 'production', limit: 10 })).map((i) => i.id)).toEqual([
          'i3',
          'i1',
        ]);
        expect((await store.listIncidents({ status: 'open', limit: 10 })).map((i) => i.id)).toEqual([
          'i3',
          'i2',
        ]);
        expect(
          (await store.listIncidents({ env: 'production', status: 'acknowledged', limit: 10 })).map(
            (i) => i.id,
          ),
        ).toEqual(['i1']);
      });

      it('grants an episode to exactly one of several concurrent claimants', async () => {
        const store = await create();
        const results = await Promise.all(
          ['a', 'b', 'c', 'd', 'e'].map((id) => store.claimEpisode('production:checkout:3', id)),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.claimEpisode('production:checkout:3', 'z')).toBe(false);
        expect(await store.claimEpisode('production:checkout:4', 'z')).toBe(true);
      });
    });

    describe('incident updates, episodes and verdicts', () => {
      it('applies concurrent incident updates one after another, losing none', async () => {
        const store = await create();
        await store.putIncident(incident('i1', 'production', 'open', '2025-01-01T00:00:00.000Z'));
        const notes = Array.from({ length: 8 }, (_, i) => `note ${i}`);
        await Promise.all(
          notes.map((message) =>
            store.updateIncident('i1', (current) => ({
              ...current,
              timeline: [...current.timeline, { at: '2025-01-01T00:00:01.000Z', kind: 'note', message }],
            })),
          ),
        );
        const stored = await store.getIncident('i1');
        expect(stored!.timeline.map((e) => e.message).sort()).toEqual(
          ['error rate above 1%', ...notes].sort(),
        );
        const acked = await store.updateIncident('i1', (current) => ({ ...current, status: 'acknowledged' }));
        expect(acked).toEqual({ ...stored, status: 'acknowledged' });
        expect(await store.updateIncident('i1', () => undefined)).toEqual(acked);
        expect(await store.updateIncident('nope', (current) => current)).toBeUndefined();
        expect((await store.listIncidents({ status: 'acknowledged', limit: 10 })).map((i) => i.id)).toEqual([
          'i1',
        ]);
      });

      it('records which incident an episode opened and when it was resolved, once', async () => {
        const store = await create();
        expect(await store.getEpisode('production:checkout:3')).toBeUndefined();
        await store.resolveEpisode('production:checkout:3', '2025-01-01T00:00:00.000Z');
        expect(await store.getEpisode('production:checkout:3')).toBeUndefined();
        await store.claimEpisode('production:checkout:3', 'inc-1');
        expect(await store.getEpisode('production:checkout:3')).toEqual({ incidentId: 'inc-1' });
        await store.resolveEpisode('production:checkout:3', '2025-01-02T00:00:00.000Z');
        await store.resolveEpisode('production:checkout:3', '2025-01-03T00:00:00.000Z');
        expect(await store.getEpisode('production:checkout:3')).toEqual({
          incidentId: 'inc-1',
          resolvedAt: '2025-01-02T00:00:00.000Z',
        });
        expect(await store.claimEpisode('production:checkout:3', 'inc-2')).toBe(false);
      });

      it('keeps the latest verdict per flag until it expires', async () => {
        const store = await create();
        const verdict = (version: number, status: Verdict['status']): Verdict =>
          verdictSchema.parse({
            env: 'production',
            flag: 'checkout',
            version,
            status,
            guarded: true,
            severity: 'sev2',
            autoKill: true,
            controlVariant: 'off',
            epoch: 1,
            triggers: status === 'regression' ? ['error_rate_vs_control'] : [],
            reason: '',
            variants: [],
            evaluatedAt: '2025-01-01T00:00:00.000Z',
            guardian: 'g1',
          });
        expect(await store.getVerdict('production', 'checkout')).toBeUndefined();
        await store.putVerdict(verdict(3, 'healthy'), 10_000);
        await store.putVerdict(verdict(4, 'regression'), 300);
        expect(await store.getVerdict('production', 'checkout')).toEqual(verdict(4, 'regression'));
        expect(await store.getVerdict('staging', 'checkout')).toBeUndefined();
        await sleep(400);
        expect(await store.getVerdict('production', 'checkout')).toBeUndefined();
      });
    });

    describe('outbox', () => {
      it('hands out due items oldest first, and updates and removes them', async () => {
        const store = await create();
        await store.enqueueOutbox(outboxItem('late', 3_000));
        await store.enqueueOutbox(outboxItem('first', 1_000));
        await store.enqueueOutbox(outboxItem('second', 2_000));
        expect((await store.dueOutbox(2_500, 10)).map((i) => i.id)).toEqual(['first', 'second']);
        expect((await store.dueOutbox(5_000, 2)).map((i) => i.id)).toEqual(['first', 'second']);
        expect(await store.dueOutbox(500, 10)).toEqual([]);

        const retried = { ...outboxItem('first', 4_000), attempts: 1, lastError: 'HTTP 503' };
        await store.updateOutbox(retried);
        expect((await store.dueOutbox(3_500, 10)).map((i) => i.id)).toEqual(['second', 'late']);
        expect(await store.dueOutbox(4_000, 10)).toContainEqual(retried);

        await store.removeOutbox('second');
        await store.updateOutbox(outboxItem('second', 0));
        expect((await store.dueOutbox(10_000, 10)).map((i) => i.id)).toEqual(['late', 'first']);

        await store.enqueueOutbox(outboxItem('first', 0));
        expect(await store.dueOutbox(10_000, 10)).toContainEqual(retried);
      });
    });

    describe('locks', () => {
      it('is held by one owner, renewed by it, released only by it, and expires', async () => {
        const store = await create();
        expect(await store.acquireLock('scheduler', 'g1', 300)).toBe(true);
        expect(await store.acquireLock('scheduler', 'g2', 300)).toBe(false);
        expect(await store.acquireLock('other', 'g2', 300)).toBe(true);
        await sleep(200);
        expect(await store.acquireLock('scheduler', 'g1', 300)).toBe(true);
        await sleep(200);
        expect(await store.acquireLock('scheduler', 'g2', 300)).toBe(false);
        await store.releaseLock('scheduler', 'g2');
        expect(await store.acquireLock('scheduler', 'g2', 300)).toBe(false);
        await store.releaseLock('scheduler', 'g1');
        expect(await store.acquireLock('scheduler', 'g2', 100)).toBe(true);
        await sleep(200);
        expect(await store.acquireLock('scheduler', 'g1', 300)).toBe(true);
      });
    });

    describe('idempotency', () => {
      it('records a claim with its write; the same claim again writes nothing and answers the record', async () => {
        const store = await create();
        const first = await store.putFlag(
          'production',
          makeFlag('checkout'),
          { absent: true },
          {
            ...actor,
            idempotency: claim('k1', 201),
          },
        );
        expect(await store.getIdempotency('k1')).toEqual({
          fingerprint: 'fp-k1',
          status: 201,
          result: first,
        });
        const again = await replayOf(
          store.putFlag('production', makeFlag('checkout', { description: 'again' }), undefined, {
            ...actor,
            idempotency: claim('k1', 201),
          }),
        );
        expect(again).toEqual({ fingerprint: 'fp-k1', status: 201, result: first });
        expect((await store.snapshot('production')).revision).toBe(1);
        expect(await store.audit('production', { limit: 10 })).toHaveLength(1);
        expect(await store.getFlag('production', 'checkout')).toEqual(first);
      });

      it('refuses a claim id recorded with another fingerprint, writing nothing', async () => {
        const store = await create();
        await store.putSegment('production', makeSegment('beta'), {
          ...actor,
          idempotency: claim('k1', 201),
        });
        expect(
          await rejectionCode(
            store.deleteSegment('production', 'beta', { ...actor, idempotency: claim('k1', 204, 'other') }),
          ),
        ).toBe('VIGIL_IDEMPOTENCY_KEY_REUSED');
        expect((await store.snapshot('production')).segments.map((s) => s.key)).toEqual(['beta']);
        expect((await store.getIdempotency('k1'))?.fingerprint).toBe('fp-k1');
      });

      it('records nothing for a refused write, so a retry runs', async () => {
        const store = await create();
        const flag = await store.putFlag('production', makeFlag('checkout'), undefined, actor);
        const stale = { version: flag.version + 5 };
        expect(
          await rejectionCode(
            store.putFlag('production', makeFlag('checkout'), stale, { ...actor, idempotency: claim('k1') }),
          ),
        ).toBe('VIGIL_VERSION_CONFLICT');
        expect(await store.getIdempotency('k1')).toBeUndefined();
        const saved = await store.putFlag(
          'production',
          makeFlag('checkout'),
          { version: flag.version },
          {
            ...actor,
            idempotency: claim('k1'),
          },
        );
        expect((await store.getIdempotency('k1'))?.result).toEqual(saved);
      });

      it('covers every write: delete, kill (even a no-op one), schedule, segments, tokens, incidents', async () => {
        const store = await create();
        const env = 'production';
        await store.putFlag(env, makeFlag('a'), undefined, actor);
        await store.putFlag(env, makeFlag('b'), undefined, actor);
        const killed = await store.setKill(env, 'a', { ...actor, killed: true, idempotency: claim('kill') });
        const again = await store.setKill(env, 'a', { ...actor, killed: true, idempotency: claim('kill-2') });
        expect(again).toEqual(killed);
        expect((await store.getIdempotency('kill'))?.result).toEqual(killed);
        expect((await store.getIdempotency('kill-2'))?.result).toEqual(killed);
        const schedule: Schedule = {
          variant: 'on',
          steps: [{ percent: 50, hold: 0 }],
          status: 'pending',
          stepIndex: -1,
          updatedAt: '2025-01-01T00:00:00.000Z',
        };
        const scheduled = await store.putSchedule(
          env,
          'b',
          { ...actor, schedule, idempotency: claim('sched') },
          undefined,
        );
        expect((await store.getIdempotency('sched'))?.result).toEqual(scheduled);
        await store.deleteFlag(env, 'b', undefined, { ...actor, idempotency: claim('del', 204) });
        expect(await store.getIdempotency('del')).toEqual({
          fingerprint: 'fp-del',
          status: 204,
          result: undefined,
        });
        const segment = await store.putSegment(env, makeSegment('beta'), {
          ...actor,
          idempotency: claim('seg'),
        });
        expect((await store.getIdempotency('seg'))?.result).toEqual(segment);
        await store.deleteSegment(env, 'beta', { ...actor, idempotency: claim('seg-del', 204) });
        expect((await store.getIdempotency('seg-del'))?.status).toBe(204);
        const revision = (await store.snapshot(env)).revision;
        // Replays of each write change nothing.
        await replayOf(store.setKill(env, 'a', { ...actor, killed: false, idempotency: claim('kill') }));
        await replayOf(store.deleteSegment(env, 'beta', { ...actor, idempotency: claim('seg-del', 204) }));
        await replayOf(
          store.putSchedule(env, 'a', { ...actor, schedule, idempotency: claim('sched') }, undefined),
        );
        expect((await store.snapshot(env)).revision).toBe(revision);
        expect((await store.getFlag(env, 'a'))?.killed).toBe(true);

        const t = token('tok_1', 'hash-1', '2025-01-01T00:00:00.000Z');
        await store.createToken(t, claim('tok', 201, 'fp-tok', 'sealed'));
        const { secretHash: _hash, ...info } = t;
        expect(await store.getIdempotency('tok')).toEqual({
          fingerprint: 'fp-tok',
          status: 201,
          result: info,
          attachment: 'sealed',
        });
        const other = token('tok_2', 'hash-2', '2025-01-01T00:00:00.000Z');
        await replayOf(store.createToken(other, claim('tok', 201, 'fp-tok', 'sealed')));
        expect((await store.listTokens()).map((x) => x.id)).toEqual(['tok_1']);
        expect(await store.deleteToken('tok_1', claim('tok-del', 204))).toBe(true);
        await replayOf(store.deleteToken('tok_1', claim('tok-del', 204)));
        expect(await store.getIdempotency('tok-del')).toEqual({
          fingerprint: 'fp-tok-del',
          status: 204,
          result: undefined,
        });

        await store.putIncident(incident('inc-1', env, 'open', '2025-01-01T00:00:00.000Z'));
        const acked = await store.updateIncident(
          'inc-1',
          (current) => ({ ...current, status: 'acknowledged' }),
          claim('ack'),
        );
        expect((await store.getIdempotency('ack'))?.result).toEqual(acked);
        const replayed = await replayOf(
          store.updateIncident('inc-1', (current) => ({ ...current, status: 'resolved' }), claim('ack')),
        );
        expect(replayed.result).toEqual(acked);
        expect((await store.getIncident('inc-1'))?.status).toBe('acknowledged');
      });

      it('forgets a record after the TTL, so the key may be used again', async () => {
        const store = await create({ idempotencyTtlMs: 300 });
        await store.putFlag('production', makeFlag('checkout'), undefined, {
          ...actor,
          idempotency: claim('k1'),
        });
        expect(await store.getIdempotency('k1')).toBeDefined();
        await sleep(500);
        expect(await store.getIdempotency('k1')).toBeUndefined();
        const saved = await store.putFlag('production', makeFlag('checkout'), undefined, {
          ...actor,
          idempotency: claim('k1'),
        });
        expect(saved.version).toBe(2);
      });

      it('lets one of two racing writes with the same claim apply, and answers the other from its record', async () => {
        const store = await create();
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, (_, i) =>
            store.putFlag('production', makeFlag('checkout', { description: `racer ${i}` }), undefined, {
              ...actor,
              idempotency: claim('race', 201),
            }),
          ),
        );
        const applied = results.filter((r) => r.status === 'fulfilled');
        expect(applied).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(IdempotentReplay);
        }
        expect((await store.snapshot('production')).revision).toBe(1);
        expect(await store.audit('production', { limit: 10 })).toHaveLength(1);
      });
    });

    it('answers ping while open', async () => {
      const store = await create();
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
