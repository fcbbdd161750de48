import { type Flag, type FlagHealth, holdEndsAt } from '@vigil/proto';
import { createLogUpdate } from 'log-update';
import pc from 'picocolors';
import type { CohortTraffic } from './traffic.js';

/** What the status block shows, refreshed while the scenario runs. */
export interface StatusSnapshot {
  flag?: Flag;
  health?: FlagHealth;
  traffic: { v1: CohortTraffic; v2: CohortTraffic };
  faultInjected: boolean;
}

const percent = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;

/** `m:ss` since `from`. */
export function clock(from: number, at = Date.now()): string {
  const seconds = Math.max(0, Math.floor((at - from) / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

function scheduleLine(flag: Flag | undefined): string {
  const schedule = flag?.schedule;
  if (!schedule) return pc.dim('not scheduled yet');
  const steps = schedule.steps.map((step, i) => {
    const label = `${step.percent}%`;
    if (i < schedule.stepIndex) return pc.green(label);
    if (i === schedule.stepIndex)
      return schedule.status === 'rolled_back' ? pc.red(pc.bold(label)) : pc.cyan(pc.bold(`[${label}]`));
    return pc.dim(label);
  });
  const ends = holdEndsAt(schedule);
  const left =
    schedule.status === 'running' && ends !== undefined
      ? `, hold ${Math.max(0, Math.ceil((ends - Date.now()) / 1000))}s left`
      : '';
  const status = schedule.status === 'rolled_back' ? pc.red('rolled_back') : schedule.status;
  return `${steps.join(pc.dim(' → '))}   ${status}${left}`;
}

function trafficLine(name: string, cohort: CohortTraffic): string {
  const errors = percent(cohort.errorRate);
  const shown = cohort.errorRate >= 0.01 ? pc.red(pc.bold(errors)) : pc.green(errors);
  return `${name} ${String(Math.round(cohort.rate)).padStart(4)} req/s, ${shown} errors`;
}

function guardianLine(health: FlagHealth | undefined): string {
  if (!health) return pc.dim('no verdict yet');
  const status =
    health.status === 'healthy'
      ? pc.green('healthy')
      : health.status === 'regression'
        ? pc.red(pc.bold('regression'))
        : pc.yellow('insufficient data');
  const cohorts = health.cohorts
    .map((c) => `${c.variant}: ${c.requests} req, ${percent(c.errorRate)} err`)
    .join(' · ');
  return `${status}  gate ${health.gate}  ${pc.dim(cohorts)}${health.reason ? `\n           ${pc.dim(health.reason)}` : ''}`;
}

function flagLine(flag: Flag | undefined, startedAt: number): string {
  if (!flag) return '';
  if (flag.killed)
    return pc.red(
      pc.bold(
        `KILLED by ${flag.killedBy ?? '?'} at ${clock(startedAt, Date.parse(flag.killedAt ?? ''))}: everyone gets "${flag.offVariant}"`,
      ),
    );
  return `${flag.enabled ? pc.green('enabled') : 'disabled'}, version ${flag.version}`;
}

/**
 * The demo's progress display: a status block redrawn in place on a terminal, with the events so far
 * above it; on anything else (CI, a pipe) the events as plain lines and a status line every 5 s.
 */
export class Progress {
  private readonly events: string[] = [];
  private readonly live = Boolean(process.stdout.isTTY);
  private readonly update = createLogUpdate(process.stdout);
  private snapshot: StatusSnapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastPlainStatus = 0;

  constructor(
    private readonly title: string,
    readonly startedAt = Date.now(),
  ) {}

  /** Starts redrawing (on a terminal) or prints the title (elsewhere). */
  start(): void {
    if (this.live) this.timer = setInterval(() => this.draw(), 250);
    else process.stdout.write(`${this.title}\n`);
  }

  /** A line in the event log, stamped with the time since the demo started. */
  event(text: string): void {
    const line = `${pc.dim(clock(this.startedAt).padStart(5))}  ${text}`;
    this.events.push(line);
    if (this.live) this.draw();
    else process.stdout.write(`${line}\n`);
  }

  status(snapshot: StatusSnapshot): void {
    this.snapshot = snapshot;
    if (!this.live && Date.now() - this.lastPlainStatus >= 5000) {
      this.lastPlainStatus = Date.now();
      const { v1, v2 } = snapshot.traffic;
      const step = snapshot.health?.schedule?.percent;
      process.stdout.write(
        `${pc.dim(clock(this.startedAt).padStart(5))}  ${pc.dim(
          `status: schedule ${step ?? '-'}% · ${trafficLine('v1', v1)} · ${trafficLine('v2', v2)} · guardian ${snapshot.health?.status ?? '-'}`,
        )}\n`,
      );
    }
  }

  /** Stops redrawing and leaves the last frame on screen. */
  stop(): void {
    clearInterval(this.timer);
    if (this.live) {
      this.draw();
      this.update.done();
    }
  }

  private draw(): void {
    const s = this.snapshot;
    const lines = [
      pc.bold(this.title) + pc.dim(`   elapsed ${clock(this.startedAt)}`),
      '',
      ...this.events,
      '',
    ];
    if (s) {
      lines.push(
        `${pc.bold('Schedule')}   ${scheduleLine(s.flag)}`,
        `${pc.bold('Users')}      ${trafficLine('old checkout (off)', s.traffic.v1)}   ${trafficLine('new checkout (on)', s.traffic.v2)}${s.faultInjected ? pc.red('  ← fault injected') : ''}`,
        `${pc.bold('Guardian')}   ${guardianLine(s.health)}`,
        `${pc.bold('Flag')}       ${flagLine(s.flag, this.startedAt)}`,
      );
    }
    this.update(lines.join('\n'));
  }
}
