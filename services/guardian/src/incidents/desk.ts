import type { Flag, Incident, TimelineEntry } from '@vigil/proto';
import type { Store } from '@vigil/server';
import type { Logger } from 'pino';
import type { GuardDefaults } from '../analysis/policy.js';
import type { FlagVerdict } from '../analysis/types.js';
import type { GuardianMetrics } from '../metrics.js';
import { eventStage, type IncidentEvent, type IncidentEventType, incidentEvent } from '../notify/events.js';
import type { Delivery, DeliveryFailure, NotificationOutbox } from '../notify/outbox.js';
import {
  hasDeliveryEntry,
  notificationFailedTimelineEntry,
  notificationTimelineEntry,
} from '../notify/timeline.js';
import {
  buildIncident,
  type ChangeInfo,
  episodeKey,
  GUARDIAN_ACTOR,
  killPending,
  newIncidentId,
  pendingKillReason,
  withKill,
  withoutKill,
} from './build.js';

export interface IncidentDeskOptions {
  store: Store;
  outbox: Pick<NotificationOutbox, 'enqueue'>;
  guard: GuardDefaults;
  metrics: GuardianMetrics;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** This guardian's id, recorded on detections. */
  guardian: string;
  maxEscalations: number;
  sweepLimit: number;
  /**
   * How long a kill an incident records as pending, or an episode claimed without its incident, is
   * left to the guardian that wrote it before this one presumes it dead and finishes the work
   * (default 10 s, the guardian's lock time to live; that guardian takes a few milliseconds).
   */
  takeOverAfterMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** How many times an incident was escalated (its highest escalation level). */
export function escalationLevel(incident: Incident): number {
  let level = 0;
  for (const entry of incident.timeline) {
    if (entry.kind !== 'escalation') continue;
    const n = typeof entry.data?.level === 'number' ? entry.data.level : level + 1;
    if (n > level) level = n;
  }
  return level;
}

/**
 * The events an incident's state calls for, in lifecycle order: opened, each escalation in its
 * timeline, acknowledged, resolved.
 */
export function dueEvents(incident: Incident): { type: IncidentEventType; at: string; level?: number }[] {
  const events: { type: IncidentEventType; at: string; level?: number }[] = [
    { type: 'opened', at: incident.detectedAt },
  ];
  for (const entry of incident.timeline) {
    if (entry.kind === 'escalation' && typeof entry.data?.level === 'number')
      events.push({ type: 'escalated', at: entry.at, level: entry.data.level });
  }
  if (incident.acknowledgedAt) events.push({ type: 'acknowledged', at: incident.acknowledgedAt });
  if (incident.status === 'resolved')
    events.push({ type: 'resolved', at: incident.resolvedAt ?? incident.detectedAt });
  return events;
}

/**
 * Opens one incident per episode, escalates those nobody acknowledges, and hands every lifecycle
 * event (opened, escalated, acknowledged and resolved — the last two made through the flag server's
 * REST API) to the notification outbox exactly once, marking it in the incident's `notified`.
 * Timeline entries for deliveries come back through the outbox's callbacks.
 *
 * For an auto-kill regression the incident is written before the kill, with the kill pending, and
 * settled after it (`killed`): a guardian that dies between the two leaves its decision in the
 * store, and the coordinator's sweep finishes it. The other order could leave a killed flag with no
 * incident at all, since a restarted guardian no longer sees the regression of a killed flag.
 */
export class IncidentDesk {
  /** Episodes this guardian knows to be claimed: the incident id, and whether this guardian claimed it. */
  private readonly claimed = new Map<string, { id: string; mine: boolean }>();
  /** Incidents claimed but not yet written (the store failed): written again next tick. */
  private readonly unsaved = new Map<string, Incident>();
  /** Openings the store failed before the claim was settled, by episode. */
  private readonly failedOpens = new Map<string, { env: string; flag: Flag; verdict: FlagVerdict }>();
  /** Episodes another guardian claimed without (yet) writing their incident, by episode. */
  private readonly orphans = new Map<
    string,
    { id: string; env: string; flag: Flag; verdict: FlagVerdict; seenAt: number }
  >();
  private readonly takeOverAfterMs: number;

  constructor(private readonly options: IncidentDeskOptions) {
    this.takeOverAfterMs = options.takeOverAfterMs ?? 10_000;
  }

  /**
   * Opens the incident for a regression verdict unless its episode (`env:flag:version`) already has
   * one, however many guardians or evaluations see the regression. Resolves with the new incident,
   * whose kill is pending for an auto-kill verdict: make the kill, then call `killed`.
   * When the store fails, the opening is retried by `retry` (the flag, once killed, is judged on a
   * new version, so the regression would not be seen again).
   */
  async open(env: string, flag: Flag, verdict: FlagVerdict): Promise<Incident | undefined> {
    const key = episodeKey(env, flag.key, verdict.version);
    try {
      const incident = await this.tryOpen(key, env, flag, verdict);
      this.failedOpens.delete(key);
      return incident;
    } catch (error) {
      this.failedOpens.set(key, { env, flag, verdict });
      this.options.logger.error({ err: error, episode: key }, 'could not open the incident; will retry');
      return undefined;
    }
  }

  /**
   * Records the kill of a regressing flag on its episode's incident, whoever claimed it, and
   * notifies the incident when this guardian opened it. Resolves with the incident as stored.
   */
  async killed(env: string, flag: Flag, verdict: FlagVerdict, killed: Flag): Promise<Incident | undefined> {
    const claim = this.claimed.get(episodeKey(env, flag.key, verdict.version));
    if (!claim?.id) return undefined;
    const unsaved = this.unsaved.get(claim.id);
    if (unsaved) {
      if (killPending(unsaved)) this.unsaved.set(claim.id, withKill(unsaved, killed));
      return undefined;
    }
    try {
      const updated = await this.options.store.updateIncident(claim.id, (current) =>
        killPending(current) ? withKill(current, killed) : undefined,
      );
      if (updated && claim.mine) await this.notify(updated, verdict.evaluatedAt);
      return updated;
    } catch (error) {
      // The coordinator's sweep settles the pending kill from the flag.
      this.options.logger.warn({ err: error, incident: claim.id }, 'could not record the kill yet');
      return undefined;
    }
  }

  /**
   * Retries openings and incident writes a failed store call left undone, and writes the incident
   * of an episode whose claimant left it without one for `takeOverAfterMs` (it died in between).
   */
  async retry(now: number): Promise<Incident[]> {
    const opened: Incident[] = [];
    for (const { env, flag, verdict } of [...this.failedOpens.values()]) {
      const incident = await this.open(env, flag, verdict);
      if (incident) opened.push(await this.finish(incident, now));
    }
    for (const [id, incident] of this.unsaved) {
      try {
        await this.options.store.putIncident(incident);
        this.unsaved.delete(id);
        await this.finish(incident, now);
      } catch (error) {
        this.options.logger.warn({ err: error, incident: id }, 'could not store the incident yet');
        break;
      }
    }
    for (const [key, orphan] of [...this.orphans]) {
      if (now - orphan.seenAt < this.takeOverAfterMs) continue;
      try {
        const incident = await this.adopt(key, orphan);
        if (incident) opened.push(await this.finish(incident, now));
      } catch (error) {
        this.options.logger.warn({ err: error, episode: key }, 'could not write the claimed incident yet');
        break;
      }
    }
    return opened;
  }

  private async tryOpen(
    key: string,
    env: string,
    flag: Flag,
    verdict: FlagVerdict,
  ): Promise<Incident | undefined> {
    const { store, metrics, logger } = this.options;
    if (this.claimed.has(key)) return undefined;
    const id = newIncidentId(verdict.evaluatedAt);
    if (!(await store.claimEpisode(key, id))) {
      const claimedId = (await store.getEpisode(key))?.incidentId ?? '';
      // Its claimant writes the incident right after the claim; one that died in between never will.
      if (claimedId && !(await store.getIncident(claimedId))) {
        this.orphans.set(key, { id: claimedId, env, flag, verdict, seenAt: verdict.evaluatedAt });
      }
      this.remember(key, { id: claimedId, mine: false });
      return undefined;
    }
    this.remember(key, { id, mine: true });
    const change = await this.changeOf(env, flag).catch(() => undefined);
    const incident = buildIncident({ id, env, flag, verdict, change, guardian: this.options.guardian });
    metrics.incidents.inc({ severity: incident.severity });
    logger.warn(
      { incident: id, env, flag: flag.key, version: verdict.version, kill: verdict.kill },
      `incident opened: ${incident.title}`,
    );
    try {
      await store.putIncident(incident);
    } catch (error) {
      // The episode is ours: keep the incident until the store takes it.
      this.unsaved.set(id, incident);
      logger.error({ err: error, incident: id }, 'could not store the incident; will retry');
      return incident;
    }
    await this.notify(incident, verdict.evaluatedAt).catch((error: unknown) => {
      // The sweep notifies what is missing from `notified`.
      logger.warn({ err: error, incident: id }, 'could not hand the opening to the outbox yet');
    });
    return incident;
  }

  /** Writes the incident of an episode claimed by a guardian that never wrote it, from this guardian's verdict. */
  private async adopt(
    key: string,
    orphan: { id: string; env: string; flag: Flag; verdict: FlagVerdict },
  ): Promise<Incident | undefined> {
    const { store, metrics, logger } = this.options;
    if (await store.getIncident(orphan.id)) {
      this.orphans.delete(key);
      return undefined;
    }
    const { id, env, flag, verdict } = orphan;
    const change = await this.changeOf(env, flag).catch(() => undefined);
    const incident = buildIncident({ id, env, flag, verdict, change, guardian: this.options.guardian });
    // Were its claimant only slow, not dead, its own write would replace this one: same episode, same id.
    await store.putIncident(incident);
    this.orphans.delete(key);
    this.remember(key, { id, mine: true });
    metrics.incidents.inc({ severity: incident.severity });
    logger.warn(
      { incident: id, env, flag: flag.key, version: verdict.version },
      `incident opened for an episode its claimant left without one: ${incident.title}`,
    );
    return incident;
  }

  /** Settles a pending kill and notifies an incident this guardian just wrote. */
  private async finish(incident: Incident, now: number): Promise<Incident> {
    const settled = await this.settle(incident, now);
    await this.notify(settled, now);
    return settled;
  }

  /**
   * Settles the kill an incident records as pending: done once the flag is killed (by the guardian
   * that decided it, or by anyone); after `takeOverAfterMs` without it — the guardian died between
   * writing the incident and killing — made here, or dropped when the incident was resolved or the
   * flag changed or went away in the meantime.
   */
  private async settle(incident: Incident, now: number): Promise<Incident> {
    if (!killPending(incident)) return incident;
    const { store, metrics, logger } = this.options;
    const flag = await store.getFlag(incident.env, incident.flag);
    let change: (current: Incident) => Incident;
    if (flag?.killed) {
      change = (current) => withKill(current, flag);
    } else if (now - Date.parse(incident.detectedAt) < this.takeOverAfterMs) {
      return incident;
    } else if (incident.status === 'resolved') {
      change = (current) => withoutKill(current, 'the incident was resolved first', now);
    } else if (!flag) {
      change = (current) => withoutKill(current, 'the flag was deleted first', now);
    } else if (flag.version !== incident.flagVersion) {
      change = (current) => withoutKill(current, `the flag changed first (version ${flag.version})`, now);
    } else {
      const killed = await store.setKill(incident.env, incident.flag, {
        killed: true,
        actor: GUARDIAN_ACTOR,
        reason: pendingKillReason(incident),
        at: iso(now),
      });
      metrics.kills.inc({ env: incident.env });
      logger.warn(
        { incident: incident.id, env: incident.env, flag: incident.flag, version: killed.version },
        'flag killed: the kill its incident recorded as pending was never made',
      );
      change = (current) => withKill(current, killed);
    }
    const updated = await store.updateIncident(incident.id, (current) =>
      killPending(current) ? change(current) : undefined,
    );
    return updated ?? incident;
  }

  /** Records a delivery on the incident's timeline (once, however often the outbox reports it). */
  async delivered(delivery: Delivery): Promise<void> {
    await this.options.store.updateIncident(delivery.incidentId, (incident) =>
      hasDeliveryEntry(incident, delivery.id)
        ? undefined
        : withEntry(incident, notificationTimelineEntry(delivery)),
    );
  }

  /** Records a delivery that failed for good. */
  async failed(failure: DeliveryFailure): Promise<void> {
    await this.options.store.updateIncident(failure.incidentId, (incident) =>
      hasDeliveryEntry(incident, failure.id)
        ? undefined
        : withEntry(incident, notificationFailedTimelineEntry(failure)),
    );
  }

  /**
   * Looks after recent incidents: escalates the open ones whose severity's escalation time passed
   * without an acknowledgement (again after each further period, up to `maxEscalations`), and
   * notifies every lifecycle event not yet handed to the outbox.
   */
  async sweep(now: number): Promise<void> {
    const { store, guard, maxEscalations, metrics, logger } = this.options;
    const incidents = await store.listIncidents({ limit: this.options.sweepLimit });
    for (let incident of incidents) {
      if (killPending(incident)) {
        try {
          incident = await this.settle(incident, now);
        } catch (error) {
          logger.warn({ err: error, incident: incident.id }, 'could not settle the pending kill yet');
        }
        // Notified once the kill is settled, so the opening says whether the flag was killed.
        if (killPending(incident)) continue;
      }
      if (incident.status === 'open') {
        const level = escalationLevel(incident) + 1;
        const minutes = guard.severities[incident.severity].escalationMinutes;
        const due = Date.parse(incident.detectedAt) + level * minutes * 60_000;
        if (level <= maxEscalations && now >= due) {
          let escalated = false;
          const entry: TimelineEntry = {
            at: iso(now),
            kind: 'escalation',
            message: `Not acknowledged within ${formatMinutes(level * minutes)}: escalated (level ${level})`,
            actor: GUARDIAN_ACTOR,
            data: { level },
          };
          const updated = await store.updateIncident(incident.id, (current) => {
            escalated = current.status === 'open' && escalationLevel(current) < level;
            return escalated ? withEntry(current, entry) : undefined;
          });
          if (updated) incident = updated;
          if (escalated) {
            metrics.escalations.inc({ severity: incident.severity });
            logger.warn({ incident: incident.id, level }, 'incident escalated: not acknowledged in time');
          }
        }
      }
      await this.notify(incident, now);
    }
  }

  /** Hands the incident's events not yet notified to the outbox, then marks them `notified`. */
  private async notify(incident: Incident, now: number): Promise<void> {
    if (killPending(incident)) return;
    const done = new Set(incident.notified ?? []);
    const pending = dueEvents(incident).filter((e) => !done.has(eventStage(e)));
    if (pending.length === 0) return;
    const stages: string[] = [];
    for (const due of pending) {
      const event: IncidentEvent = incidentEvent(due.type, incident, {
        at: due.at,
        now,
        ...(due.level === undefined ? {} : { level: due.level }),
      });
      await this.options.outbox.enqueue(event);
      stages.push(eventStage(event));
    }
    await this.options.store.updateIncident(incident.id, (current) => {
      const notified = new Set(current.notified ?? []);
      const before = notified.size;
      for (const stage of stages) notified.add(stage);
      return notified.size === before ? undefined : { ...current, notified: [...notified] };
    });
  }

  /** What started the version that regressed: its audit entry. */
  private async changeOf(env: string, flag: Flag): Promise<ChangeInfo | undefined> {
    const [entry] = await this.options.store.audit(env, {
      limit: 1,
      target: flag.key,
      before: `${flag.version + 1}-1`,
    });
    if (entry === undefined || entry.revision !== flag.version) {
      return flag.updatedAt ? { at: flag.updatedAt, actor: 'unknown', action: 'flag.update' } : undefined;
    }
    const change: ChangeInfo = { at: entry.at, actor: entry.actor, action: entry.action };
    if (entry.reason) change.reason = entry.reason;
    return change;
  }

  private remember(key: string, claim: { id: string; mine: boolean }): void {
    this.claimed.set(key, claim);
    // Bounded: a forgotten episode is claimed again, which the store refuses.
    if (this.claimed.size > 10_000) this.claimed.delete(this.claimed.keys().next().value as string);
  }
}

function withEntry(incident: Incident, entry: TimelineEntry): Incident {
  return { ...incident, timeline: [...incident.timeline, entry] };
}

function formatMinutes(minutes: number): string {
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}
