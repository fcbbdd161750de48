import type { AuditEntry, Flag, Schedule, Segment, Serve } from '@vigil/proto';
import { VigilError } from '../errors.js';
import type { Change, Expectation } from './store.js';

/**
 * The fields of a flag that the store owns rather than the writer: the kill switch (only `setKill`
 * changes it, so an edit never silently revives a killed flag), the schedule (only `putSchedule`
 * changes it, so an edit never rewinds a progressive rollout), the version and the timestamps.
 */
export interface FlagMeta {
  killed: boolean;
  killedAt?: string;
  killedBy?: string;
  killReason?: string;
  schedule?: Schedule;
  version: number;
  createdAt?: string;
  updatedAt?: string;
}

/** A flag without its store-owned fields: what a write supplies. */
export type FlagBody = Omit<Flag, keyof FlagMeta>;

/** Splits a flag into the writer's part and the store's part. */
export function splitFlag(flag: Flag): { body: FlagBody; meta: FlagMeta } {
  const { killed, killedAt, killedBy, killReason, schedule, version, createdAt, updatedAt, ...body } = flag;
  const meta: FlagMeta = { killed, version };
  if (killedAt !== undefined) meta.killedAt = killedAt;
  if (killedBy !== undefined) meta.killedBy = killedBy;
  if (killReason !== undefined) meta.killReason = killReason;
  if (schedule !== undefined) meta.schedule = schedule;
  if (createdAt !== undefined) meta.createdAt = createdAt;
  if (updatedAt !== undefined) meta.updatedAt = updatedAt;
  return { body, meta };
}

/** The store-owned fields a flag keeps across a put: its kill switch and schedule (as given on create). */
export type OwnedFields = Pick<FlagMeta, 'killed' | 'killedAt' | 'killedBy' | 'killReason' | 'schedule'>;

/** The kill and schedule fields of a flag (on create, an import may bring a killed or scheduled flag). */
export function ownedFields(flag: Flag): OwnedFields {
  // Absent fields stay absent (not `undefined`), as they are after a round trip through Redis.
  const { version: _version, createdAt: _createdAt, updatedAt: _updatedAt, ...owned } = splitFlag(flag).meta;
  return owned;
}

/** Throws the error a write expectation implies for the stored version (`undefined` when absent). */
export function checkExpectation(
  env: string,
  key: string,
  stored: number | undefined,
  expect: Expectation,
  what: 'flag' | 'segment' = 'flag',
): void {
  if (expect === undefined) return;
  if ('absent' in expect) {
    if (stored !== undefined)
      throw new VigilError('VIGIL_ALREADY_EXISTS', `${what} ${key} already exists in ${env}`);
    return;
  }
  if (stored === undefined) throw new VigilError('VIGIL_NOT_FOUND', `${what} ${key} not found in ${env}`);
  if (stored !== expect.version) {
    throw new VigilError(
      'VIGIL_VERSION_CONFLICT',
      `${what} ${key} in ${env} is at version ${stored}, not ${expect.version}`,
      { current: stored, expected: expect.version },
    );
  }
}

/** The flag as stored after a put: the writer's body, the kept or initial kill and schedule, the new version. */
export function storedFlag(flag: Flag, previous: Flag | undefined, revision: number, at: string): Flag {
  const { body } = splitFlag(flag);
  const owned = ownedFields(previous ?? flag);
  return { ...body, ...owned, version: revision, createdAt: previous?.createdAt ?? at, updatedAt: at };
}

/** The flag after a schedule write: only the schedule, the fallthrough (when given) and the version change. */
export function scheduledFlag(
  flag: Flag,
  schedule: Schedule | undefined,
  fallthrough: Serve | undefined,
  revision: number,
): Flag {
  const { schedule: _schedule, ...rest } = flag;
  const next: Flag = { ...rest, version: revision };
  if (fallthrough !== undefined) next.fallthrough = fallthrough;
  if (schedule !== undefined) next.schedule = schedule;
  return next;
}

/** The flag after a kill or revive: only the kill fields and the version change. */
export function killedFlag(
  flag: Flag,
  killed: boolean,
  revision: number,
  by: string,
  at: string,
  reason?: string,
): Flag {
  const { killedAt: _a, killedBy: _b, killReason: _r, ...rest } = flag;
  if (!killed) return { ...rest, killed: false, version: revision };
  const next: Flag = { ...rest, killed: true, killedAt: at, killedBy: by, version: revision };
  if (reason !== undefined && reason !== '') next.killReason = reason;
  return next;
}

/** A change that upserts nothing and deletes nothing; writers fill in one side. */
export function emptyChange(env: string, revision: number): Change {
  return { env, revision, flags: [], segments: [], deleted: { flags: [], segments: [] } };
}

/** The audit id of the write that produced `revision`; ids sort like revisions within an environment. */
export function auditId(revision: number): string {
  return `${revision}-1`;
}

/** The revision an audit id names, for paging with `before`. */
export function auditRevision(id: string): number {
  const match = /^(\d+)-\d+$/.exec(id);
  if (!match) throw new VigilError('VIGIL_BAD_REQUEST', `not an audit id: ${id}`);
  return Number(match[1]);
}

/** Builds an audit entry, leaving out absent optional fields so both stores return the same shape. */
export function auditEntry(fields: {
  env: string;
  revision: number;
  at: string;
  actor: string;
  action: AuditEntry['action'];
  target: string;
  reason?: string | undefined;
  before?: Flag | Segment | undefined;
  after?: Flag | Segment | undefined;
}): AuditEntry {
  const entry: AuditEntry = {
    id: auditId(fields.revision),
    env: fields.env,
    at: fields.at,
    actor: fields.actor,
    action: fields.action,
    target: fields.target,
    revision: fields.revision,
  };
  if (fields.reason !== undefined && fields.reason !== '') entry.reason = fields.reason;
  if (fields.before !== undefined) entry.before = fields.before;
  if (fields.after !== undefined) entry.after = fields.after;
  return entry;
}
