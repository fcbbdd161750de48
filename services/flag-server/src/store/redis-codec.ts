import type { AuditEntry, Flag, Segment } from '@vigil/proto';
import { emptyChange } from './records.js';
import type { Change } from './store.js';

/** A stream entry as ioredis returns it: id and a flat field/value list. */
export type StreamEntry = [id: string, fields: string[]];

/** Decodes a stored `meta \n body` record (see redis-scripts.ts) into one object. */
export function decodeRecord<T extends Flag | Segment>(raw: string): T {
  const nl = raw.indexOf('\n');
  return { ...JSON.parse(raw.slice(nl + 1)), ...JSON.parse(raw.slice(0, nl)) } as T;
}

/** A stream entry's fields as an object. */
export function fieldsOf(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

/** The change a log entry records (`k` is its kind, `v` the stored record or the deleted key). */
export function decodeChange(
  env: string,
  revision: number,
  kind: string | undefined,
  value: string | undefined,
): Change {
  const change = emptyChange(env, revision);
  if (value === undefined) return change;
  if (kind === 'flag') change.flags.push(decodeRecord<Flag>(value));
  else if (kind === 'segment') change.segments.push(decodeRecord<Segment>(value));
  else if (kind === 'flag.delete') change.deleted.flags.push(value);
  else if (kind === 'segment.delete') change.deleted.segments.push(value);
  return change;
}

/** The revision encoded in a per-environment log or audit entry id (`${revision}-1`). */
export function entryRevision(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/** An entry of an environment's audit stream. */
export function decodeAudit(env: string, [id, raw]: StreamEntry): AuditEntry {
  const f = fieldsOf(raw);
  const entry: AuditEntry = {
    id,
    env,
    at: f.at ?? '',
    actor: f.actor ?? '',
    action: f.action as AuditEntry['action'],
    target: f.target ?? '',
    revision: entryRevision(id),
  };
  if (f.reason !== undefined) entry.reason = f.reason;
  if (f.before !== undefined) entry.before = decodeRecord(f.before);
  if (f.after !== undefined) entry.after = decodeRecord(f.after);
  return entry;
}
