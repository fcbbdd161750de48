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
  /**
   * Answer as a deployment gate: 200 only on a pass, 503 otherwise (for gates that only look at the
   * status code, like Flagger's webhooks). GET defaults to off (Argo Rollouts reads the body), POST to on.
   */
  gate: flagBoolean
    .optional()
    .describe(
      '`1` or `true`: answer as a gate, 200 only when `gate` is `pass` and 503 otherwise (`fail` or `wait`). ' +
        'Default: off for GET, on for POST (Flagger); `0` turns it off',
    ),
  /** Kept for old gate URLs: a gate now always refuses `wait`, so `healthy` is what it already does. */
  require: z
    .enum(['healthy'])
    .optional()
    .describe('Deprecated, no effect: a gate answers 200 only on a pass (this used to opt into it)'),
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
    // A verdict stored by an older guardian has none (the schema's parse fills what it lacks).
    thresholds: verdict?.thresholds ?? null,
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
 * GET answers 200 with the figures whatever the verdict (an Argo Rollouts web metric reads `gate` from
 * the body: `wait` leaves the measurement inconclusive). As a gate (`?gate=1`, the default for POST)
 * it fails closed: 200 only on a pass, 503 on `fail` and on `wait` (no verdict yet, no guardian, a
 * stale or too-small sample), so a tool that only reads the status code never advances on no data.
 * POST is for Flagger's webhooks, which cannot send headers: the token may come in the webhook's
 * `metadata.token` instead.
 */
export async function healthRoutes(app: FastifyInstance, options: HealthRouteOptions): Promise<void> {
  const { store, tokens } = options;

  const answer = async (request: FastifyRequest, reply: FastifyReply, gateByDefault: boolean) => {
    const { params, query } = parseRequest(request, { params: keyParams, query: healthQuerySchema });
    const [flag, verdict] = await Promise.all([
      store.getFlag(params.env, params.key),
      store.getVerdict(params.env, params.key),
    ]);
    if (!flag) throw new VigilError('VIGIL_NOT_FOUND', `no flag ${params.key} in ${params.env}`);
    const health = flagHealth(params.env, flag, verdict);
    const refuse = (query.gate ?? gateByDefault) && health.gate !== 'pass';
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
        'As a gate (`?gate=1`; POST by default): `gate` is `fail` or `wait`, the body is the same FlagHealth. ' +
          'Or `VIGIL_STORE_UNAVAILABLE` (an Error body): the store cannot be reached.',
        { anyOf: [ref('FlagHealth'), ref('Error')] },
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
          'or with no guardian running); a killed flag fails the gate whatever the verdict. Answers 200 with the ' +
          'figures unless `?gate=1`, which answers 200 only on a pass and 503 otherwise.',
      },
    },
    (request, reply) => answer(request, reply, false),
  );

  app.post(
    '/envs/:env/flags/:key/health',
    {
      schema: {
        ...schema,
        summary: "The guardian's verdict as a Flagger webhook gate (token as Bearer or in metadata.token)",
        description:
          "Flagger cannot send headers: the token may come in the webhook body's `metadata.token` instead of " +
          '`Authorization`. Any other body is ignored. A gate by default: 200 only when `gate` is `pass`, 503 on ' +
          '`fail` and `wait` (no verdict, no guardian, not enough samples), so Flagger never advances on no data; ' +
          '`?gate=0` answers 200 with the figures as the GET does.',
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
      return answer(request, reply, true);
    },
  );
}
