import { appendFile, cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isVigilError } from '../../src/errors.js';
import { EmbeddedStore } from '../../src/store/embedded.js';
import { DATABASE_FILE } from '../../src/store/embedded-db.js';
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

/** A data directory the journal store (before SQLite) wrote, left as a crash leaves it (not closed). */
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/journal-data-dir');

/**
 * The disk as a crash of the store holding `dir` would leave it, in a new directory: the database
 * and its WAL as they are now (every committed transaction is in the WAL, fsynced).
 */
async function crashCopy(dir: string): Promise<string> {
  const copy = await dataDir();
  await cp(dir, copy, { recursive: true });
  return copy;
}

storeContract('embedded', async (limits) => {
  const store = new EmbeddedStore({ dataDir: await dataDir(), ...limits, onListenerError: () => {} });
  await store.start();
  return store;
});

describe('embedded store persistence', () => {
  const open: EmbeddedStore[] = [];
  const startAt = async (dir: string) => {
    const store = new EmbeddedStore({ dataDir: dir });
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
    // Not closed: the database and its WAL are all there is, as after a crash.
    const crashed = new EmbeddedStore({ dataDir: dir });
    await crashed.start();
    await writeEverything(crashed);
    const before = await observe(crashed);
    const recovered = await startAt(await crashCopy(dir));
    expect(await observe(recovered)).toEqual(before);
  });

  it('refuses a second store on the same data directory at once, naming the directory', async () => {
    const dir = await dataDir();
    const holder = await startAt(dir);
    const started = Date.now();
    const refused = await new EmbeddedStore({ dataDir: dir }).start().catch((error: unknown) => error);
    expect(isVigilError(refused, 'VIGIL_DATA_DIR_LOCKED'), String(refused)).toBe(true);
    expect((refused as Error).message).toContain(dir);
    // No waiting for a lock to go stale: SQLite's lock is held exactly as long as its holder lives.
    expect(Date.now() - started).toBeLessThan(1_000);
    // The holder kept the file all along; once it closes, the directory is free.
    await holder.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    await open.pop()!.close();
    const next = await startAt(dir);
    expect((await next.snapshot('production')).revision).toBe(1);
  });

  it('refuses a damaged database with a message naming the file and the recovery command, changing nothing', async () => {
    const dir = await dataDir();
    const store = await startAt(dir);
    for (let i = 0; i < 200; i++)
      await store.putFlag('production', makeFlag(`f${i}`), undefined, { actor: 'alice' });
    await open.pop()!.close();
    const file = join(dir, DATABASE_FILE);
    const bytes = await readFile(file);
    // Overwrite a page in the middle of the file, as a bad disk block would.
    const damaged = Buffer.from(bytes);
    damaged.fill(0x5a, 4096 * 3, 4096 * 3 + 2048);
    await writeFile(file, damaged);
    const refused = await new EmbeddedStore({ dataDir: dir }).start().catch((error: unknown) => error);
    expect(isVigilError(refused, 'VIGIL_DATA_DIR_DAMAGED'), String(refused)).toBe(true);
    expect((refused as Error).message).toContain(file);
    expect((refused as Error).message).toContain('.recover');
    expect(await readFile(file)).toEqual(damaged);
  });

  it('refuses a truncated database, naming the file', async () => {
    const dir = await dataDir();
    const store = await startAt(dir);
    for (let i = 0; i < 200; i++)
      await store.putFlag('production', makeFlag(`f${i}`), undefined, { actor: 'alice' });
    await open.pop()!.close();
    const file = join(dir, DATABASE_FILE);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const refused = await new EmbeddedStore({ dataDir: dir }).start().catch((error: unknown) => error);
    expect(isVigilError(refused, 'VIGIL_DATA_DIR_DAMAGED'), String(refused)).toBe(true);
    expect((refused as Error).message).toContain(file);
  });

  it('commits writes of one tick together, each still checked against the ones before it', async () => {
    const store = await startAt(await dataDir());
    const seen = collect(store);
    const writes = [
      store.putFlag('production', makeFlag('a'), { absent: true }, { actor: 'alice' }),
      store.putFlag('production', makeFlag('a'), { absent: true }, { actor: 'bob' }),
      store.putFlag('production', makeFlag('a'), { version: 1 }, { actor: 'carol' }),
      store.putFlag('production', makeFlag('a'), { version: 1 }, { actor: 'dave' }),
    ];
    const results = await Promise.allSettled(writes);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'VIGIL_ALREADY_EXISTS' });
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'VIGIL_VERSION_CONFLICT' });
    expect(revisions(seen.changes)).toEqual([1, 2]);
    const audit = await store.audit('production', { limit: 10 });
    expect(audit.map((e) => e.actor)).toEqual(['carol', 'alice']);
  });

  it('refuses every write of a group whose commit failed, and keeps serving what was committed', async () => {
    const dir = await dataDir();
    const store = await startAt(dir);
    await store.putFlag('production', makeFlag('a'), undefined, { actor: 'alice' });
    // A trigger stands in for a failing disk: the group's transaction aborts and rolls back.
    (store as unknown as { db: { db: Database.Database } }).db.db.exec(
      "CREATE TRIGGER fail BEFORE INSERT ON changes WHEN NEW.revision = 3 BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
    );
    const group = await Promise.allSettled([
      store.putFlag('production', makeFlag('b'), undefined, { actor: 'alice' }),
      store.putFlag('production', makeFlag('c'), undefined, { actor: 'alice' }),
    ]);
    expect(group.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((group[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'VIGIL_STORE_UNAVAILABLE' });
    const snapshot = await store.snapshot('production');
    expect(snapshot.revision).toBe(1);
    expect(snapshot.flags.map((f) => f.key)).toEqual(['a']);
  });

  it('migrates a journal-store data directory on first start, keeping its files renamed', async () => {
    const dir = await dataDir();
    await cp(fixture, dir, { recursive: true });
    // The fixture's journal, written by the journal store, plus a line torn by a crash mid-append.
    await appendFile(join(dir, 'journal.jsonl'), '{"seq":10,"record":{"op":"commit","change":{"env":"produc');
    const notices: string[] = [];
    const store = new EmbeddedStore({ dataDir: dir, onNotice: (message) => notices.push(message) });
    await store.start();
    open.push(store);
    expect(await observe(store)).toMatchObject({
      envs: ['production', 'staging'],
      episodeTaken: true,
      outbox: [{ id: 'o1', attempts: 2 }],
    });
    const production = await store.snapshot('production');
    expect(production.revision).toBe(5);
    expect(production.flags.map((f) => [f.key, f.killed])).toEqual([['checkout', true]]);
    expect(production.segments.map((s) => s.key)).toEqual(['beta']);
    expect((await store.listTokens()).map((t) => t.id)).toEqual(['t1']);
    expect(revisions((await store.changesSince('production', 0))!)).toEqual([1, 2, 3, 4, 5]);
    expect(notices.some((n) => n.includes('torn last line'))).toBe(true);
    expect(notices.some((n) => n.includes('migrated'))).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(
      ['journal.jsonl.migrated', 'snapshot.json.migrated', DATABASE_FILE, `${DATABASE_FILE}-wal`].sort(),
    );
    const next = await store.putFlag('production', makeFlag('new'), undefined, { actor: 'bob' });
    expect(next.version).toBe(6);
    await open.pop()!.close();
    // A second start reads the database only.
    const again = await startAt(dir);
    expect((await again.snapshot('production')).revision).toBe(6);
  });

  it('refuses to migrate a truncated snapshot, naming the file, and writes no database content', async () => {
    const dir = await dataDir();
    await cp(fixture, dir, { recursive: true });
    const snapshot = join(dir, 'snapshot.json');
    const text = await readFile(snapshot, 'utf8');
    await writeFile(snapshot, text.slice(0, text.length / 2));
    const refused = await new EmbeddedStore({ dataDir: dir }).start().catch((error: unknown) => error);
    expect(isVigilError(refused, 'VIGIL_DATA_DIR_DAMAGED'), String(refused)).toBe(true);
    expect((refused as Error).message).toContain(snapshot);
    // Nothing was retired: fixing the file and starting again migrates it.
    await writeFile(snapshot, text);
    const store = await startAt(dir);
    expect((await store.snapshot('production')).revision).toBe(5);
  });

  it('backs up a consistent copy that a store opens as it was', async () => {
    const dir = await dataDir();
    const store = await startAt(dir);
    await writeEverything(store);
    const before = await observe(store);
    const copy = await dataDir();
    await store.backup(join(copy, DATABASE_FILE));
    await store.putFlag('production', makeFlag('after'), undefined, { actor: 'bob' });
    const restored = await startAt(copy);
    expect(await observe(restored)).toEqual(before);
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
