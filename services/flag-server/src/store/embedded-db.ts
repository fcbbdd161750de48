import type { AuditEntry } from '@vigil/proto';
import Database from 'better-sqlite3';
import { VigilError } from '../errors.js';
import type { JournalRecord, SavedState } from './embedded-state.js';
import type { Change } from './store.js';

/** The embedded store's database file, inside its data directory. */
export const DATABASE_FILE = 'vigil.db';
const SCHEMA_VERSION = '1';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS envs (env TEXT PRIMARY KEY, revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flags (env TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (env, key));
CREATE TABLE IF NOT EXISTS segments (env TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (env, key));
CREATE TABLE IF NOT EXISTS changes (env TEXT NOT NULL, revision INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (env, revision));
CREATE TABLE IF NOT EXISTS audit (env TEXT NOT NULL, revision INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (env, revision));
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (key TEXT PRIMARY KEY, incident_id TEXT NOT NULL, resolved_at TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, body TEXT NOT NULL);
-- Tables holding JSON bodies keep rowids: SQLite stores large rows poorly in WITHOUT ROWID b-trees.
-- flags and segments upsert in place, so an update keeps a record's rowid (its place), as the maps do.
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
`;

/** How much of each environment's logs the store keeps. */
export interface LogLimits {
  changeLog: number;
  audit: number;
}

/** The command that salvages a damaged database into a new file, for error messages and the runbook. */
export function recoveryCommand(file: string): string {
  return `sqlite3 ${file} ".recover" | sqlite3 ${file}.recovered (then move ${file}.recovered to ${file}), or restore a backup taken with \`vigil backup\``;
}

/**
 * The embedded store's SQLite database: WAL with `synchronous=FULL` (a committed transaction survives
 * power loss) and `locking_mode=EXCLUSIVE`, so the file is this process's from open until it exits or
 * closes: a second process is refused at once and a crashed one holds nothing (the OS drops its locks).
 */
export class EmbeddedDb {
  private readonly db: Database.Database;
  private readonly statements: ReturnType<typeof prepare>;
  private readonly writeAll: (records: JournalRecord[], now: number) => void;
  /**
   * The JSON of each stored flag and segment (by `env\nflag:key` / `env\nsegment:key`) with the object
   * it serializes, so the next write's audit entry reuses it for `before` instead of serializing again.
   */
  private readonly bodyJson = new Map<string, { body: unknown; json: string }>();

  private constructor(
    readonly file: string,
    db: Database.Database,
    private readonly limits: LogLimits,
  ) {
    this.db = db;
    this.statements = prepare(db);
    this.writeAll = db.transaction((records: JournalRecord[], now: number) => {
      const revisions = new Map<string, number>();
      for (const record of records) this.write(record, revisions);
      // Once per environment and group, not per write: its new revision, and the logs trimmed to it.
      const s = this.statements;
      for (const [env, revision] of revisions) {
        s.putEnv.run(env, revision);
        // Revisions are consecutive and each has one change and one audit entry: keep the newest.
        s.trimChanges.run(env, revision - this.limits.changeLog);
        s.trimAudit.run(env, revision - this.limits.audit);
      }
      s.expireIdempotency.run(now);
    });
  }

  /**
   * Opens (creating when missing) the database in `dir`, takes it for this process and checks it.
   * Throws `VIGIL_DATA_DIR_LOCKED` when another process holds it and `VIGIL_DATA_DIR_DAMAGED` when
   * SQLite finds it damaged; the message names the file either way.
   */
  static open(file: string, dir: string, limits: LogLimits): EmbeddedDb {
    let db: Database.Database | undefined;
    try {
      // No busy wait: a holder never lets go while it lives, and a dead one holds nothing.
      db = new Database(file, { timeout: 0 });
      // EXCLUSIVE before the first access keeps WAL's index in this process's memory (no -shm file).
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // Takes the write lock now, which EXCLUSIVE mode then keeps until close.
      db.exec('BEGIN EXCLUSIVE; COMMIT');
      const problems = db.pragma('quick_check', { simple: false }) as { quick_check: string }[];
      if (problems.length !== 1 || problems[0]?.quick_check !== 'ok') {
        const found = problems.map((p) => p.quick_check).slice(0, 3);
        throw new VigilError(
          'VIGIL_DATA_DIR_DAMAGED',
          `the embedded store's database ${file} is damaged (${found.join('; ')}); recover it with: ${recoveryCommand(file)}`,
          { file, problems: found },
        );
      }
      db.exec(SCHEMA);
      return new EmbeddedDb(file, db, limits);
    } catch (error) {
      db?.close();
      throw openError(error, file, dir);
    }
  }

  /** True once the schema holds a store (a fresh file, or one a crash left mid-migration, does not). */
  get initialized(): boolean {
    return this.statements.getMeta.get('schema') !== undefined;
  }

  /** Marks the database initialized, writing `saved` (a migrated data directory) in the same transaction. */
  initialize(saved: SavedState | undefined, origin: string): void {
    this.db.transaction(() => {
      if (saved) this.writeSaved(saved);
      this.statements.putMeta.run('schema', SCHEMA_VERSION);
      this.statements.putMeta.run('origin', origin);
    })();
  }

  /** Commits `records` in one transaction (one fsync); throws and writes nothing when it fails. */
  commit(records: JournalRecord[]): void {
    this.writeAll(records, Date.now());
  }

  /** Everything stored, in the form `EmbeddedState.load` takes. Throws `VIGIL_DATA_DIR_DAMAGED` on an unreadable row. */
  load(): SavedState {
    try {
      return this.read();
    } catch (error) {
      throw new VigilError(
        'VIGIL_DATA_DIR_DAMAGED',
        `the embedded store's database ${this.file} holds a record it cannot read (${(error as Error).message}); recover it with: ${recoveryCommand(this.file)}`,
        { file: this.file },
        { cause: error },
      );
    }
  }

  /** Copies the database, consistent at one instant, to `destination` with SQLite's online backup. */
  async backup(destination: string): Promise<void> {
    await this.db.backup(destination);
  }

  /** Checkpoints the WAL into the database and lets go of the file. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Serializes a flag or segment being written, remembering the JSON for the next write's audit entry. */
  private remember(env: string, kind: 'flag' | 'segment', key: string, body: unknown): string {
    const json = JSON.stringify(body);
    this.bodyJson.set(`${env}\n${kind}:${key}`, { body, json });
    return json;
  }

  /** Parses stored flags or segments, remembering each one's JSON (see `bodyJson`). */
  private remembered<T extends { key: string }>(env: string, kind: 'flag' | 'segment', rows: unknown[]): T[] {
    return (rows as { body: string }[]).map((row) => {
      const body = JSON.parse(row.body) as T;
      this.bodyJson.set(`${env}\n${kind}:${body.key}`, { body, json: row.body });
      return body;
    });
  }

  private read(): SavedState {
    const s = this.statements;
    const saved: SavedState = {
      envs: {},
      tokens: [],
      incidents: [],
      episodes: {},
      resolvedEpisodes: {},
      outbox: [],
      idempotency: [],
    };
    for (const { env, revision } of s.allEnvs.all() as { env: string; revision: number }[]) {
      saved.envs[env] = {
        revision,
        flags: this.remembered(env, 'flag', s.envFlags.all(env)),
        segments: this.remembered(env, 'segment', s.envSegments.all(env)),
        log: bodies<Change>(s.envChanges.all(env, this.limits.changeLog)).reverse(),
        audit: bodies<AuditEntry>(s.envAudit.all(env, this.limits.audit)).reverse(),
      };
    }
    saved.tokens = bodies(s.allTokens.all());
    saved.incidents = bodies(s.allIncidents.all());
    for (const row of s.allEpisodes.all() as {
      key: string;
      incident_id: string;
      resolved_at: string | null;
    }[]) {
      saved.episodes[row.key] = row.incident_id;
      if (row.resolved_at !== null) saved.resolvedEpisodes![row.key] = row.resolved_at;
    }
    saved.outbox = bodies(s.allOutbox.all());
    saved.idempotency = bodies(s.liveIdempotency.all(Date.now()));
    return saved;
  }

  /** Writes one record; a commit's environment and revision go into `revisions` for the group's end. */
  private write(record: JournalRecord, revisions: Map<string, number>): void {
    const s = this.statements;
    if ('idem' in record && record.idem !== undefined)
      s.putIdempotency.run(record.idem.id, record.idem.expiresAt, JSON.stringify(record.idem));
    switch (record.op) {
      case 'commit': {
        const { change, audit } = record;
        const { env, revision } = change;
        revisions.set(env, revision);
        // The written flag or segment is in the row, the change and the audit entry: serialize it once.
        // Looked up before this write replaces it: the JSON of what the audit entry's `before` holds.
        const kind = audit.action.startsWith('segment') ? 'segment' : 'flag';
        const before = this.bodyJson.get(`${env}\n${kind}:${audit.target}`);
        const beforeJson = before !== undefined && before.body === audit.before ? before.json : undefined;
        const flags = change.flags.map((flag) => this.remember(env, 'flag', flag.key, flag));
        const segments = change.segments.map((segment) =>
          this.remember(env, 'segment', segment.key, segment),
        );
        for (let i = 0; i < flags.length; i++) s.putFlag.run(env, change.flags[i]!.key, flags[i]);
        for (let i = 0; i < segments.length; i++) s.putSegment.run(env, change.segments[i]!.key, segments[i]);
        for (const key of change.deleted.flags) {
          s.deleteFlag.run(env, key);
          this.bodyJson.delete(`${env}\nflag:${key}`);
        }
        for (const key of change.deleted.segments) {
          s.deleteSegment.run(env, key);
          this.bodyJson.delete(`${env}\nsegment:${key}`);
        }
        s.putChange.run(env, revision, changeJson(change, flags, segments));
        const after = change.flags.length === 1 ? flags[0] : segments.length === 1 ? segments[0] : undefined;
        s.putAudit.run(env, revision, auditJson(audit, beforeJson, after));
        return;
      }
      case 'token.put':
        s.putToken.run(record.token.id, JSON.stringify(record.token));
        return;
      case 'token.delete':
        s.deleteToken.run(record.id);
        return;
      case 'incident.put':
        s.putIncident.run(record.incident.id, JSON.stringify(record.incident));
        return;
      case 'episode.claim':
        s.claimEpisode.run(record.key, record.incidentId);
        return;
      case 'episode.resolve':
        s.resolveEpisode.run(record.at, record.key);
        return;
      case 'outbox.put':
        s.putOutbox.run(record.item.id, JSON.stringify(record.item));
        return;
      case 'outbox.delete':
        s.deleteOutbox.run(record.id);
        return;
      case 'idempotency':
        return;
    }
  }

  private writeSaved(saved: SavedState): void {
    const s = this.statements;
    for (const [env, state] of Object.entries(saved.envs)) {
      s.putEnv.run(env, state.revision);
      for (const flag of state.flags) s.putFlag.run(env, flag.key, JSON.stringify(flag));
      for (const segment of state.segments) s.putSegment.run(env, segment.key, JSON.stringify(segment));
      for (const change of state.log) s.putChange.run(env, change.revision, JSON.stringify(change));
      state.audit.forEach((entry, i) => {
        s.putAudit.run(env, entry.revision ?? i - state.audit.length, JSON.stringify(entry));
      });
    }
    for (const token of saved.tokens) s.putToken.run(token.id, JSON.stringify(token));
    for (const incident of saved.incidents) s.putIncident.run(incident.id, JSON.stringify(incident));
    for (const [key, incidentId] of Object.entries(saved.episodes)) s.claimEpisode.run(key, incidentId);
    for (const [key, at] of Object.entries(saved.resolvedEpisodes ?? {})) s.resolveEpisode.run(at, key);
    for (const item of saved.outbox) s.putOutbox.run(item.id, JSON.stringify(item));
    for (const idem of saved.idempotency ?? [])
      s.putIdempotency.run(idem.id, idem.expiresAt, JSON.stringify(idem));
  }
}

function prepare(db: Database.Database) {
  const q = (sql: string) => db.prepare(sql);
  return {
    getMeta: q('SELECT value FROM meta WHERE key = ?'),
    putMeta: q('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
    putEnv: q('INSERT OR REPLACE INTO envs (env, revision) VALUES (?, ?)'),
    allEnvs: q('SELECT env, revision FROM envs'),
    putFlag: q(
      'INSERT INTO flags (env, key, body) VALUES (?, ?, ?) ON CONFLICT (env, key) DO UPDATE SET body = excluded.body',
    ),
    deleteFlag: q('DELETE FROM flags WHERE env = ? AND key = ?'),
    envFlags: q('SELECT body FROM flags WHERE env = ? ORDER BY rowid'),
    putSegment: q(
      'INSERT INTO segments (env, key, body) VALUES (?, ?, ?) ON CONFLICT (env, key) DO UPDATE SET body = excluded.body',
    ),
    deleteSegment: q('DELETE FROM segments WHERE env = ? AND key = ?'),
    envSegments: q('SELECT body FROM segments WHERE env = ? ORDER BY rowid'),
    putChange: q('INSERT OR REPLACE INTO changes (env, revision, body) VALUES (?, ?, ?)'),
    trimChanges: q('DELETE FROM changes WHERE env = ? AND revision <= ?'),
    envChanges: q('SELECT body FROM changes WHERE env = ? ORDER BY revision DESC LIMIT ?'),
    putAudit: q('INSERT OR REPLACE INTO audit (env, revision, body) VALUES (?, ?, ?)'),
    trimAudit: q('DELETE FROM audit WHERE env = ? AND revision <= ?'),
    envAudit: q('SELECT body FROM audit WHERE env = ? ORDER BY revision DESC LIMIT ?'),
    putToken: q('INSERT OR REPLACE INTO tokens (id, body) VALUES (?, ?)'),
    deleteToken: q('DELETE FROM tokens WHERE id = ?'),
    allTokens: q('SELECT body FROM tokens'),
    putIncident: q('INSERT OR REPLACE INTO incidents (id, body) VALUES (?, ?)'),
    allIncidents: q('SELECT body FROM incidents'),
    claimEpisode: q('INSERT OR IGNORE INTO episodes (key, incident_id) VALUES (?, ?)'),
    resolveEpisode: q('UPDATE episodes SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL'),
    allEpisodes: q('SELECT key, incident_id, resolved_at FROM episodes'),
    putOutbox: q('INSERT OR REPLACE INTO outbox (id, body) VALUES (?, ?)'),
    deleteOutbox: q('DELETE FROM outbox WHERE id = ?'),
    allOutbox: q('SELECT body FROM outbox'),
    putIdempotency: q('INSERT OR REPLACE INTO idempotency (id, expires_at, body) VALUES (?, ?, ?)'),
    expireIdempotency: q('DELETE FROM idempotency WHERE expires_at <= ?'),
    // Oldest first, as the in-memory map keeps them.
    liveIdempotency: q('SELECT body FROM idempotency WHERE expires_at > ? ORDER BY expires_at'),
  };
}

/** `JSON.stringify(change)`, with its flags and segments given already serialized. */
function changeJson(change: Change, flags: string[], segments: string[]): string {
  // Keys serialize as `"name":`, and a quote inside a string value is escaped: the first match is the key.
  return JSON.stringify({ ...change, flags: [], segments: [] })
    .replace('"flags":[]', `"flags":[${flags.join(',')}]`)
    .replace('"segments":[]', `"segments":[${segments.join(',')}]`);
}

/** `JSON.stringify(audit)` (up to key order), reusing `before` and `after` when already serialized. */
function auditJson(audit: AuditEntry, before: string | undefined, after: string | undefined): string {
  const { before: b, after: a, ...rest } = audit;
  let json = JSON.stringify(rest).slice(0, -1);
  if (b !== undefined) json += `,"before":${before ?? JSON.stringify(b)}`;
  if (a !== undefined) json += `,"after":${after ?? JSON.stringify(a)}`;
  return `${json}}`;
}

function bodies<T>(rows: unknown[]): T[] {
  return (rows as { body: string }[]).map((row) => JSON.parse(row.body) as T);
}

/** Turns SQLite's refusal to open into the store's start-up errors. */
function openError(error: unknown, file: string, dir: string): unknown {
  if (error instanceof VigilError) return error;
  const code = (error as { code?: unknown }).code;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')
    return new VigilError(
      'VIGIL_DATA_DIR_LOCKED',
      `the embedded store's data directory ${dir} is in use by another Vigil process (${file} is locked); stop it or set VIGIL_DATA_DIR to another directory`,
      { dir, file },
      { cause: error },
    );
  if (typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code))
    return new VigilError(
      'VIGIL_DATA_DIR_DAMAGED',
      `the embedded store's database ${file} is damaged (${(error as Error).message}); recover it with: ${recoveryCommand(file)}`,
      { file },
      { cause: error },
    );
  return new VigilError(
    'VIGIL_STORE_UNAVAILABLE',
    `could not open the embedded store's database ${file}: ${(error as Error).message}`,
    { file },
    { cause: error },
  );
}
