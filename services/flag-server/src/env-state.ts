import { FlagSet } from '@vigil/core';
import type { Flag, Segment } from '@vigil/proto';
import type { Change, EnvSnapshot } from './store/store.js';

/** What a key may see: server keys everything, client keys only `clientSide` flags. */
export type View = 'server' | 'client';

/** The body of a patch message. */
export interface PatchBody {
  revision: number;
  flags: Flag[];
  segments: Segment[];
  deleted: { flags: string[]; segments: string[] };
}

/** An environment at one revision, serialized once per view. */
interface SerializedSnapshot {
  revision: number;
  /** `{ revision, flags, segments }`: the `GET /v1/flags` body. */
  body: string;
  /** The same as a `snapshot` stream message, UTF-8 encoded for `ws`. */
  message: Buffer;
}

/** Segment keys named by a flag's `inSegment` clauses. */
function segmentRefs(flag: Flag): string[] {
  const refs: string[] = [];
  for (const rule of flag.rules) {
    for (const clause of rule.clauses) {
      if (clause.op === 'inSegment') for (const value of clause.values) refs.push(String(value));
    }
  }
  return refs;
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function patchMessage(body: PatchBody): Buffer {
  return Buffer.from(
    JSON.stringify({
      type: 'patch',
      revision: body.revision,
      flags: body.flags,
      segments: body.segments,
      deleted: body.deleted,
    }),
  );
}

/**
 * One change applied to an environment, with its patch for each view. Each patch is serialized once,
 * on first use, and the same bytes go to every stream of that view.
 */
export class AppliedChange {
  private server?: Buffer;
  private client?: Buffer;

  constructor(
    readonly change: Change,
    /** What a client key sees of the change, computed against the state before and after it. */
    readonly clientPatch: PatchBody,
  ) {}

  get revision(): number {
    return this.change.revision;
  }

  /** The `patch` message for a view. */
  message(view: View): Buffer {
    if (view === 'client') {
      this.client ??= patchMessage(this.clientPatch);
      return this.client;
    }
    this.server ??= patchMessage({
      revision: this.change.revision,
      flags: this.change.flags,
      segments: this.change.segments,
      deleted: this.change.deleted,
    });
    return this.server;
  }
}

/**
 * One environment held in memory: flags, segments, revision, the recent changes (so reconnecting
 * SDKs resume without asking the store) and serialized snapshots per view, rebuilt only after a change.
 *
 * Client keys see `clientSide` flags and only the segments those flags reference (segments can list
 * user keys, which a public key must not reveal); a flag leaving the client view, or a segment no
 * longer referenced, reaches client streams as deleted.
 */
export class EnvState {
  revision = 0;
  readonly flags = new Map<string, Flag>();
  readonly segments = new Map<string, Segment>();
  /** Segment key → number of client-visible flags referencing it. */
  private readonly clientRefs = new Map<string, number>();
  private readonly recent: AppliedChange[] = [];
  /** `recent` holds every change after this revision. */
  private recentFrom = 0;
  private readonly snapshots: Partial<Record<View, SerializedSnapshot>> = {};
  private compiled?: FlagSet;
  private compiledStale = true;

  constructor(
    readonly env: string,
    private readonly bufferSize: number,
  ) {}

  /** Replaces everything with a snapshot from the store. */
  load(snapshot: EnvSnapshot): void {
    this.flags.clear();
    this.segments.clear();
    this.clientRefs.clear();
    for (const flag of snapshot.flags) {
      this.flags.set(flag.key, flag);
      if (flag.clientSide) this.addRefs(flag, 1, undefined);
    }
    for (const segment of snapshot.segments) this.segments.set(segment.key, segment);
    this.revision = snapshot.revision;
    this.recent.length = 0;
    this.recentFrom = snapshot.revision;
    this.invalidate();
  }

  /**
   * Applies an incremental change newer than the state; returns it with its patches, or undefined when
   * not newer. (A `reset` change is a snapshot: callers `load` it instead.)
   */
  apply(change: Change): AppliedChange | undefined {
    if (change.revision <= this.revision) return undefined;
    const before = new Map<string, number>();
    const client: PatchBody = {
      revision: change.revision,
      flags: [],
      segments: [],
      deleted: { flags: [], segments: [] },
    };

    for (const flag of change.flags) {
      const old = this.flags.get(flag.key);
      if (old?.clientSide) this.addRefs(old, -1, before);
      if (flag.clientSide) this.addRefs(flag, 1, before);
      this.flags.set(flag.key, flag);
      if (flag.clientSide) client.flags.push(flag);
      else if (old?.clientSide) client.deleted.flags.push(flag.key);
    }
    for (const key of change.deleted.flags) {
      const old = this.flags.get(key);
      if (!old) continue;
      if (old.clientSide) {
        this.addRefs(old, -1, before);
        client.deleted.flags.push(key);
      }
      this.flags.delete(key);
    }

    const sentSegments = new Set<string>();
    const deletedSegments = new Set<string>();
    for (const segment of change.segments) {
      this.segments.set(segment.key, segment);
      if (this.refs(segment.key) > 0) {
        client.segments.push(segment);
        sentSegments.add(segment.key);
      }
    }
    for (const key of change.deleted.segments) {
      const had = before.get(key) ?? this.refs(key);
      if (this.segments.delete(key) && had > 0) deletedSegments.add(key);
    }
    // Segments a client flag started or stopped referencing.
    for (const [key, was] of before) {
      const now = this.refs(key);
      const segment = this.segments.get(key);
      if (was === 0 && now > 0 && segment && !sentSegments.has(key)) client.segments.push(segment);
      if (was > 0 && now === 0 && !sentSegments.has(key)) deletedSegments.add(key);
    }
    client.deleted.segments.push(...deletedSegments);

    this.revision = change.revision;
    this.invalidate();
    const applied = new AppliedChange(change, client);
    if (this.bufferSize > 0) this.recent.push(applied);
    else this.recentFrom = change.revision;
    if (this.recent.length > this.bufferSize) this.recentFrom = this.recent.shift()!.revision;
    return applied;
  }

  /** Changes after `revision` from memory, in order; undefined when memory no longer reaches back that far. */
  changesSince(revision: number): AppliedChange[] | undefined {
    if (revision >= this.revision) return [];
    if (revision < this.recentFrom) return undefined;
    let i = this.recent.length;
    while (i > 0 && this.recent[i - 1]!.revision > revision) i--;
    return this.recent.slice(i);
  }

  /** The environment as a view sees it, serialized (cached until the next change). */
  snapshot(view: View): SerializedSnapshot {
    const cached = this.snapshots[view];
    if (cached) return cached;
    let flags = [...this.flags.values()];
    let segments = [...this.segments.values()];
    if (view === 'client') {
      flags = flags.filter((f) => f.clientSide);
      segments = segments.filter((s) => this.refs(s.key) > 0);
    }
    const body = JSON.stringify({
      revision: this.revision,
      flags: flags.sort(byKey),
      segments: segments.sort(byKey),
    });
    const snapshot = {
      revision: this.revision,
      body,
      message: Buffer.from(`{"type":"snapshot",${body.slice(1)}`),
    };
    this.snapshots[view] = snapshot;
    return snapshot;
  }

  /** True when a client key may see this flag. */
  clientVisible(flagKey: string): boolean {
    return this.flags.get(flagKey)?.clientSide === true;
  }

  /** The environment compiled for evaluation (rebuilt lazily after a change, reusing unchanged flags). */
  flagSet(): FlagSet {
    this.compiled ??= new FlagSet();
    if (this.compiledStale) {
      this.compiledStale = false;
      this.compiled.load({
        revision: this.revision,
        flags: [...this.flags.values()],
        segments: [...this.segments.values()],
      });
    }
    return this.compiled;
  }

  private invalidate(): void {
    this.snapshots.server = undefined;
    this.snapshots.client = undefined;
    this.compiledStale = true;
  }

  private refs(segmentKey: string): number {
    return this.clientRefs.get(segmentKey) ?? 0;
  }

  private addRefs(flag: Flag, delta: number, before: Map<string, number> | undefined): void {
    for (const key of segmentRefs(flag)) {
      if (before && !before.has(key)) before.set(key, this.refs(key));
      const count = this.refs(key) + delta;
      if (count > 0) this.clientRefs.set(key, count);
      else this.clientRefs.delete(key);
    }
  }
}
