import { appendFile, copyFile, cp, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isVigilError } from '../../src/errors.js';
import { LOCK_NAME } from '../../src/store/data-dir-lock.js';
import { EmbeddedStore } from '../../src/store/embedded.js';
import { collect, makeFlag, makeSegment, revisions, storeContract } from './contract.js';

const dirs: string[] = [];
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-embedded-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * The disk as a crash of the store holding `dir` would leave it, in a new directory: the files as they
 * are now, without the dead process's lock (which would go stale; see the lock tests below).
 */
async function crashCopy(dir: string): Promise<string> {
  const copy = await dataDir();
  await cp(dir, copy, { recursive: true, filter: (source) => !source.endsWith(`/${LOCK_NAME}`) });
  return copy;
}

storeContract('embedded', async (limits) => {
  const store = new EmbeddedStore({ dataDir: await dataDir(), ...limits, onListenerError: () => {} });
  await store.start();
  return store;
});

describe('embedded store persistence', () => {
  const open: EmbeddedStore[] = [];
  const startAt = async (dir: string, compactEvery?: number) => {
    const store = new EmbeddedStore({ dataDir: dir, compactEvery });
    await store.start();
    open.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  /** Writes one of everything the store persists. */
  async function writeEverything(store: EmbeddedStore): Promise<void> {
    const actor = { actor: 'alice', reason: 'setup' };
    await store.putFlag('production', makeFlag('checkout'), { absent: true }, actor);
    await store.putFlag('production', makeFlag('search'), { absent: true }, actor);
    await store.setKill('production', 'checkout', { killed: true, actor: 'guardian', reason: 'errors' });
    await store.putSegment('production', makeSegment('beta'), actor);
    await store.deleteFlag('production', 'search', undefined, actor);
    await store.putFlag('staging', makeFlag('checkout'), undefined, actor);
    await store.createToken({
      id: 't1',
      name: 'ci',
      scopes: ['admin'],
      createdAt: '2025-01-01T00:00:00.000Z',
      secretHash: 'h1',
    });
    await store.claimEpisode('production:checkout:1', 'i1');
    await store.enqueueOutbox({
      id: 'o1',
      target: 'slack',
      key: 'k1',
      payload: { text: 'hi' },
      attempts: 2,
      notBefore: 5,
    });
  }

  /** Everything observable about the persisted state. */
  async function observe(store: EmbeddedStore) {
    return {
      envs: await store.listEnvs(),
      production: await store.snapshot('production'),
      staging: await store.snapshot('staging'),
      log: await store.changesSince('production', 0),
      audit: await store.audit('production', { limit: 100 }),
      token: await store.findToken('h1'),
      episodeTaken: !(await store.claimEpisode('production:checkout:1', 'other')),
      outbox: await store.dueOutbox(10, 10),
    };
  }

  it('loses nothing acknowledged across a clean restart', async () => {
    const dir = await dataDir();
    const first = await startAt(dir);
    await writeEverything(first);
    const before = await observe(first);
    await first.close();
    const second = await startAt(dir);
    expect(await observe(second)).toEqual(before);
    expect(before.production.revision).toBe(5);
    const next = await second.putFlag('production', makeFlag('new'), undefined, { actor: 'bob' });
    expect(next.version).toBe(6);
  });

  it('loses nothing acknowledged when the process dies without closing', async () => {
    const dir = await dataDir();
    // Not closed: the journal is all there is, as after a crash.
    const crashed = new EmbeddedStore({ dataDir: dir });
    await crashed.start();
    await writeEverything(crashed);
    const before = await observe(crashed);
    const recovered = await startAt(await crashCopy(dir));
    expect(await observe(recovered)).toEqual(before);
  });

  it('ignores a torn last journal line and keeps appending cleanly after it', async () => {
    const dir = await dataDir();
    const crashed = new EmbeddedStore({ dataDir: dir });
    await crashed.start();
    await crashed.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    await crashed.putFlag('production', makeFlag('b'), undefined, { actor: 'alice' });
    // A crash mid-append leaves half a record and no newline; that write was never acknowledged.
    const disk = await crashCopy(dir);
    await appendFile(join(disk, 'journal.jsonl'), '{"seq":3,"record":{"op":"commit","change":{"env":"produc');

    const recovered = await startAt(disk);
    const snapshot = await recovered.snapshot('production');
    expect(snapshot.revision).toBe(2);
    expect(snapshot.flags.map((f) => f.key).sort()).toEqual(['a', 'b']);
    await recovered.putFlag('production', makeFlag('c'), undefined, { actor: 'alice' });
    await recovered.close();

    const again = await startAt(disk);
    expect((await again.snapshot('production')).flags.map((f) => f.key).sort()).toEqual(['a', 'b', 'c']);
    expect(revisions((await again.changesSince('production', 0))!)).toEqual([1, 2, 3]);
  });

  it('replays nothing twice when a crash falls between writing the snapshot and emptying the journal', async () => {
    const dir = await dataDir();
    const store = await startAt(dir);
    await store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    await store.putFlag('production', makeFlag('b'), undefined, { actor: 'alice' });
    const journal = join(dir, 'journal.jsonl');
    await copyFile(journal, `${journal}.saved`);
    await store.close();
    expect(await readFile(journal, 'utf8')).toBe('');
    await copyFile(`${journal}.saved`, journal);

    const reopened = await startAt(dir);
    expect(revisions((await reopened.changesSince('production', 0))!)).toEqual([1, 2]);
    expect(await reopened.audit('production', { limit: 10 })).toHaveLength(2);
  });

  it('compacts the journal into the snapshot after enough writes', async () => {
    const dir = await dataDir();
    const store = await startAt(dir, 5);
    for (let i = 0; i < 12; i++)
      await store.putFlag('production', makeFlag(`f${i}`), undefined, { actor: 'alice' });
    const lines = (await readFile(join(dir, 'journal.jsonl'), 'utf8')).split('\n').filter(Boolean);
    expect(lines.length).toBeLessThan(5);
    const crashedCopy = await startAt(await crashCopy(dir));
    expect((await crashedCopy.snapshot('production')).revision).toBe(12);
  });

  it('refuses to start on a journal corrupted before its last line', async () => {
    const dir = await dataDir();
    const store = new EmbeddedStore({ dataDir: dir });
    await store.start();
    await store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    const disk = await crashCopy(dir);
    const journal = join(disk, 'journal.jsonl');
    const text = await readFile(journal, 'utf8');
    await writeFile(journal, `garbage\n${text}`);
    const reopened = new EmbeddedStore({ dataDir: disk });
    await expect(reopened.start()).rejects.toThrow(/corrupt journal/);
    // A start that failed lets go of the directory.
    await writeFile(journal, text);
    await startAt(disk);
  });

  it('refuses a data directory another store holds, after waiting in case its holder died', async () => {
    const dir = await dataDir();
    // Both with a short staleness (the holder refreshes its lock at half of it), as every Vigil has the same.
    const holder = new EmbeddedStore({ dataDir: dir, lockStaleMs: 2000 });
    await holder.start();
    open.push(holder);
    const events: string[] = [];
    const second = new EmbeddedStore({
      dataDir: dir,
      lockStaleMs: 2000,
      onLockEvent: (event) => events.push(event.kind),
    });
    const refused = await second.start().catch((error: unknown) => error);
    expect(isVigilError(refused, 'VIGIL_DATA_DIR_LOCKED'), String(refused)).toBe(true);
    expect((refused as Error).message).toContain('VIGIL_DATA_DIR');
    expect(events).toEqual(['waiting']);
    // Once the holder closes, the directory is free; the holder kept its lock all along.
    await holder.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    await open.pop()!.close();
    await startAt(dir);
  });

  it('stops acknowledging writes once another process took its lock', async () => {
    const dir = await dataDir();
    const lost = new Promise<string>((resolve) => {
      const store = new EmbeddedStore({
        dataDir: dir,
        lockStaleMs: 2000,
        onLockEvent: (event) => event.kind === 'lost' && resolve(event.error.message),
      });
      void store.start().then(async () => {
        open.push(store);
        await store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
        // Another process decided the lock was stale and took it.
        await rm(join(dir, LOCK_NAME), { recursive: true });
        await mkdir(join(dir, LOCK_NAME));
      });
    });
    expect(await lost).toMatch(/compromised|lock/i);
    const store = open[open.length - 1]!;
    const refused = await store
      .putFlag('production', makeFlag('b'), undefined, { actor: 'alice' })
      .catch((error: unknown) => error);
    expect(isVigilError(refused, 'VIGIL_STORE_UNAVAILABLE')).toBe(true);
  });

  it('takes over the lock of a holder that died: one not refreshed for longer than it may live', async () => {
    const dir = await dataDir();
    const left = join(dir, LOCK_NAME);
    await mkdir(left);
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(left, minuteAgo, minuteAgo);
    const events: string[] = [];
    const store = new EmbeddedStore({ dataDir: dir, onLockEvent: (event) => events.push(event.kind) });
    await store.start();
    open.push(store);
    expect(events).toEqual([]);
    await store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
  });

  it('delivers changes to subscribers synchronously after the write resolves', async () => {
    const store = await startAt(await dataDir());
    const seen = collect(store);
    await store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    expect(revisions(seen.changes)).toEqual([1]);
  });

  it('rejects operations after close with VIGIL_STORE_UNAVAILABLE', async () => {
    const store = new EmbeddedStore({ dataDir: await dataDir() });
    await store.start();
    await store.close();
    await expect(
      store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' }),
    ).rejects.toMatchObject({
      code: 'VIGIL_STORE_UNAVAILABLE',
    });
    await expect(store.ping()).rejects.toMatchObject({ code: 'VIGIL_STORE_UNAVAILABLE' });
  });
});
