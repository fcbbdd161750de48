import type { OutboxItem, Store } from '@vigil/server';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { IntegrationType } from './config.js';
import {
  eventRank,
  eventStage,
  type IncidentEvent,
  type IncidentEventType,
  incidentEventSchema,
} from './events.js';
import { DeliveryError } from './http.js';
import type { Notifier } from './notifier.js';
import { refFromTimeline } from './timeline.js';

/** The store operations the outbox uses (any `Store` has them). */
export type OutboxStore = Pick<
  Store,
  'enqueueOutbox' | 'dueOutbox' | 'updateOutbox' | 'removeOutbox' | 'acquireLock'
>;

/** `notBefore` of an item that failed for good: never due again, kept for inspection. */
export const FAILED_NOT_BEFORE = Number.MAX_SAFE_INTEGER;
/** Due time bound that takes every pending item and no failed one. */
const PENDING_HORIZON = FAILED_NOT_BEFORE - 1;

/** What the outbox stores in `OutboxItem.payload`. */
export interface OutboxPayload {
  v: 1;
  type: IntegrationType;
  event: IncidentEvent;
  /** The service's id for the incident, known at enqueue time (from the incident's timeline). */
  ref?: string;
  /** Set when the delivery failed for good. */
  failed?: { at: string; status?: number };
}

/** One delivery, as the callbacks see it. */
export interface DeliveryInfo {
  /** The outbox item id: `<integration>:<incident id>:<stage>`. */
  id: string;
  integration: string;
  integrationType: IntegrationType;
  incidentId: string;
  event: IncidentEventType;
  /** `opened`, `escalated-1`, `acknowledged`, `resolved`. */
  stage: string;
  /** The idempotency/dedup key the service saw. */
  key: string;
  /** Attempts made so far, this one included. */
  attempts: number;
  /** Epoch ms (outbox clock) of this attempt. */
  at: number;
}

export interface Delivery extends DeliveryInfo {
  status: number;
  ref?: string;
}

export interface DeliveryFailure extends DeliveryInfo {
  status?: number;
  error: string;
}

export interface DeliveryRetry extends DeliveryFailure {
  /** Epoch ms of the next attempt. */
  retryAt: number;
}

/** What one `deliverDue` pass did. */
export interface DeliveryReport {
  delivered: number;
  retried: number;
  failed: number;
  /** Due items held back until an earlier event of the same incident reaches the same integration. */
  waiting: number;
  /** True when another guardian holds the outbox lock, so this pass did nothing. */
  skipped?: true;
}

type Callback<T> = (value: T) => void | Promise<void>;

export interface OutboxOptions {
  store: OutboxStore;
  notifiers: readonly Notifier[];
  /** Registers `vigil_notifications_sent_total`, `..._failed_total` and `vigil_notification_retries_total`. */
  registry?: Registry;
  logger?: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** Epoch ms; injectable so tests can step through backoffs without sleeping. */
  now?: () => number;
  /** In [0, 1); the backoff's jitter. */
  random?: () => number;
  /** Exponential backoff with full jitter: `random() * min(maxMs, baseMs * 2^(attempts-1))`. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Attempts after which a retryable failure becomes final (default: retry until delivered). */
  maxAttempts?: number;
  /** Due items read per pass (default 100). */
  batchSize?: number;
  /** Pending items read to keep each incident's events in order (default 1000). */
  scanLimit?: number;
  /** Deliveries in flight at once, across incidents and integrations (default 8). */
  concurrency?: number;
  /** How often `start()` looks for due items (default 1000 ms). */
  pollIntervalMs?: number;
  /** Take a store lock per pass so one guardian at a time delivers (several guardians share a store). */
  lock?: { owner: string; name?: string; ttlMs?: number };
  /**
   * After each successful delivery; append `notificationTimelineEntry(delivery)`. At-least-once.
   * Callbacks run inside a pass: they may `enqueue`, but must not await `deliverDue`.
   */
  onDelivered?: Callback<Delivery>;
  /** After a delivery failed for good; append `notificationFailedTimelineEntry(failure)`. */
  onFailed?: Callback<DeliveryFailure>;
  /** After each failed attempt that will be retried. */
  onRetry?: Callback<DeliveryRetry>;
}

interface Entry {
  item: OutboxItem;
  payload: OutboxPayload;
  /** `<integration>\0<incident id>`: the events whose order matters. */
  chain: string;
  rank: number;
}

type Outcome = 'delivered' | 'retried' | 'failed' | 'stopped';

/** The id of the outbox item delivering `event` to `integration`: deterministic, so enqueueing is idempotent. */
export function deliveryIdOf(
  integration: string,
  event: Pick<IncidentEvent, 'type' | 'level' | 'incident'>,
): string {
  return `${integration}:${event.incident.id}:${eventStage(event)}`;
}

/**
 * Delivers incident events to every configured integration at least once, through the store's
 * outbox: all state (attempts, next attempt, last error, failures) lives in the store, so a new
 * outbox over the same store — after a restart, or on another guardian — carries on where this one
 * stopped. Each incident's events reach each integration in lifecycle order.
 *
 * Per attempt: 2xx removes the item; a network error, timeout, 408, 429 or 5xx reschedules it with
 * exponential backoff and full jitter (or after `Retry-After`); any other answer fails it for good —
 * it stays in the store (never due) for inspection, and `onFailed` reports it.
 */
export class NotificationOutbox {
  private readonly store: OutboxStore;
  private readonly notifiers: Map<string, Notifier>;
  private readonly log: OutboxOptions['logger'];
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxAttempts: number;
  private readonly batchSize: number;
  private readonly scanLimit: number;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly lock: { owner: string; name: string; ttlMs: number } | undefined;
  private readonly callbacks: Pick<OutboxOptions, 'onDelivered' | 'onFailed' | 'onRetry'>;
  private readonly metrics: {
    sent: Counter<'integration'>;
    failed: Counter<'integration'>;
    retries: Counter<'integration'>;
  };
  /** Service ids learnt from deliveries, by chain, so later events need not look them up. */
  private readonly refs = new Map<string, string>();
  private current: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking = false;
  private again = false;

  constructor(options: OutboxOptions) {
    this.store = options.store;
    this.notifiers = new Map(options.notifiers.map((n) => [n.name, n]));
    if (this.notifiers.size !== options.notifiers.length) throw new Error('notifier names must be unique');
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.baseMs = options.backoff?.baseMs ?? 1000;
    this.maxMs = options.backoff?.maxMs ?? 300_000;
    this.maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
    this.batchSize = options.batchSize ?? 100;
    this.scanLimit = options.scanLimit ?? 1000;
    this.concurrency = Math.max(1, options.concurrency ?? 8);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.lock = options.lock && {
      owner: options.lock.owner,
      name: options.lock.name ?? 'notify-outbox',
      ttlMs: options.lock.ttlMs ?? 30_000,
    };
    this.callbacks = options;
    const counter = (name: string, help: string): Counter<'integration'> => {
      const existing = options.registry?.getSingleMetric(name);
      if (existing) return existing as Counter<'integration'>;
      return new Counter({
        name,
        help,
        labelNames: ['integration'],
        registers: options.registry ? [options.registry] : [],
      });
    };
    this.metrics = {
      sent: counter('vigil_notifications_sent_total', 'Notifications delivered, by integration'),
      failed: counter(
        'vigil_notifications_failed_total',
        'Notifications that failed for good, by integration',
      ),
      retries: counter(
        'vigil_notification_retries_total',
        'Failed notification attempts rescheduled, by integration',
      ),
    };
    for (const name of this.notifiers.keys()) {
      for (const metric of Object.values(this.metrics)) metric.inc({ integration: name }, 0);
    }
  }

  /**
   * Writes one outbox item per integration that wants the event. Idempotent: the item id derives
   * from (integration, incident, event), and the store keeps an existing item as it is.
   * Returns the delivery ids.
   */
  async enqueue(input: IncidentEvent): Promise<string[]> {
    const event = incidentEventSchema.parse(input);
    const now = this.now();
    const items: OutboxItem[] = [];
    for (const notifier of this.notifiers.values()) {
      if (!notifier.wants(event)) continue;
      const id = deliveryIdOf(notifier.name, event);
      const payload: OutboxPayload = { v: 1, type: notifier.type, event };
      const ref = refFromTimeline(event.incident, notifier.name);
      if (ref) payload.ref = ref;
      items.push({
        id,
        target: notifier.name,
        key: notifier.key(event, id),
        payload,
        attempts: 0,
        notBefore: now,
      });
    }
    await Promise.all(items.map((item) => this.store.enqueueOutbox(item)));
    if (items.length > 0) this.kick();
    return items.map((item) => item.id);
  }

  /**
   * Attempts every item due at `now` (default: the clock), each incident's events in order.
   * Passes run one at a time; a call made during a pass runs after it.
   */
  deliverDue(now?: number): Promise<DeliveryReport> {
    const pass = this.current.then(() => this.pass(now ?? this.now()));
    this.current = pass.catch(() => undefined);
    return pass;
  }

  /** Delivers in the background every `pollIntervalMs`, and at once after `enqueue`. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops the background loop and waits for the pass in flight. The store stays open. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.current;
  }

  /** Items still to deliver (due or waiting for a retry), soonest first. */
  async pending(limit = 100): Promise<OutboxItem[]> {
    return (await this.store.dueOutbox(PENDING_HORIZON, limit)).filter((item) => !isFailed(item));
  }

  /** Items that failed for good, kept for inspection until retried or discarded. */
  async failed(limit = 100): Promise<OutboxItem[]> {
    const items = await this.store.dueOutbox(FAILED_NOT_BEFORE, this.scanLimit + limit);
    return items.filter(isFailed).slice(0, limit);
  }

  /** Makes a failed item due again (e.g. after fixing a routing key); false when there is none. */
  async retry(id: string): Promise<boolean> {
    const item = (await this.failed(this.scanLimit)).find((candidate) => candidate.id === id);
    if (!item) return false;
    const { failed: _failed, ...payload } = item.payload as OutboxPayload;
    await this.store.updateOutbox({ ...item, payload, notBefore: this.now() });
    this.kick();
    return true;
  }

  /** Drops an item, delivered or not. */
  async discard(id: string): Promise<void> {
    await this.store.removeOutbox(id);
  }

  private async pass(now: number): Promise<DeliveryReport> {
    const report: DeliveryReport = { delivered: 0, retried: 0, failed: 0, waiting: 0 };
    if (this.lock && !(await this.store.acquireLock(this.lock.name, this.lock.owner, this.lock.ttlMs))) {
      report.skipped = true;
      return report;
    }
    const due: Entry[] = [];
    for (const item of await this.store.dueOutbox(now, this.batchSize)) {
      if (isFailed(item)) continue;
      const entry = this.decode(item);
      if (entry) due.push(entry);
      else if (await this.failUnreadable(item, now)) report.failed++;
    }
    if (due.length === 0) return report;

    // Every pending event per chain (rank and due time): a due event waits while an earlier one is pending.
    const scanned = due.some((entry) => entry.rank > 0)
      ? (await this.store.dueOutbox(PENDING_HORIZON, this.scanLimit))
          .filter((item) => !isFailed(item))
          .map((item) => this.decode(item))
          .filter((entry): entry is Entry => entry !== undefined)
      : due;
    const pendingByChain = new Map<string, { rank: number; notBefore: number }[]>();
    for (const { chain, rank, item } of scanned) {
      pendingByChain.set(chain, [...(pendingByChain.get(chain) ?? []), { rank, notBefore: item.notBefore }]);
    }
    const chains = new Map<string, Entry[]>();
    for (const entry of due) chains.set(entry.chain, [...(chains.get(entry.chain) ?? []), entry]);

    const work = [...chains.entries()].map(([chain, entries]) => async () => {
      const pending = pendingByChain.get(chain) ?? [];
      entries.sort((a, b) => a.rank - b.rank);
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        const blocker = pending
          .filter((p) => p.rank < entry.rank)
          .sort((a, b) => a.notBefore - b.notBefore)
          .at(-1);
        if (blocker) {
          report.waiting += entries.length - i;
          await this.defer(entries.slice(i), Math.max(blocker.notBefore, now + 1));
          return;
        }
        let outcome: { outcome: Outcome; retryAt?: number };
        try {
          outcome = await this.attempt(entry, now);
        } catch (error) {
          // The store failed mid-attempt: the item stays as it was and is attempted again later.
          this.log?.error(
            { err: error, delivery: entry.item.id },
            'notification outbox store operation failed',
          );
          report.waiting += entries.length - i;
          return;
        }
        const own = pending.find((p) => p.rank === entry.rank);
        if (outcome.outcome === 'delivered' || outcome.outcome === 'failed') {
          report[outcome.outcome]++;
          if (own) pending.splice(pending.indexOf(own), 1);
          continue;
        }
        if (outcome.outcome === 'retried') report.retried++;
        report.waiting += entries.length - i - 1;
        if (outcome.retryAt !== undefined) await this.defer(entries.slice(i + 1), outcome.retryAt);
        return;
      }
    });
    await runLimited(work, this.concurrency);
    return report;
  }

  private async attempt(entry: Entry, now: number): Promise<{ outcome: Outcome; retryAt?: number }> {
    const { item, payload } = entry;
    const notifier = this.notifiers.get(item.target);
    if (!notifier) {
      // Another guardian may still run a config that has it: keep the item, look again later.
      this.log?.warn(
        { integration: item.target, delivery: item.id },
        'notification for an unknown integration',
      );
      await this.store.updateOutbox({
        ...item,
        notBefore: now + this.maxMs,
        lastError: `no integration named ${item.target} is configured`,
      });
      return { outcome: 'stopped' };
    }
    if (this.lock && !(await this.store.acquireLock(this.lock.name, this.lock.owner, this.lock.ttlMs)))
      return { outcome: 'stopped' };

    const attempts = item.attempts + 1;
    const { event } = payload;
    const info: DeliveryInfo = {
      id: item.id,
      integration: notifier.name,
      integrationType: notifier.type,
      incidentId: event.incident.id,
      event: event.type,
      stage: eventStage(event),
      key: item.key,
      attempts,
      at: now,
    };
    const ref = this.refs.get(entry.chain) ?? payload.ref;
    try {
      const result = await notifier.send(event, {
        deliveryId: item.id,
        key: item.key,
        attempt: attempts,
        now,
        ...(ref ? { ref } : {}),
      });
      this.remember(entry.chain, event.type === 'resolved' ? undefined : (result.ref ?? ref));
      this.metrics.sent.inc({ integration: notifier.name });
      this.log?.info(
        { integration: notifier.name, delivery: item.id, attempts, status: result.status },
        'notification delivered',
      );
      const delivery: Delivery = { ...info, status: result.status };
      if (result.ref ?? ref) delivery.ref = result.ref ?? ref;
      await this.call('onDelivered', delivery);
      await this.store.removeOutbox(item.id);
      return { outcome: 'delivered' };
    } catch (thrown) {
      const error =
        thrown instanceof DeliveryError
          ? thrown
          : new DeliveryError(`unexpected error: ${(thrown as Error)?.message ?? String(thrown)}`, {
              retryable: true,
              cause: thrown,
            });
      const failure: DeliveryFailure = { ...info, error: error.message };
      if (error.status !== undefined) failure.status = error.status;
      if (error.retryable && attempts < this.maxAttempts) {
        const retryAt = now + (error.retryAfterMs ?? this.backoff(attempts));
        await this.store.updateOutbox({ ...item, attempts, notBefore: retryAt, lastError: error.message });
        this.metrics.retries.inc({ integration: notifier.name });
        this.log?.warn(
          { integration: notifier.name, delivery: item.id, attempts, error: error.message, retryAt },
          'notification attempt failed; will retry',
        );
        await this.call('onRetry', { ...failure, retryAt });
        return { outcome: 'retried', retryAt };
      }
      const failed: OutboxPayload['failed'] = { at: new Date(now).toISOString() };
      if (error.status !== undefined) failed.status = error.status;
      await this.store.updateOutbox({
        ...item,
        attempts,
        notBefore: FAILED_NOT_BEFORE,
        lastError: error.message,
        payload: { ...payload, failed },
      });
      this.metrics.failed.inc({ integration: notifier.name });
      this.log?.error(
        { integration: notifier.name, delivery: item.id, attempts, error: error.message },
        'notification failed',
      );
      await this.call('onFailed', failure);
      return { outcome: 'failed' };
    }
  }

  /**
   * Moves events that wait behind an earlier one of their incident to when that one is next tried,
   * so waiting items never crowd the due batch while the event they wait for sits behind them.
   */
  private async defer(entries: Entry[], until: number): Promise<void> {
    for (const { item } of entries) {
      if (item.notBefore < until) await this.store.updateOutbox({ ...item, notBefore: until });
    }
  }

  /** Full jitter: uniformly random in (0, min(maxMs, baseMs * 2^(attempts-1))]. */
  private backoff(attempts: number): number {
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** (attempts - 1));
    return Math.max(1, Math.round(this.random() * cap));
  }

  private decode(item: OutboxItem): Entry | undefined {
    const payload = item.payload as Partial<OutboxPayload> | undefined;
    if (payload?.v !== 1 || typeof payload.type !== 'string') return undefined;
    const parsed = incidentEventSchema.safeParse(payload.event);
    if (!parsed.success) return undefined;
    const event = parsed.data;
    return {
      item,
      payload: { ...(payload as OutboxPayload), event },
      chain: `${item.target}\0${event.incident.id}`,
      rank: eventRank(event),
    };
  }

  private async failUnreadable(item: OutboxItem, now: number): Promise<boolean> {
    this.log?.error({ delivery: item.id, integration: item.target }, 'unreadable outbox item');
    const payload = { ...(item.payload as object), failed: { at: new Date(now).toISOString() } };
    await this.store.updateOutbox({
      ...item,
      notBefore: FAILED_NOT_BEFORE,
      lastError: 'unreadable outbox item',
      payload,
    });
    if (this.notifiers.has(item.target)) this.metrics.failed.inc({ integration: item.target });
    return true;
  }

  private remember(chain: string, ref: string | undefined): void {
    this.refs.delete(chain);
    if (ref === undefined) return;
    this.refs.set(chain, ref);
    // Bounded: the refs of old incidents are also in their timelines.
    if (this.refs.size > 10_000) this.refs.delete(this.refs.keys().next().value as string);
  }

  private async call<K extends 'onDelivered' | 'onFailed' | 'onRetry'>(
    name: K,
    value: Parameters<NonNullable<OutboxOptions[K]>>[0],
  ): Promise<void> {
    const callback = this.callbacks[name] as Callback<typeof value> | undefined;
    if (!callback) return;
    try {
      await callback(value);
    } catch (error) {
      this.log?.error({ err: error, delivery: value.id, callback: name }, 'notification callback failed');
    }
  }

  private kick(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.loop(), delayMs);
    this.timer.unref();
  }

  private async loop(): Promise<void> {
    this.ticking = true;
    this.again = false;
    try {
      await this.deliverDue();
    } catch (error) {
      this.log?.error({ err: error }, 'notification outbox pass failed');
    } finally {
      this.ticking = false;
    }
    if (this.running) this.schedule(this.again ? 0 : this.pollIntervalMs);
  }
}

function isFailed(item: OutboxItem): boolean {
  return (
    item.notBefore >= FAILED_NOT_BEFORE || (item.payload as OutboxPayload | undefined)?.failed !== undefined
  );
}

async function runLimited(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++]!;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
