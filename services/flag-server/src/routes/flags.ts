import { environmentIssues, type Flag, validateFlag } from '@vigil/proto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VigilError } from '../errors.js';
import type { ServerMetrics } from '../metrics.js';
import { doc, errors, ref } from '../openapi.js';
import { etag, expectation, ifMatch, notModified, parseRequest } from '../request.js';
import type { EnvSnapshot, Store } from '../store/store.js';
import {
  envParams,
  invalid,
  keyParams,
  paramIssues,
  reasonBodySchema,
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
  if (issues.length > 0) throw invalid([], issues, 'flag');
  return { env, flag, snapshot };
}

function sendFlag(reply: FastifyReply, flag: Flag, status = 200): FastifyReply {
  return reply.code(status).header('etag', etag(flag.version)).send(flag);
}

const flagResponse = { 200: ref('Flag') };

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
        params: doc(envParams),
        response: {
          200: {
            type: 'object',
            properties: { revision: { type: 'integer' }, flags: { type: 'array', items: ref('Flag') } },
          },
          ...errors(400, 401, 403),
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
        params: doc(envParams),
        body: ref('Flag'),
        response: { 201: ref('Flag'), ...errors(400, 401, 403, 409, 503) },
      },
    },
    async (request, reply) => {
      const { env, flag } = await validateForEnv(request, undefined, snapshotOf);
      const saved = await store.putFlag(env, flag, { absent: true }, writeMeta(request));
      metrics.writes.inc({ action: 'flag.create' });
      reply.header('location', `/api/v1/envs/${env}/flags/${saved.key}`);
      return sendFlag(reply, saved, 201);
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
        response: { ...flagResponse, ...errors(400, 401, 403, 404) },
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
        summary: 'Create or replace a flag; If-Match: "<version>" refuses a lost update with 412',
        description:
          'The kill switch is not changed by a PUT (use kill/revive); version and timestamps are set by the server. ' +
          'X-Vigil-Reason is recorded in the audit log.',
        params: doc(keyParams),
        body: ref('Flag'),
        response: { ...flagResponse, 201: ref('Flag'), ...errors(400, 401, 403, 412, 503) },
      },
    },
    async (request, reply) => {
      const match = ifMatch(request);
      const key = (request.params as { key: string }).key;
      const { env, flag, snapshot } = await validateForEnv(request, key, snapshotOf);
      const current = snapshot.flags.find((f) => f.key === flag.key);
      const saved = await store.putFlag(
        env,
        flag,
        expectation(match, current, `flag ${flag.key}`),
        writeMeta(request),
      );
      metrics.writes.inc({ action: current ? 'flag.update' : 'flag.create' });
      return sendFlag(reply, saved, current ? 200 : 201);
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
        response: {
          204: { type: 'null', description: 'Deleted' },
          ...errors(400, 401, 403, 404, 409, 412, 503),
        },
      },
    },
    async (request, reply) => {
      const match = ifMatch(request);
      const { params } = parseRequest(request, { params: keyParams });
      const meta = writeMeta(request);
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
      await store.deleteFlag(params.env, params.key, expectation(match, current, `flag ${params.key}`), meta);
      metrics.writes.inc({ action: 'flag.delete' });
      return reply.code(204).send();
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
          params: doc(keyParams),
          body: doc(reasonBodySchema),
          response: { ...flagResponse, ...errors(400, 401, 403, 404, 503) },
        },
      },
      async (request, reply) => {
        const { params, body } = parseRequest(request, { params: keyParams, body: reasonBodySchema });
        const meta = writeMeta(request, body.reason);
        const flag = await store.setKill(params.env, params.key, { killed, ...meta });
        metrics.writes.inc({ action: `flag.${action}` });
        return sendFlag(reply, flag);
      },
    );
  }
}
