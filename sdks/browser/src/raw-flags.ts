import type { FlagPatch, FlagSnapshot } from '@vigil/core';
import type { Flag, Segment } from '@vigil/proto';

/**
 * The flags and segments an SDK holds, as the server sent them: kept beside the core's compiled set so
 * they can be written to localStorage. Mirrors the set's rule: nothing not newer than what is held.
 */
export class RawFlags {
  revision = 0;
  readonly flags = new Map<string, Flag>();
  readonly segments = new Map<string, Segment>();

  load(snapshot: FlagSnapshot): void {
    this.revision = snapshot.revision;
    this.flags.clear();
    this.segments.clear();
    for (const f of snapshot.flags) this.flags.set(f.key, f);
    for (const s of snapshot.segments) this.segments.set(s.key, s);
  }

  apply(patch: FlagPatch): void {
    if (patch.revision <= this.revision) return;
    for (const f of patch.flags) {
      const held = this.flags.get(f.key);
      if (!held || held.version < f.version) this.flags.set(f.key, f);
    }
    for (const key of patch.deleted.flags) this.flags.delete(key);
    for (const s of patch.segments) {
      const held = this.segments.get(s.key);
      if (!held || held.version < s.version) this.segments.set(s.key, s);
    }
    for (const key of patch.deleted.segments) this.segments.delete(key);
    this.revision = patch.revision;
  }

  snapshot(): FlagSnapshot {
    return {
      revision: this.revision,
      flags: [...this.flags.values()],
      segments: [...this.segments.values()],
    };
  }
}
