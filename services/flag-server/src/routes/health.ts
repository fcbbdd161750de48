import { type CohortFigures, type Flag, type FlagHealth, flagHealthSchema, type Verdict } from '@vigil/proto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorize, bearerToken, type Tokens } from '../auth.js';
import { VigilError } from '../errors.js';
import { AUTH_ERRORS, doc, errors, ref, reply } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { keyParams } from './common.js';

export interface HealthRouteOptions {
  store: Store;
  tokens: Tokens;
}

const flagBoolean = z.enum(['1', '0', 'true', 'false']).transform((v) => v === '1' || v === 'true');

export const healthQuerySchema = z.strictObject({
  /** Answer 503 when the gate is `fail` (for gates that only look at the status code, like Flagger's). */
  gate: flagBoolean.optional().describe('`1` or `true`: answer 503 when the gate is `fail`'),
  /** With `gate`: also answer 503 while the gate is `wait` (no verdict with enough samples yet). */
  require: z
    .enum(['healthy'])
    .optional()
    .describe('With `gate`: `healthy` also answers 503 while the gate is `wait`'),
});

/** What Flagger POSTs to a webhook: the canary's name and phase, and the webhook's `metadata`. */
const flaggerBodySchema = z
  .looseObject({ metadata: z.looseObject({ token: z.string().optional() }).optional() })
  .optional()
  .catch(undefined);

/**
 * The flag's health as the guardian last judged it. A verdict about another version than the current
 * one is not used (the flag changed since, and its new version is judged afresh); a killed flag fails
 * the gate whatever the verdict.
 */
export function flagHealth(env: string, flag: Flag, stored: Verdict | undefined): FlagHealth {
  const verdict = stored?.version === flag.version ? stored : undefined;
  const status = verdict?.status ?? 'insufficient_data';
  const gate = status === 'regression' || flag.killed ? 'fail' : status === 'healthy' ? 'pass' : 'wait';
  const cohorts: CohortFigures[] = [];
  let control: CohortFigures | null = null;
  for (const v of verdict?.variants ?? []) {
    cohorts.push(v.treatment);
    control ??= v.control;
  }
  if (control) cohorts.push(control);
  let reason = verdict?.reason ?? '';
  if (reason === '' && flag.killed) {
    reason = `killed by ${flag.killedBy ?? 'unknown'}${flag.killReason ? `: ${flag.killReason}` : ''}`;
  } else if (reason === '' && !verdict) {
    reason =
      stored === undefined
        ? 'no verdict from the guardian yet'
        : `no verdict on version ${flag.version} yet (the last was on version ${stored.version})`;
  }
  const schedule = flag.schedule;
  const step = schedule?.steps[schedule.stepIndex];
  return {
    env,
    flag: flag.key,
    version: flag.version,
    status,
    gate,
    healthy: gate === 'pass',
    killed: flag.killed,
    reason,
    severity: verdict?.severity ?? null,
    controlVariant: flag.offVariant,
    triggers: verdict?.triggers ?? [],
    cohorts,
    variants: verdict?.variants ?? [],
    verdictVersion: stored?.version ?? null,
    schedule: schedule
      ? {
          status: schedule.status,
          variant: schedule.variant,
          stepIndex: schedule.stepIndex,
          steps: schedule.steps.length,
          percent: step?.percent ?? null,
        }
      : null,
    updatedAt: verdict?.evaluatedAt ?? null,
  };
}

/**
 * `GET|POST /api/v1/envs/:env/flags/:key/health`: the guardian's verdict for deployment gates.
 * Always 200 with the figures, except with `?gate=1`, which answers 503 when the gate is `fail`
 * (and, with `require=healthy`, also while it is `wait`). POST is for Flagger's webhooks, which
 * cannot send headers: the token may come in the webhook's `metadata.token` instead.
 */
export async function healthRoutes(app: FastifyInstance, options: HealthRouteOptions): Promise<void> {
  const { store, tokens } = options;

  const answer = async (request: FastifyRequest, reply: FastifyReply) => {
    const { params, query } = parseRequest(request, { params: keyParams, query: healthQuerySchema });
    const [flag, verdict] = await Promise.all([
      store.getFlag(params.env, params.key),
      store.getVerdict(params.env, params.key),
    ]);
    if (!flag) throw new VigilError('VIGIL_NOT_FOUND', `no flag ${params.key} in ${params.env}`);
    const health = flagHealth(params.env, flag, verdict);
    const refuse =
      query.gate === true &&
      (health.gate === 'fail' || (query.require === 'healthy' && health.gate === 'wait'));
    return reply
      .code(refuse ? 503 : 200)
      .header('cache-control', 'no-store')
      .send(flagHealthSchema.parse(health));
  };

  const schema = {
    tags: ['guardian'],
    params: doc(keyParams),
    querystring: doc(healthQuerySchema),
    response: {
      200: reply(
        "The guardian's verdict on the current version; `gate` says what a deployment should do (`Cache-Control: no-store`)",
        ref('FlagHealth'),
      ),
      ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, [
        'VIGIL_NOT_FOUND',
        'no flag with this key in the environment.',
      ]),
      503: reply(
        'With `?gate=1`: the gate is `fail` (or `wait`, with `require=healthy`); the body is the same FlagHealth. ' +
          'Or `VIGIL_STORE_UNAVAILABLE` (an Error body): the store cannot be reached.',
        ref('FlagHealth'),
      ),
    },
  };

  app.get(
    '/envs/:env/flags/:key/health',
    {
      config: { access: 'read' },
      schema: {
        ...schema,
        summary: "The guardian's verdict on the flag's current version (an Argo Rollouts web metric)",
        description:
          '`status` is `insufficient_data` while the guardian has no verdict on this version (after a change, ' +
          'or with no guardian running); a killed flag fails the gate whatever the verdict.',
      },
    },
    answer,
  );

  app.post(
    '/envs/:env/flags/:key/health',
    {
      schema: {
        ...schema,
        summary: "The guardian's verdict as a Flagger webhook gate (token as Bearer or in metadata.token)",
        description:
          "Flagger cannot send headers: the token may come in the webhook body's `metadata.token` instead of " +
          '`Authorization`. Any other body is ignored. Answers as the GET does.',
        'x-vigil-access': 'read',
      },
    },
    async (request, reply) => {
      const secret = bearerToken(request) ?? flaggerBodySchema.parse(request.body)?.metadata?.token;
      if (!secret) throw new VigilError('VIGIL_UNAUTHORIZED', 'missing token (Bearer, or metadata.token)');
      const principal = await tokens.authenticate(secret);
      if (!principal) throw new VigilError('VIGIL_UNAUTHORIZED', 'unknown token');
      authorize(principal, 'read', (request.params as { env?: string }).env);
      request.principal = principal;
      return answer(request, reply);
    },
  );
}
