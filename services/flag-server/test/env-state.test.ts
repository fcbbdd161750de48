import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Flag, type FlagInput, flagSchema, type Segment, segmentSchema } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { EnvState } from '../src/env-state.js';
import { type EnvEvent, Environments } from '../src/environments.js';
import { createLogger } from '../src/logger.js';
import { ServerMetrics } from '../src/metrics.js';
import { EmbeddedStore } from '../src/store/embedded.js';
import type { Change } from '../src/store/store.js';
import { boolFlag } from './helpers/server.js';

const flag = (key: string, version: number, extra: Partial<FlagInput> = {}): Flag =>
  flagSchema.parse({ ...boolFlag(key, extra), version });
const seg = (key: string, version: number): Segment =>
  segmentSchema.parse({ key, included: ['someone'], version });
const usesSegment = (segment: string) => ({
  rules: [
    {
      id: 'r',
      clauses: [{ attribute: 'key', op: 'inSegment' as const, values: [segment] }],
      serve: { variant: 'on' },
    },
  ],
});
const change = (revision: number, parts: Partial<Omit<Change, 'env' | 'revision'>>): Change => ({
  env: 'production',
  revision,
  flags: [],
  segments: [],
  deleted: { flags: [], segments: [] },
  ...parts,
});
const parse = (buffer: Buffer) => JSON.parse(buffer.toString()) as Record<string, unknown>;

describe('EnvState', () => {
  it("computes each change's client view against the state before and after it", () => {
    const state = new EnvState('production', 10);
    state.load({ env: 'production', revision: 1, flags: [], segments: [seg('vip', 1), seg('staff', 1)] });

    const joined = state.apply(
      change(2, { flags: [flag('banner', 2, { clientSide: true, ...usesSegment('vip') })] }),
    )!;
    expect(joined.clientPatch).toMatchObject({ flags: [{ key: 'banner' }], segments: [{ key: 'vip' }] });

    const internal = state.apply(
      change(3, { flags: [flag('billing', 3, usesSegment('staff'))], segments: [seg('staff', 3)] }),
    )!;
    expect(internal.clientPatch).toEqual({
      revision: 3,
      flags: [],
      segments: [],
      deleted: { flags: [], segments: [] },
    });
    expect(parse(internal.message('server'))).toMatchObject({
      type: 'patch',
      flags: [{ key: 'billing' }],
      segments: [{ key: 'staff' }],
    });

    const segmentEdit = state.apply(change(4, { segments: [seg('vip', 4)] }))!;
    expect(segmentEdit.clientPatch.segments).toEqual([expect.objectContaining({ key: 'vip', version: 4 })]);

    const left = state.apply(
      change(5, { flags: [flag('banner', 5, { clientSide: false, ...usesSegment('vip') })] }),
    )!;
    expect(left.clientPatch.deleted).toEqual({ flags: ['banner'], segments: ['vip'] });
    expect(JSON.parse(state.snapshot('client').body)).toEqual({ revision: 5, flags: [], segments: [] });
  });

  it('ignores changes not newer than its revision', () => {
    const state = new EnvState('production', 10);
    state.load({ env: 'production', revision: 5, flags: [flag('a', 5)], segments: [] });
    expect(state.apply(change(5, { deleted: { flags: ['a'], segments: [] } }))).toBeUndefined();
    expect(state.flags.has('a')).toBe(true);
  });

  it('keeps recent changes for resuming, up to its buffer size', () => {
    const state = new EnvState('production', 2);
    state.load({ env: 'production', revision: 0, flags: [], segments: [] });
    for (let r = 1; r <= 4; r++) state.apply(change(r, { flags: [flag(`f${r}`, r)] }));
    expect(state.changesSince(4)).toEqual([]);
    expect(state.changesSince(2)!.map((a) => a.revision)).toEqual([3, 4]);
    expect(state.changesSince(1)).toBeUndefined();
  });

  it('serializes a snapshot once per revision, as body and message', () => {
    const state = new EnvState('production', 2);
    state.load({ env: 'production', revision: 3, flags: [flag('b', 2), flag('a', 3)], segments: [] });
    const first = state.snapshot('server');
    expect(state.snapshot('server')).toBe(first);
    expect(JSON.parse(first.body).flags.map((f: Flag) => f.key)).toEqual(['a', 'b']);
    expect(parse(first.message)).toEqual({ type: 'snapshot', ...JSON.parse(first.body) });
    state.apply(change(4, { deleted: { flags: ['a'], segments: [] } }));
    expect(state.snapshot('server')).not.toBe(first);
  });
});

/** An embedded store that loses the changes it is told to, on their way to subscribers. */
class LossyStore extends EmbeddedStore {
  readonly drop = new Set<number>();
  override subscribe(listener: (change: Change) => void): () => void {
    return super.subscribe((c) => {
      if (!this.drop.has(c.revision)) listener(c);
    });
  }
}

describe('Environments', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'vigil-envs-'));
    const store = new LossyStore({ dataDir: dir });
    await store.start();
    const envs = new Environments(store, {
      bufferSize: 100,
      log: createLogger('silent'),
      metrics: new ServerMetrics(),
    });
    cleanups.push(async () => {
      envs.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });
    const events: EnvEvent[] = [];
    envs.on((e) => events.push(e));
    return { store, envs, events };
  }

  it('loads environments from the store and follows its changes in revision order', async () => {
    const { store, envs, events } = await setup();
    await store.putFlag('production', flag('a', 0), undefined, { actor: 't' });
    await envs.start();
    expect((await envs.get('production')).revision).toBe(1);
    await store.putFlag('production', flag('b', 0), undefined, { actor: 't' });
    expect(events.map((e) => (e.kind === 'patch' ? e.applied.revision : 'reset'))).toEqual([2]);
    expect([...envs.peek('production')!.flags.keys()]).toEqual(['a', 'b']);
  });

  it('fills a gap in revisions from the change log before applying what follows', async () => {
    const { store, envs, events } = await setup();
    await envs.start();
    await envs.get('production');
    store.drop.add(2);
    for (const key of ['a', 'b', 'c'])
      await store.putFlag('production', flag(key, 0), undefined, { actor: 't' });
    const state = envs.peek('production')!;
    await expect.poll(() => state.revision).toBe(3);
    expect(events.map((e) => (e.kind === 'patch' ? e.applied.revision : 'reset'))).toEqual([1, 2, 3]);
    expect([...state.flags.keys()].sort()).toEqual(['a', 'b', 'c']);
  });
});
