import {
  durationMs,
  type FieldIssue,
  type Flag,
  holdEndsAt,
  keySchema,
  type Schedule,
  scheduleStepSchema,
} from '@vigil/proto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { isVigilError, VigilError } from '../errors.js';
import { claimed, Idempotency, idempotent } from '../idempotency.js';
import type { ServerMetrics } from '../metrics.js';
import { AUTH_ERRORS, doc, errors, etagHeader, ref, reply, requestHeaders } from '../openapi.js';
import { etag, expectation, ifMatch, parseRequest } from '../request.js';
import type { Expectation, Store, WriteMeta } from '../store/store.js';
import { invalid, keyParams, WRITE_ERRORS, writeMeta } from './common.js';

export interface ScheduleRouteOptions {
  store: Store;
  metrics: ServerMetrics;
  /** Epoch ms; injectable for tests. */
  now: () => number;
}

/** Body of `PUT .../schedule`: the variant to roll out and its steps. */
export const scheduleBodySchema = z.strictObject({
  variant: keySchema.describe('The variant to roll out; not the offVariant, which the other contexts get'),
  steps: z
    .array(scheduleStepSchema)
    .min(1)
    .max(50)
    .describe(
      'Percentages (above 0, at most three decimals, never lower than the step before) and holds: ' +
        'whole seconds, or a number followed by ms, s, m, h or d',
    ),
});

/** Schedules that are still to run: a new PUT restarts them, pause/resume/abort act on them. */
const ACTIVE: ReadonlySet<Schedule['status']> = new Set(['pending', 'running', 'paused']);

/** Why a schedule body does not fit the flag, naming each bad field. */
export function scheduleIssues(flag: Flag, body: z.output<typeof scheduleBodySchema>): FieldIssue[] {
  const issues: FieldIssue[] = [];
  if (!flag.variants.some((v) => v.key === body.variant)) {
    issues.push({ field: 'variant', message: `unknown variant "${body.variant}"` });
  } else if (body.variant === flag.offVariant) {
    issues.push({ field: 'variant', message: 'is the offVariant, which the rest of the contexts get' });
  }
  body.steps.forEach((step, i) => {
    if (step.percent <= 0) issues.push({ field: `steps[${i}].percent`, message: 'must be above 0' });
    // Compared as the nearest double to a three-decimal number: 32.044 * 1000 is 32043.999999999996.
    if (Math.round(step.percent * 1000) / 1000 !== step.percent)
      issues.push({ field: `steps[${i}].percent`, message: 'has more than three decimals' });
    const previous = body.steps[i - 1];
    if (previous && step.percent < previous.percent)
      issues.push({ field: `steps[${i}].percent`, message: 'steps must not lower the percentage' });
  });
  return issues;
}

/** The schedule paused at `now`: the hold left is kept for resume. */
export function paused(schedule: Schedule, now: number, at: string, reason?: string): Schedule {
  const next: Schedule = { ...schedule, status: 'paused', updatedAt: at };
  const end = holdEndsAt(schedule);
  if (end !== undefined) next.remainingHoldMs = Math.max(0, Math.round(end - now));
  if (reason !== undefined) next.reason = reason;
  return next;
}

/** The schedule resumed at `at`: the same step, with the hold that was left when it was paused. */
export function resumed(schedule: Schedule, at: string, reason?: string): Schedule {
  const next: Schedule = { ...schedule, status: 'running', updatedAt: at };
  if (schedule.stepIndex >= 0) {
    next.stepStartedAt = at;
    const step = schedule.steps[schedule.stepIndex]!;
    next.remainingHoldMs = schedule.remainingHoldMs ?? durationMs(step.hold);
  }
  if (reason !== undefined) next.reason = reason;
  return next;
}

function sendFlag(reply: FastifyReply, flag: Flag): FastifyReply {
  return reply.code(200).header('etag', etag(flag.version)).send(flag);
}

const actionBodySchema = z
  .strictObject({
    reason: z
      .string()
      .trim()
      .min(1)
      .max(2048)
      .optional()
      .describe('Why; recorded in the audit log (over X-Vigil-Reason)'),
  })
  .default({});

const FLAG_ETAG = etagHeader("The flag's version");

/**
 * Progressive schedules, under `/api/v1/envs/:env/flags/:key/schedule`. The schedule lives on the
 * flag; these routes set its intent (start, pause, resume, abort) and the guardian, holding the
 * `schedules` lock, moves it through its steps. Every write is a `flag.schedule` audit entry.
 */
export async function scheduleRoutes(app: FastifyInstance, options: ScheduleRouteOptions): Promise<void> {
  const { store, metrics, now } = options;

  /**
   * Applies `change` to the stored flag's schedule. Without an expectation the write is retried on
   * a version conflict: the guardian may have advanced a step meanwhile, and the change is decided
   * again on the new state.
   */
  const write = async (
    env: string,
    key: string,
    meta: WriteMeta,
    expect: Expectation | ((flag: Flag) => Expectation),
    change: (flag: Flag) => Schedule | undefined,
  ): Promise<Flag> => {
    for (let attempt = 0; ; attempt++) {
      const flag = await store.getFlag(env, key);
      if (!flag) throw new VigilError('VIGIL_NOT_FOUND', `no flag ${key} in ${env}`);
      const schedule = change(flag);
      if (schedule === undefined) return flag;
      const expected = typeof expect === 'function' ? expect(flag) : expect;
      try {
        return await store.putSchedule(
          env,
          key,
          { ...meta, schedule },
          expected ?? { version: flag.version },
        );
      } catch (error) {
        if (expected !== undefined || attempt >= 4 || !isVigilError(error, 'VIGIL_VERSION_CONFLICT'))
          throw error;
      }
    }
  };

  app.put(
    '/envs/:env/flags/:key/schedule',
    {
      config: { access: 'ops' },
      schema: {
        tags: ['schedules'],
        summary: "Start (or restart) a flag's progressive rollout",
        description:
          'Steps raise the share of contexts served `variant` (the rest get the offVariant). The guardian ' +
          'moves to the next step once the hold passed with a healthy verdict and enough samples; on a ' +
          'regression it holds the step and, under an auto-kill severity, kills the flag, which marks the ' +
          'schedule `rolled_back`. `If-Match: "<version>"` refuses a lost update.',
        params: doc(keyParams),
        headers: requestHeaders('if-match', 'x-vigil-reason', 'idempotency-key'),
        body: doc(scheduleBodySchema),
        response: {
          200: reply(
            'The flag with its schedule (`status: pending`, `stepIndex: -1`)',
            ref('Flag'),
            FLAG_ETAG,
          ),
          ...errors(
            'VIGIL_BAD_REQUEST',
            [
              'VIGIL_INVALID_CONFIG',
              'the schedule does not fit the flag (an unknown variant or the offVariant, a bad percentage).',
            ],
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', 'no flag with this key in the environment.'],
            ['VIGIL_INVALID_STATE', 'the flag is killed; revive it first.'],
            'VIGIL_VERSION_CONFLICT',
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const match = ifMatch(request);
      const { params, body } = parseRequest(request, { params: keyParams, body: scheduleBodySchema });
      const idem = Idempotency.of(request);
      const meta = claimed(writeMeta(request), idem, 200);
      const at = new Date(now()).toISOString();
      return idempotent(
        store,
        idem,
        (record) => sendFlag(reply, record.result as Flag),
        async () => {
          const flag = await write(
            params.env,
            params.key,
            { ...meta, reason: meta.reason ?? `schedule ${describeSteps(body)}` },
            (current) => expectation(match, current, `flag ${params.key}`),
            (current) => {
              const issues = scheduleIssues(current, body);
              if (issues.length > 0) throw invalid([], issues, 'schedule');
              if (current.killed) {
                throw new VigilError(
                  'VIGIL_INVALID_STATE',
                  `flag ${params.key} is killed; revive it before scheduling a rollout`,
                );
              }
              return {
                variant: body.variant,
                steps: body.steps,
                status: 'pending',
                stepIndex: -1,
                updatedAt: at,
              };
            },
          );
          metrics.writes.inc({ action: 'flag.schedule' });
          return sendFlag(reply, flag);
        },
      );
    },
  );

  const actions = {
    pause: (schedule: Schedule, at: string, reason?: string) => {
      if (schedule.status === 'paused') return undefined;
      return paused(schedule, now(), at, reason);
    },
    resume: (schedule: Schedule, at: string, reason?: string) => {
      if (schedule.status === 'running' || schedule.status === 'pending') return undefined;
      return resumed(schedule, at, reason);
    },
    abort: (schedule: Schedule, at: string, reason?: string) => {
      const next: Schedule = { ...schedule, status: 'aborted', updatedAt: at };
      if (reason !== undefined) next.reason = reason;
      return next;
    },
  } as const;

  for (const action of ['pause', 'resume', 'abort'] as const) {
    app.post(
      `/envs/:env/flags/:key/schedule/${action}`,
      {
        config: { access: 'ops' },
        schema: {
          tags: ['schedules'],
          summary:
            action === 'pause'
              ? 'Pause a schedule at its step, keeping the hold left (idempotent)'
              : action === 'resume'
                ? 'Resume a paused schedule at the same step with the hold that was left (idempotent)'
                : 'Abort a schedule; the flag keeps serving what it serves now (idempotent)',
          params: doc(keyParams),
          headers: requestHeaders('x-vigil-reason', 'idempotency-key'),
          body: doc(actionBodySchema),
          response: {
            200: reply('The flag with its schedule', ref('Flag'), FLAG_ETAG),
            ...errors(
              'VIGIL_BAD_REQUEST',
              ...AUTH_ERRORS,
              ['VIGIL_NOT_FOUND', 'no flag with this key, or the flag has no schedule.'],
              [
                'VIGIL_INVALID_STATE',
                action === 'abort'
                  ? 'the schedule completed or was rolled back; `details.status` says which.'
                  : 'the schedule is finished (completed, rolled back or aborted); `details.status` says which.',
              ],
              ['VIGIL_VERSION_CONFLICT', 'the flag kept changing while the write was retried.'],
              ...WRITE_ERRORS,
              'VIGIL_STORE_UNAVAILABLE',
            ),
          },
        },
      },
      async (request, reply) => {
        const { params, body } = parseRequest(request, { params: keyParams, body: actionBodySchema });
        const idem = Idempotency.of(request);
        const meta = claimed(writeMeta(request, body.reason), idem, 200);
        return idempotent(
          store,
          idem,
          (record) => sendFlag(reply, record.result as Flag),
          async () => {
            const flag = await write(params.env, params.key, meta, undefined, (current) => {
              const schedule = current.schedule;
              if (!schedule) throw new VigilError('VIGIL_NOT_FOUND', `flag ${params.key} has no schedule`);
              // The state this action leads to counts as done (idempotent); other finished states refuse.
              if (action === 'abort' && schedule.status === 'aborted') return undefined;
              if (!ACTIVE.has(schedule.status)) {
                throw new VigilError(
                  'VIGIL_INVALID_STATE',
                  `the schedule of ${params.key} is ${schedule.status}; it cannot ${action}`,
                  { status: schedule.status },
                );
              }
              return actions[action](schedule, new Date(now()).toISOString(), body.reason);
            });
            metrics.writes.inc({ action: `flag.schedule.${action}` });
            return sendFlag(reply, flag);
          },
        );
      },
    );
  }
}

/** `5% for 5m → 20% for 10m → 100%` */
function describeSteps(body: z.output<typeof scheduleBodySchema>): string {
  return `${body.variant}: ${body.steps
    .map((s, i) =>
      i === body.steps.length - 1 && durationMs(s.hold) === 0
        ? `${s.percent}%`
        : `${s.percent}% for ${typeof s.hold === 'number' ? `${s.hold}s` : s.hold}`,
    )
    .join(' → ')}`;
}
