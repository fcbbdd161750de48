import type { CohortSummary } from '@vigil/proto';
import type { MetricsEntry } from './store.js';

interface Pending {
  seq: number;
  consumer: string;
  deliveredAt: number;
}

interface Group {
  /** Index into the stream's sequence of the next entry never delivered to this group. */
  nextSeq: number;
  pending: Map<string, Pending>;
}

/**
 * An in-process metrics bus with Redis Streams' consumer-group semantics: each entry goes to one
 * consumer of a group, stays pending until acknowledged, and is claimed by another consumer once it
 * has been idle longer than `claimIdleMs`. Bounded like a trimmed stream; held in memory only,
 * since summaries are telemetry that SDKs send again every window.
 */
export class MetricsBus {
  private readonly entries: { seq: number; entry: MetricsEntry }[] = [];
  private readonly groups = new Map<string, Group>();
  private readonly waiters = new Set<() => void>();
  private seq = 0;
  private lastMs = 0;
  private idSeq = 0;

  constructor(private readonly maxLength: number) {}

  /** Appends summaries and wakes blocked readers. */
  publish(summaries: CohortSummary[]): void {
    for (const summary of summaries) {
      this.entries.push({ seq: this.seq, entry: { id: this.nextId(), summary } });
      this.seq += 1;
    }
    const excess = this.entries.length - this.maxLength;
    if (excess > 0) this.entries.splice(0, excess);
    for (const wake of [...this.waiters]) wake();
  }

  /** Claims idle pending entries, then reads new ones, waiting up to `blockMs` when there are none. */
  async read(
    groupName: string,
    consumer: string,
    opts: { count: number; blockMs: number; claimIdleMs: number },
  ): Promise<MetricsEntry[]> {
    const group = this.group(groupName);
    const claimed = this.claim(group, consumer, opts.count, opts.claimIdleMs);
    const fresh = this.deliver(group, consumer, opts.count - claimed.length);
    if (claimed.length + fresh.length > 0 || opts.blockMs <= 0) return [...claimed, ...fresh];
    await this.waitForPublish(opts.blockMs);
    return this.deliver(group, consumer, opts.count);
  }

  /** Acknowledges entries so they are never delivered again. */
  ack(groupName: string, ids: string[]): void {
    const group = this.groups.get(groupName);
    if (!group) return;
    for (const id of ids) group.pending.delete(id);
  }

  /** Releases blocked readers (on close). */
  wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private group(name: string): Group {
    let group = this.groups.get(name);
    if (!group) {
      // Like XGROUP CREATE ... 0: a new group starts with what the stream still holds.
      group = { nextSeq: this.entries[0]?.seq ?? this.seq, pending: new Map() };
      this.groups.set(name, group);
    }
    return group;
  }

  private claim(group: Group, consumer: string, count: number, idleMs: number): MetricsEntry[] {
    const now = Date.now();
    const out: MetricsEntry[] = [];
    for (const [id, pending] of group.pending) {
      if (out.length >= count) break;
      if (now - pending.deliveredAt < idleMs) continue;
      const entry = this.at(pending.seq);
      if (!entry) {
        // Trimmed away while pending, as XAUTOCLAIM drops deleted entries.
        group.pending.delete(id);
        continue;
      }
      pending.consumer = consumer;
      pending.deliveredAt = now;
      out.push(entry);
    }
    return out;
  }

  private deliver(group: Group, consumer: string, count: number): MetricsEntry[] {
    const first = this.entries[0]?.seq ?? this.seq;
    const start = Math.max(group.nextSeq, first) - first;
    const slice = this.entries.slice(start, start + count);
    const now = Date.now();
    for (const { seq, entry } of slice) {
      group.pending.set(entry.id, { seq, consumer, deliveredAt: now });
      group.nextSeq = seq + 1;
    }
    return slice.map((s) => s.entry);
  }

  private at(seq: number): MetricsEntry | undefined {
    const first = this.entries[0]?.seq ?? this.seq;
    return this.entries[seq - first]?.entry;
  }

  private waitForPublish(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** Stream-style ids (`ms-seq`), increasing even when the clock stalls. */
  private nextId(): string {
    const now = Date.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.idSeq = 0;
    } else {
      this.idSeq += 1;
    }
    return `${this.lastMs}-${this.idSeq}`;
  }
}
