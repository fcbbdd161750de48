import { useQueryClient } from '@tanstack/react-query';
import type { Flag, Schedule } from '@vigil/proto';
import { useEffect, useState } from 'react';
import { Badge, Button, Empty, ErrorBanner, Field } from '../components/ui.js';
import { ApiError, type FieldIssue, seg } from '../lib/api.js';
import { duration, when } from '../lib/format.js';
import { formatSteps, holdMs, parseSteps, scheduleProgress } from '../lib/schedule.js';
import { keys, useAudit, useHealth } from '../queries.js';
import { useApi, useCan } from '../session.js';

const STATUS_TONE: Record<Schedule['status'], string> = {
  pending: 'info',
  running: 'info',
  paused: 'warn',
  completed: 'ok',
  rolled_back: 'danger',
  aborted: 'muted',
};

/** A ticking clock for countdowns. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/** The progressive rollout: its steps as a timeline, the hold's countdown, sample progress, controls, history. */
export function RolloutPage({ env, flag, version }: { env: string; flag: Flag; version: number }) {
  const schedule = flag.schedule;
  const active = schedule && ['pending', 'running', 'paused'].includes(schedule.status);
  const health = useHealth(env, flag.key, Boolean(active));
  const audit = useAudit(env, flag.key);
  const now = useNow();
  const history = (audit.data ?? []).filter((e) =>
    ['flag.schedule', 'flag.kill', 'flag.revive'].includes(e.action),
  );
  return (
    <div className="rollout-page">
      {schedule ? (
        <section className="card" aria-labelledby="schedule-title">
          <div className="page-head">
            <h2 id="schedule-title">
              Rolling out <code>{schedule.variant}</code>{' '}
              <Badge tone={STATUS_TONE[schedule.status]}>
                <span data-testid="schedule-status">{schedule.status.replace('_', ' ')}</span>
              </Badge>
            </h2>
            <ScheduleActions env={env} flag={flag} />
          </div>
          <Timeline schedule={schedule} now={now} />
          <SampleProgress flag={flag} health={health.data} />
          {schedule.reason && <p className="muted">Last change: {schedule.reason}</p>}
        </section>
      ) : (
        <Empty title="No schedule">
          <p>
            A schedule raises a variant's share step by step, each step only after its hold passed healthy.
          </p>
        </Empty>
      )}
      <StartSchedule env={env} flag={flag} version={version} />
      <section className="card" aria-labelledby="history-title">
        <h2 id="history-title">Who did what</h2>
        <ErrorBanner error={audit.error} />
        {history.length === 0 ? (
          <p className="muted">No schedule, kill or revive yet.</p>
        ) : (
          <ol className="history" data-testid="schedule-history">
            {history.map((e) => (
              <li key={e.id}>
                <span className="mono">{when(e.at)}</span> <strong>{e.actor}</strong>{' '}
                {e.action.replace('flag.', '')}
                {e.reason ? `: ${e.reason}` : ''}
              </li>
            ))}
          </ol>
        )}
      </section>
    </div>
  );
}

function Timeline({ schedule, now }: { schedule: Schedule; now: number }) {
  const progress = scheduleProgress(schedule, now);
  return (
    <ol className="timeline" aria-label="Steps" data-testid="timeline">
      {schedule.steps.map((step, i) => {
        const state =
          i < progress.stepIndex || (i === progress.stepIndex && schedule.status === 'completed')
            ? 'done'
            : i === progress.stepIndex
              ? 'current'
              : 'todo';
        const hold = holdMs(step.hold) ?? 0;
        return (
          <li
            // biome-ignore lint/suspicious/noArrayIndexKey: steps are positional (two steps may have the same percent and hold)
            key={i}
            className={`step step-${state}`}
            aria-current={state === 'current' ? 'step' : undefined}
            data-testid="step"
            data-state={state}
          >
            <span className="step-percent">{step.percent}%</span>
            <span className="step-hold muted">{hold ? `hold ${duration(hold)}` : 'final'}</span>
            {state === 'current' && progress.holdLeftMs !== undefined && hold > 0 && (
              <span className="step-countdown">
                <progress max={1} value={progress.holdDone} aria-label="Hold passed" />
                <span data-testid="countdown">
                  {progress.ticking
                    ? `${duration(progress.holdLeftMs)} left`
                    : `paused, ${duration(progress.holdLeftMs)} left`}
                </span>
              </span>
            )}
          </li>
        );
      })}
    </ol>
  );
}

function SampleProgress({
  flag,
  health,
}: {
  flag: Flag;
  health: { cohorts?: { variant: string; requests: number }[] } | undefined;
}) {
  const min = flag.guard?.minSamples;
  const cohorts = health?.cohorts ?? [];
  if (cohorts.length === 0) return <p className="muted">No traffic measured on this version yet.</p>;
  return (
    <div className="samples" data-testid="samples">
      <h3>Samples on this version</h3>
      {cohorts.map((c) => (
        <div key={c.variant} className="sample-row">
          <span className="mono">{c.variant}</span>
          {min ? (
            <>
              <progress max={min} value={Math.min(min, c.requests)} aria-label={`Samples of ${c.variant}`} />
              <span>
                {c.requests} / {min}
              </span>
            </>
          ) : (
            <span>{c.requests} requests (minimum: the service default)</span>
          )}
        </div>
      ))}
    </div>
  );
}

function ScheduleActions({ env, flag }: { env: string; flag: Flag }) {
  const api = useApi();
  const client = useQueryClient();
  const canOps = useCan('ops');
  const [error, setError] = useState<unknown>();
  const status = flag.schedule?.status;
  const act = async (action: 'pause' | 'resume' | 'abort') => {
    setError(undefined);
    try {
      const updated = await api.post<Flag>(`/envs/${seg(env)}/flags/${seg(flag.key)}/schedule/${action}`, {
        reason: `${action} from the console`,
      });
      client.setQueryData(keys.flag(env, flag.key), { flag: updated, version: updated.version });
      void client.invalidateQueries({ queryKey: keys.audit(env) });
    } catch (e) {
      setError(e);
    }
  };
  const why = canOps ? undefined : 'Schedules need an ops or admin token';
  return (
    <div className="row">
      {status === 'paused' ? (
        <Button onClick={() => void act('resume')} disabledReason={why} data-testid="resume">
          Resume
        </Button>
      ) : (
        <Button
          onClick={() => void act('pause')}
          disabledReason={why ?? (status === 'running' || status === 'pending' ? undefined : 'Not running')}
          data-testid="pause"
        >
          Pause
        </Button>
      )}
      <Button
        variant="danger"
        onClick={() => void act('abort')}
        disabledReason={
          why ??
          (status === 'running' || status === 'pending' || status === 'paused' ? undefined : 'Finished')
        }
        data-testid="abort"
      >
        Abort
      </Button>
      <ErrorBanner error={error} />
    </div>
  );
}

function StartSchedule({ env, flag, version }: { env: string; flag: Flag; version: number }) {
  const api = useApi();
  const client = useQueryClient();
  const canOps = useCan('ops');
  const candidates = flag.variants.map((v) => v.key).filter((k) => k !== flag.offVariant);
  const [variant, setVariant] = useState(candidates[0] ?? '');
  const [text, setText] = useState(
    formatSteps([
      { percent: 5, hold: '5m' },
      { percent: 20, hold: '5m' },
      { percent: 50, hold: '10m' },
      { percent: 100, hold: 0 },
    ]),
  );
  const [issues, setIssues] = useState<FieldIssue[]>([]);
  const [error, setError] = useState<unknown>();
  const parsed = parseSteps(text);
  if (!canOps) return null;
  const start = async () => {
    setIssues([]);
    setError(undefined);
    try {
      const r = await api.send<Flag>('PUT', `/envs/${seg(env)}/flags/${seg(flag.key)}/schedule`, {
        body: { variant, steps: parsed.steps },
        headers: { 'if-match': `"${version}"` },
      });
      client.setQueryData(keys.flag(env, flag.key), { flag: r.body, version: r.body.version });
      void client.invalidateQueries({ queryKey: keys.audit(env) });
    } catch (e) {
      if (e instanceof ApiError && e.issues.length) setIssues(e.issues);
      else setError(e);
    }
  };
  const restarting = flag.schedule && ['pending', 'running', 'paused'].includes(flag.schedule.status);
  return (
    <section className="card" aria-labelledby="start-title">
      <h2 id="start-title">{restarting ? 'Restart the schedule' : 'Start a schedule'}</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void start();
        }}
      >
        <div className="grid-2">
          <Field label="Variant to roll out" issues={issues.filter((i) => i.field === 'variant')}>
            {(props) => (
              <select {...props} value={variant} onChange={(e) => setVariant(e.target.value)}>
                {candidates.map((c) => (
                  <option key={c} value={c}>
                    {c}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field
            label="Steps"
            hint="Comma-separated, e.g. 5% for 5m, 20% for 5m, 50% for 10m, 100%."
            issues={[
              ...issues.filter((i) => i.field !== 'variant'),
              ...parsed.errors.map((message) => ({ field: 'steps', message })),
            ]}
          >
            {(props) => (
              <input {...props} value={text} onChange={(e) => setText(e.target.value)} data-testid="steps" />
            )}
          </Field>
        </div>
        <ErrorBanner error={error} />
        <Button
          type="submit"
          variant="primary"
          disabled={parsed.errors.length > 0 || !variant || flag.killed}
          data-testid="start-schedule"
        >
          {restarting ? 'Restart' : 'Start'}
        </Button>
        {flag.killed && <p className="hint">A killed flag cannot be scheduled: revive it first.</p>}
      </form>
    </section>
  );
}
