import type { Clause, Flag, Serve } from '@vigil/proto';
import type { FlagList } from '../api.js';
import { fields, table } from '../table.js';
import { literal, relative, utc, weightPercent, when } from './common.js';
import { scheduleSummary } from './schedule.js';

/** `KILLED` (the kill switch, whatever `enabled` says), else `on` or `off` (the master switch). */
export function flagState(flag: Flag): 'KILLED' | 'on' | 'off' {
  if (flag.killed) return 'KILLED';
  return flag.enabled ? 'on' : 'off';
}

/** A serve in a few words: `on`, or `on 20% / off 80%` (with exposure and bucketing when set). */
export function describeServe(serve: Serve): string {
  if ('variant' in serve) return serve.variant;
  const { weights, exposure, bucketBy } = serve.rollout;
  const split = weights
    .filter((w) => w.weight > 0)
    .map((w) => `${w.variant} ${weightPercent(w.weight)}`)
    .join(' / ');
  const parts = [
    exposure === undefined ? '' : `${weightPercent(exposure)} exposed: `,
    split || 'nobody',
    bucketBy === undefined ? '' : ` by ${bucketBy}`,
  ];
  return parts.join('');
}

/** What the flag's targeting serves when it is on: `on 20% / off 80%`, or `2 rules, else off`. */
export function describeTargeting(flag: Flag): string {
  const fallthrough = describeServe(flag.fallthrough);
  if (flag.rules.length === 0) return fallthrough;
  return `${flag.rules.length} rule${flag.rules.length === 1 ? '' : 's'}, else ${fallthrough}`;
}

/** What the flag serves now: the offVariant when killed or disabled, else its targeting. */
export function describeServing(flag: Flag): string {
  return flag.killed || !flag.enabled ? flag.offVariant : describeTargeting(flag);
}

/** `country in TH, SG, MY`; long value lists are cut. */
export function describeClause(clause: Clause): string {
  const shown = clause.values.slice(0, 5).map((v) => (typeof v === 'string' ? v : literal(v)));
  const more = clause.values.length > 5 ? `, +${clause.values.length - 5} more` : '';
  const values = clause.op === 'exists' ? '' : ` ${shown.join(', ')}${more}`;
  return `${clause.attribute} ${clause.negate ? 'not ' : ''}${clause.op}${values}`;
}

/** `KILLED by alice 5m ago: checkout errors`. */
export function killLine(flag: Flag, now: number): string {
  const at = flag.killedAt === undefined ? '' : ` ${relative(flag.killedAt, now)}`;
  const reason = flag.killReason ? `: ${flag.killReason}` : '';
  return `KILLED by ${flag.killedBy ?? 'unknown'}${at}${reason}`;
}

/** `vigil flags list`: one row per flag, then who killed what and why. */
export function formatFlagList(list: FlagList, env: string, now: number): string {
  const head = `${env} · revision ${list.revision} · ${list.flags.length} flag${list.flags.length === 1 ? '' : 's'}`;
  if (list.flags.length === 0) return `${head}\nNo flags in ${env}.`;
  const rows = list.flags.map((f) => [
    f.key,
    flagState(f),
    String(f.version),
    describeServing(f),
    scheduleSummary(f.schedule),
  ]);
  const killed = list.flags.filter((f) => f.killed).map((f) => `${f.key}: ${killLine(f, now)}`);
  return [
    head,
    table(['KEY', 'STATE', 'VERSION', 'SERVING', 'SCHEDULE'], rows),
    ...(killed.length ? ['', ...killed] : []),
  ].join('\n');
}

/** `vigil flags get`: the flag in full, the kill switch first. */
export function formatFlag(flag: Flag, env: string, now: number): string {
  const state = flag.killed
    ? `${killLine(flag, now)}${flag.killedAt ? ` (${utc(flag.killedAt)})` : ''}`
    : flag.enabled
      ? 'on'
      : 'off (disabled)';
  const serving = flag.killed
    ? `${flag.offVariant} to everyone (killed); revive restores: ${describeTargeting(flag)}`
    : flag.enabled
      ? describeTargeting(flag)
      : `${flag.offVariant} to everyone (disabled)`;
  const variants = `${flag.variants.map((v) => `${v.key} = ${literal(v.value)}`).join(', ')} · offVariant ${flag.offVariant}`;
  const rules = flag.rules
    .map(
      (r, i) =>
        `${i + 1}. ${r.id}: ${r.clauses.map(describeClause).join(' and ') || 'everyone'} → ${describeServe(r.serve)}`,
    )
    .join('\n');
  const prerequisites = flag.prerequisites.map((p) => `${p.flag} = ${p.variant}`).join(', ');
  const guard = flag.guard
    ? Object.entries(flag.guard)
        .map(([k, v]) => `${k} ${literal(v)}`)
        .join(', ')
    : undefined;
  return [
    `${flag.key} · ${env} · version ${flag.version}`,
    fields([
      ['state', state],
      ['serving', serving],
      ['variants', variants],
      ['rules', rules],
      ['fallthrough', flag.rules.length > 0 ? describeServe(flag.fallthrough) : undefined],
      ['prerequisites', prerequisites],
      ['schedule', flag.schedule ? scheduleSummary(flag.schedule) : undefined],
      ['guard', guard],
      ['client-side', flag.clientSide ? 'yes (visible to browser SDKs)' : undefined],
      ['owner', flag.owner],
      ['tags', flag.tags.join(', ')],
      ['description', flag.description],
      ['updated', when(flag.updatedAt, now)],
    ]),
  ].join('\n');
}

/**
 * `vigil kill` and `vigil revive`: what changed. `before` is the flag as read just before the write
 * (undefined when that read failed); an idempotent repeat says that nothing changed.
 */
export function formatKillSwitch(
  killed: boolean,
  before: Flag | undefined,
  after: Flag,
  env: string,
  now: number,
): string {
  const where = `${after.key} in ${env}`;
  const unchanged =
    before !== undefined && before.version === after.version && before.killed === after.killed;
  if (killed) {
    if (unchanged) return `${where} was already killed (${killLine(after, now)}); nothing changed.`;
    return [
      `Killed ${where}: everyone now gets "${after.offVariant}".`,
      fields([
        [
          'was',
          before
            ? `${flagState(before)}, serving ${describeServing(before)} (version ${before.version})`
            : undefined,
        ],
        ['now', `${killLine(after, now)} (version ${after.version})`],
        ['undo', `vigil revive ${after.key}${env === 'production' ? '' : ` --env ${env}`} --reason "<why>"`],
      ])
        .split('\n')
        .map((line) => `  ${line}`)
        .join('\n'),
    ].join('\n');
  }
  const notes: string[] = [];
  if (!after.enabled)
    notes.push(
      `Note: the flag is disabled (enabled: false), so it still serves "${after.offVariant}" to everyone.`,
    );
  if (after.schedule?.status === 'rolled_back')
    notes.push('Note: its schedule was rolled back; start a new schedule to roll the variant out again.');
  const head = unchanged
    ? `${where} was not killed; nothing changed.`
    : `Revived ${where}: serving ${describeTargeting(after)} again (version ${before ? `${before.version} → ` : ''}${after.version}).`;
  return [head, ...notes].join('\n');
}
