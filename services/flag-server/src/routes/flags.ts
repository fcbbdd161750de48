import { environmentIssues, type Flag, flagIssues, validateFlag } from '@vigil/proto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VigilError } from '../errors.js';
import { claimed, Idempotency, idempotent } from '../idempotency.js';
import type { ServerMetrics } from '../metrics.js';
import { AUTH_ERRORS, doc, errors, etagHeader, ref, reply, requestHeaders } from '../openapi.js';
import { etag, expectation, ifMatch, notModified, parseRequest } from '../request.js';
import type { EnvSnapshot, Store } from '../store/store.js';
import {
  envParams,
  invalid,
  keyParams,
  paramIssues,
  reasonBodySchema,
  WRITE_ERRORS,
  withUrlKey,
  writeMeta,
} from './common.js';

export interface FlagRouteOptions {
  store: Store;
  metrics: ServerMetrics;
}

/**
 * Validates a flag body for a write in an environment: the flag on its own (`validateFlag`), then
 * against the environment as it would be after the write (prerequisites, cycles, segments).
 */
async function validateForEnv(
  request: FastifyRequest,
  key: string | undefined,
  snapshotOf: (env: string) => Promise<EnvSnapshot>,
): Promise<{ env: string; flag: Flag; snapshot: EnvSnapshot }> {
  const path = paramIssues(key === undefined ? envParams : keyParams, request);
  const keyed = key === undefined ? { body: request.body, issues: [] } : withUrlKey(request.body, key);
  const checked = validateFlag(keyed.body ?? undefined);
  const bodyIssues = [...keyed.issues, ...(checked.ok ? [] : checked.issues)];
  if (path.issues.length > 0 || bodyIssues.length > 0 || !checked.ok)
    throw invalid(path.issues, bodyIssues, 'flag');
  const env = path.value!.env;
  const flag = checked.value;
  const snapshot = await snapshotOf(env);
  const flags = new Map(snapshot.flags.map((f) => [f.key, f]));
  flags.set(flag.key, flag);
  const issues = environmentIssues(flag, flags, new Set(snapshot.segments.map((s) => s.key)));
  // The store keeps a flag's schedule across a put (only the schedule routes change it), so the flag as
  // it will be stored, with that schedule, must pass the same checks: new variants may not orphan it.
  const kept = snapshot.flags.find((f) => f.key === flag.key)?.schedule;
  if (kept) {
    for (const issue of flagIssues({ ...flag, schedule: kept })) {
      if (issue.field.startsWith('schedule')) {
        issues.push({ field: issue.field, message: `${issue.message} (the schedule the flag keeps)` });
      }
    }
  }
  if (issues.length > 0) throw invalid([], issues, 'flag');
  return { env, flag, snapshot };
}

function sendFlag(reply: FastifyReply, flag: Flag, status = 200): FastifyReply {
  return reply.code(status).header('etag', etag(flag.version)).send(flag);
}

const FLAG_ETAG = etagHeader("The flag's version");

/** A write's 400: a malformed request, or a flag refused at write time. */
const FLAG_REFUSED = [
  ['VIGIL_BAD_REQUEST', 'a malformed path parameter or header, or a body that is not JSON.'],
  [
    'VIGIL_INVALID_CONFIG',
    "the flag is refused (its own fields, or its prerequisites and segments against the environment's); `details` names every bad field.",
  ],
] as const;

/** Flags CRUD and the kill switch, under `/api/v1/envs/:env/flags`. */
export async function flagRoutes(app: FastifyInstance, options: FlagRouteOptions): Promise<void> {
  const { store, metrics } = options;
  const snapshotOf = (env: string) => store.snapshot(env);

  app.get(
    '/envs/:env/flags',
    {
      config: { access: 'read' },
      schema: {
        tags: ['flags'],
        summary: "An environment's flags",
        description: 'Sorted by key. An environment never written answers an empty list at revision 0.',
        params: doc(envParams),
        response: {
          200: reply(
            "The environment's revision and its flags",
            {
              type: 'object',
              properties: { revision: { type: 'integer' }, flags: { type: 'array', items: ref('Flag') } },
            },
            etagHeader("The environment's revision"),
          ),
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: envParams });
      const snapshot = await store.snapshot(params.env);
      reply.header('etag', etag(snapshot.revision));
      return {
        revision: snapshot.revision,
        flags: [...snapshot.flags].sort((a, b) => a.key.localeCompare(b.key)),
      };
    },
  );

  app.post(
    '/envs/:env/flags',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['flags'],
        summary: 'Create a flag (409 if the key exists)',
        description:
          'The server sets `version`, `createdAt` and `updatedAt`; a created flag may carry a kill switch and a schedule.',
        params: doc(envParams),
        headers: requestHeaders('x-vigil-reason', 'idempotency-key'),
        body: ref('Flag'),
        response: {
          201: reply('The flag as stored', ref('Flag'), {
            ...FLAG_ETAG,
            location: { type: 'string', description: "The flag's URL" },
          }),
          ...errors(
            ...FLAG_REFUSED,
            ...AUTH_ERRORS,
            ['VIGIL_ALREADY_EXISTS', 'a flag with this key exists in the environment.'],
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const idem = Idempotency.of(request);
      const created = (flag: Flag, status: number) => {
        const env = (request.params as { env: string }).env;
        reply.header('location', `/api/v1/envs/${env}/flags/${flag.key}`);
        return sendFlag(reply, flag, status);
      };
      return idempotent(
        store,
        idem,
        (record) => created(record.result as Flag, record.status),
        async () => {
          const { env, flag } = await validateForEnv(request, undefined, snapshotOf);
          const meta = claimed(writeMeta(request), idem, 201);
          const saved = await store.putFlag(env, flag, { absent: true }, meta);
          metrics.writes.inc({ action: 'flag.create' });
          return created(saved, 201);
        },
      );
    },
  );

  app.get(
    '/envs/:env/flags/:key',
    {
      config: { access: 'read' },
      schema: {
        tags: ['flags'],
        summary: 'One flag; ETag is its version',
        params: doc(keyParams),
        headers: requestHeaders('if-none-match'),
        response: {
          200: reply('The flag', ref('Flag'), FLAG_ETAG),
          304: reply('Not modified: `If-None-Match` names the current version', undefined, FLAG_ETAG),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', 'no flag with this key in the environment.'],
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: keyParams });
      const flag = await store.getFlag(params.env, params.key);
      if (!flag) throw new VigilError('VIGIL_NOT_FOUND', `no flag ${params.key} in ${params.env}`);
      if (notModified(request, flag.version))
        return reply.code(304).header('etag', etag(flag.version)).send();
      return sendFlag(reply, flag);
    },
  );

  app.put(
    '/envs/:env/flags/:key',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['flags'],
        summary: 'Create or replace a flag; `If-Match: "<version>"` refuses a lost update with 412',
        description:
          'The body is the whole flag; a `key` in it must equal the key in the URL (it may be left out). ' +
          'An update keeps the stored kill switch and schedule whatever the body says (use kill/revive and the ' +
          'schedule routes); version and timestamps are set by the server.',
        params: doc(keyParams),
        headers: requestHeaders('if-match', 'x-vigil-reason', 'idempotency-key'),
        body: ref('FlagReplacement'),
        response: {
          200: reply('Replaced: the flag as stored', ref('Flag'), FLAG_ETAG),
          201: reply('Created: the flag as stored', ref('Flag'), FLAG_ETAG),
          ...errors(
            ...FLAG_REFUSED,
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', '`If-Match` names a version of a flag that does not exist.'],
            'VIGIL_VERSION_CONFLICT',
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const match = ifMatch(request);
      const idem = Idempotency.of(request);
      return idempotent(
        store,
        idem,
        (record) => sendFlag(reply, record.result as Flag, record.status),
        async () => {
          const key = (request.params as { key: string }).key;
          const { env, flag, snapshot } = await validateForEnv(request, key, snapshotOf);
          const current = snapshot.flags.find((f) => f.key === flag.key);
          const status = current ? 200 : 201;
          const saved = await store.putFlag(
            env,
            flag,
            expectation(match, current, `flag ${flag.key}`),
            claimed(writeMeta(request), idem, status),
          );
          metrics.writes.inc({ action: current ? 'flag.update' : 'flag.create' });
          return sendFlag(reply, saved, status);
        },
      );
    },
  );

  app.delete(
    '/envs/:env/flags/:key',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['flags'],
        summary: 'Delete a flag (409 while other flags require it as a prerequisite)',
        params: doc(keyParams),
        headers: requestHeaders('if-match', 'x-vigil-reason', 'idempotency-key'),
        response: {
          204: reply('Deleted'),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', 'no flag with this key in the environment.'],
            ['VIGIL_IN_USE', 'other flags name it as a prerequisite (`details.dependents`).'],
            'VIGIL_VERSION_CONFLICT',
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const match = ifMatch(request);
      const { params } = parseRequest(request, { params: keyParams });
      const idem = Idempotency.of(request);
      const meta = claimed(writeMeta(request), idem, 204);
      return idempotent(
        store,
        idem,
        () => reply.code(204).send(),
        async () => {
          const snapshot = await store.snapshot(params.env);
          const current = snapshot.flags.find((f) => f.key === params.key);
          if (!current) throw new VigilError('VIGIL_NOT_FOUND', `no flag ${params.key} in ${params.env}`);
          const dependents = snapshot.flags
            .filter((f) => f.prerequisites.some((p) => p.flag === params.key))
            .map((f) => f.key);
          if (dependents.length > 0) {
            throw new VigilError(
              'VIGIL_IN_USE',
              `flag ${params.key} is a prerequisite of ${dependents.join(', ')}`,
              {
                dependents,
              },
            );
          }
          await store.deleteFlag(
            params.env,
            params.key,
            expectation(match, current, `flag ${params.key}`),
            meta,
          );
          metrics.writes.inc({ action: 'flag.delete' });
          return reply.code(204).send();
        },
      );
    },
  );

  for (const [action, killed] of [
    ['kill', true],
    ['revive', false],
  ] as const) {
    app.post(
      `/envs/:env/flags/:key/${action}`,
      {
        config: { access: 'ops' },
        schema: {
          tags: ['kill switch'],
          summary: killed
            ? 'Kill a flag: serve its offVariant to everyone (idempotent, no version check)'
            : 'Revive a killed flag: serve exactly what it served before the kill (idempotent)',
          description: killed
            ? 'Sets `killed`, `killedAt`, `killedBy` (the token name) and `killReason`: a new version that reaches ' +
              'every SDK as a patch. Killing a killed flag changes nothing and writes no version.'
            : 'Clears the kill switch: a new version serving what the flag served before the kill. Reviving a ' +
              'flag that is not killed changes nothing.',
          params: doc(keyParams),
          headers: requestHeaders('idempotency-key'),
          body: doc(reasonBodySchema),
          response: {
            200: reply('The flag as stored', ref('Flag'), FLAG_ETAG),
            ...errors(
              ['VIGIL_BAD_REQUEST', 'a malformed path parameter, or no `reason`.'],
              ...AUTH_ERRORS,
              ['VIGIL_NOT_FOUND', 'no flag with this key in the environment.'],
              ...WRITE_ERRORS,
              'VIGIL_STORE_UNAVAILABLE',
            ),
          },
        },
      },
      async (request, reply) => {
        const { params, body } = parseRequest(request, { params: keyParams, body: reasonBodySchema });
        const idem = Idempotency.of(request);
        const meta = claimed(writeMeta(request, body.reason), idem, 200);
        return idempotent(
          store,
          idem,
          (record) => sendFlag(reply, record.result as Flag, record.status),
          async () => {
            const flag = await store.setKill(params.env, params.key, { killed, ...meta });
            metrics.writes.inc({ action: `flag.${action}` });
            return sendFlag(reply, flag);
          },
        );
      },
    );
  }
}
