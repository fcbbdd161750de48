import { randomBytes } from 'node:crypto';
import {
  type AuditEntry,
  type CohortFigures,
  type Flag,
  formatLatency,
  formatRate,
  type Incident,
  type SequentialTest,
  type TimelineEntry,
  type Verdict,
} from '@vigil/proto';
import { formatDuration } from '@vigil/server';
import type { Check, FlagVerdict } from '../analysis/types.js';

/** The guardian's name in audit entries, kill fields and timelines. */
export const GUARDIAN_ACTOR = 'guardian';

const MAX_KILL_REASON = 2048;

const iso = (ms: number) => new Date(ms).toISOString();

/** A new incident id: time-ordered, with a random part (`inc_<ms base36><hex>`). */
export function newIncidentId(now: number): string {
  return `inc_${now.toString(36)}${randomBytes(5).toString('hex')}`;
}

/** The episode a verdict belongs to: one flag version's regression. */
export function episodeKey(env: string, flag: string, version: number): string {
  return `${env}:${flag}:${version}`;
}

/** The verdict as the store keeps it for `/health` (figures without the tests' internals). */
export function storedVerdict(verdict: FlagVerdict, guardian: string): Verdict {
  return {
    env: verdict.env,
    flag: verdict.flag,
    version: verdict.version,
    status: verdict.status,
    guarded: verdict.guarded,
    severity: verdict.severity,
    autoKill: verdict.autoKill,
    controlVariant: verdict.controlVariant,
    epoch: verdict.epoch,
    triggers: verdict.triggers,
    reason: verdict.reason,
    variants: verdict.variants.map((v) => ({
      variant: v.variant,
      status: v.status,
      triggers: v.triggers,
      reason: v.reason,
      treatment: v.treatment,
      control: v.control,
      window: v.window,
      tests: v.checks.map(sequentialTest),
    })),
    thresholds: verdict.thresholds,
    evaluatedAt: iso(verdict.evaluatedAt),
    guardian,
  };
}

/** ln e-values beyond this are reported as it: JSON has no infinity (a zero threshold's proof is +∞). */
const LOG_CAP = 1e9;

/** A check as the stored verdict reports its sequential test. */
export function sequentialTest(check: Check): SequentialTest {
  return {
    trigger: check.trigger,
    status: check.status,
    logEValue: Math.max(-LOG_CAP, Math.min(LOG_CAP, check.logEvidence)),
    logBoundary: check.logBoundary,
    crossed: check.logEvidence >= check.logBoundary,
    consecutive: check.consecutive,
    required: check.required,
    observed: check.observed,
    control: check.control,
    threshold: check.threshold,
  };
}

/** The failing checks of the regressing variants, worst first as the analyzer lists them. */
function failing(verdict: FlagVerdict): { variant: string; check: Check }[] {
  return verdict.variants.flatMap((v) =>
    v.status === 'regression'
      ? v.checks.filter((c) => c.status === 'fail').map((check) => ({ variant: v.variant, check }))
      : [],
  );
}

/** A short phrase for a failing check: `error rate 5.00% vs 0.50% in control`. */
export function checkPhrase(check: Check): string {
  const obs = check.observed;
  const ctl = check.control;
  switch (check.trigger) {
    case 'error_rate':
      return `error rate ${formatRate(obs ?? 0)} over the ${formatRate(check.threshold)} limit`;
    case 'success_rate':
      return `success rate ${formatRate(obs ?? 0)} under the ${formatRate(check.threshold)} minimum`;
    case 'p99_latency':
      return `p99 ${formatLatency(obs)} over the ${formatLatency(check.threshold)} limit`;
    case 'error_rate_vs_control':
      return `error rate ${formatRate(obs ?? 0)} vs ${formatRate(ctl ?? 0)} in control`;
    case 'latency_vs_control':
      return `p99 ${formatLatency(obs)} vs ${formatLatency(ctl)} in control`;
  }
}

/** The kill's audit reason: what fired, with the figures (bounded like the flag's `killReason`). */
export function killReason(verdict: FlagVerdict): string {
  const text = `${verdict.severity} regression of version ${verdict.version}: ${verdict.reason}`;
  return text.length > MAX_KILL_REASON ? `${text.slice(0, MAX_KILL_REASON - 1)}…` : text;
}

/** What started the version that regressed, from its audit entry. */
export interface ChangeInfo {
  at: string;
  actor: string;
  action: AuditEntry['action'];
  reason?: string;
}

const ACTIONS: Partial<Record<AuditEntry['action'], string>> = {
  'flag.create': 'Flag created',
  'flag.update': 'Flag changed',
  'flag.revive': 'Flag revived',
  'flag.schedule': 'Schedule step',
};

function changeEntry(change: ChangeInfo, version: number): TimelineEntry {
  const what = ACTIONS[change.action] ?? change.action;
  const entry: TimelineEntry = {
    at: change.at,
    kind: 'change',
    message: `${what} by ${change.actor}${change.reason ? `: ${change.reason}` : ''} (version ${version} served from here)`,
    actor: change.actor,
    data: { version, action: change.action },
  };
  if (change.reason) entry.data!.reason = change.reason;
  return entry;
}

export interface BuildIncidentInput {
  id: string;
  env: string;
  /** The flag as judged (the regressing version). */
  flag: Flag;
  verdict: FlagVerdict;
  /**
   * The flag after the kill, when it is already killed. Left out for an auto-kill verdict, the
   * incident records the kill as pending (`killPending`) until `withKill` or `withoutKill` settles it.
   */
  killed?: Flag | undefined;
  change?: ChangeInfo | undefined;
  guardian: string;
}

/** What became of the kill an incident's verdict called for (`data.kill` of its detection entry). */
type KillState = 'pending' | 'done' | 'skipped';

/** The summary's last sentence while the kill is pending; replaced when it is settled. */
const KILL_PENDING_SENTENCE = ' The guardian is killing the flag.';

/**
 * The incident for a regression verdict: severity, the cohorts' figures at detection (each treatment,
 * then the control), and a timeline of the change, the detection and, for auto-kill severities, the
 * kill — or, before the kill is made, the kill as pending in the detection entry.
 */
export function buildIncident(input: BuildIncidentInput): Incident {
  const { env, flag, verdict, killed, change } = input;
  const detectedAt = iso(verdict.evaluatedAt);
  const fails = failing(verdict);
  const first = fails[0];
  const regressed = [...new Set(fails.map((f) => f.variant))];
  const cohorts: CohortFigures[] = verdict.variants.map((v) => v.treatment);
  const control = verdict.variants.find((v) => v.control !== null)?.control;
  if (control) cohorts.push(control);

  const variantList = regressed.map((v) => `\`${v}\``).join(', ');
  const title = `${flag.key} (${env}): ${first ? `\`${first.variant}\` ${checkPhrase(first.check)}` : 'regression'}`;
  const kills = verdict.kill || killed?.killed === true;
  const timeline: TimelineEntry[] = [];
  if (change) timeline.push(changeEntry(change, verdict.version));
  timeline.push({
    at: detectedAt,
    kind: 'detection',
    message: `Regression detected (${verdict.severity}): ${verdict.reason}`,
    actor: GUARDIAN_ACTOR,
    data: {
      controlVariant: verdict.controlVariant,
      version: verdict.version,
      epoch: verdict.epoch,
      triggers: verdict.triggers,
      guardian: input.guardian,
      checks: fails.map(({ variant, check }) => ({
        variant,
        trigger: check.trigger,
        observed: check.observed,
        control: check.control,
        threshold: check.threshold,
        ratio: check.ratio,
        samples: check.samples,
        controlSamples: check.controlSamples,
        pValue: check.pValue,
        // The sequential test as the verdict reports it: the statistic that crossed its boundary.
        logEValue: sequentialTest(check).logEValue,
        logBoundary: check.logBoundary,
        consecutive: check.consecutive,
        required: check.required,
      })),
      // The decision travels with the incident, so whoever settles a pending kill can make it.
      ...(kills ? { kill: 'pending' satisfies KillState, killReason: killReason(verdict) } : {}),
    },
  });
  if (!kills) {
    timeline.push({
      at: detectedAt,
      kind: 'note',
      message: `Severity ${verdict.severity} does not kill automatically: the flag is still served`,
      actor: GUARDIAN_ACTOR,
    });
  }

  const incident: Incident = {
    id: input.id,
    env,
    flag: flag.key,
    flagVersion: verdict.version,
    severity: verdict.severity,
    status: 'open',
    title,
    summary:
      `Variant ${variantList || '(none)'} of \`${flag.key}\` (version ${verdict.version}) in ${env} regressed ` +
      `against the control \`${verdict.controlVariant}\`: ${verdict.reason}.` +
      (kills
        ? KILL_PENDING_SENTENCE
        : ` Severity ${verdict.severity} notifies only: the flag is still served.`),
    killed: false,
    cohorts,
    controlVariant: verdict.controlVariant,
    detectedAt,
    timeline,
  };
  if (change) incident.changedAt = change.at;
  return killed?.killed === true ? withKill(incident, killed) : incident;
}

/** The incident's detection entry, where the kill decision is kept. */
function detectionOf(incident: Incident): TimelineEntry | undefined {
  return incident.timeline.find((entry) => entry.kind === 'detection');
}

/** Whether the incident records a kill decided on but not yet seen done (see `BuildIncidentInput.killed`). */
export function killPending(incident: Incident): boolean {
  return detectionOf(incident)?.data?.kill === ('pending' satisfies KillState);
}

/** The audit reason for a pending kill, as the guardian that decided it wrote it. */
export function pendingKillReason(incident: Incident): string {
  const reason = detectionOf(incident)?.data?.killReason;
  return typeof reason === 'string'
    ? reason
    : `${incident.severity} regression of version ${incident.flagVersion}`;
}

function settled(incident: Incident, state: KillState, entry: TimelineEntry, sentence: string): Incident {
  const timeline = incident.timeline.map((e) =>
    e.kind === 'detection' && e.data?.kill === 'pending' ? { ...e, data: { ...e.data, kill: state } } : e,
  );
  const base = incident.summary.endsWith(KILL_PENDING_SENTENCE)
    ? incident.summary.slice(0, -KILL_PENDING_SENTENCE.length)
    : incident.summary;
  return { ...incident, summary: base + sentence, timeline: [...timeline, entry] };
}

/** The incident with its pending kill done: `killed` is the flag after the kill (by the guardian or anyone). */
export function withKill(incident: Incident, killed: Flag): Incident {
  const by = killed.killedBy ?? GUARDIAN_ACTOR;
  const at = killed.killedAt ?? incident.detectedAt;
  const after = killed.killedAt
    ? ` ${formatDuration(Math.max(0, Date.parse(killed.killedAt) - Date.parse(incident.detectedAt)))} after detection`
    : '';
  const who = by === GUARDIAN_ACTOR ? 'The guardian' : by;
  const next = settled(
    incident,
    'done',
    {
      at,
      kind: 'kill',
      message: `Kill switch flipped by ${by}: everyone is served \`${killed.offVariant}\``,
      actor: by,
      data: { version: killed.version },
    },
    ` ${who} killed the flag${after}: everyone is served \`${killed.offVariant}\`.`,
  );
  return { ...next, killed: true, ...(killed.killedAt ? { mitigatedAt: killed.killedAt } : {}) };
}

/** The incident with its pending kill dropped: the flag changed or went away before it was made. */
export function withoutKill(incident: Incident, why: string, now: number): Incident {
  return settled(
    incident,
    'skipped',
    { at: iso(now), kind: 'note', message: `Not killed: ${why}`, actor: GUARDIAN_ACTOR },
    ` The flag was not killed: ${why}.`,
  );
}
