import { keySchema, type Segment, validateSegment } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { VigilError } from '../errors.js';
import { claimed, Idempotency, idempotent } from '../idempotency.js';
import type { ServerMetrics } from '../metrics.js';
import { AUTH_ERRORS, doc, errors, etagHeader, ref, reply, requestHeaders } from '../openapi.js';
import { etag, expectation, ifMatch, notModified, parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { envParams, invalid, paramIssues, WRITE_ERRORS, withUrlKey, writeMeta } from './common.js';

const keyParams = envParams.extend({ key: keySchema.describe("The segment's key") });

const SEGMENT_ETAG = etagHeader("The segment's version");

export interface SegmentRouteOptions {
  store: Store;
  metrics: ServerMetrics;
}

/** Flags whose rules name a segment in an `inSegment` clause. */
function flagsUsing(
  flags: readonly { key: string; rules: { clauses: { op: string; values: unknown[] }[] }[] }[],
  segment: string,
): string[] {
  return flags
    .filter((f) =>
      f.rules.some((r) =>
        r.clauses.some((c) => c.op === 'inSegment' && c.values.some((v) => String(v) === segment)),
      ),
    )
    .map((f) => f.key);
}

/**
 * Segments under `/api/v1/envs/:env/segments`. The store has no version check for segments, so
 * `If-Match` here is checked against the version read just before the write (best effort).
 */
export async function segmentRoutes(app: FastifyInstance, options: SegmentRouteOptions): Promise<void> {
  const { store, metrics } = options;

  const findSegment = async (env: string, key: string): Promise<Segment | undefined> =>
    (await store.snapshot(env)).segments.find((s) => s.key === key);

  app.get(
    '/envs/:env/segments',
    {
      config: { access: 'read' },
      schema: {
        tags: ['segments'],
        summary: "An environment's segments",
        description: 'Sorted by key.',
        params: doc(envParams),
        response: {
          200: reply("The environment's revision and its segments", {
            type: 'object',
            properties: { revision: { type: 'integer' }, segments: { type: 'array', items: ref('Segment') } },
          }),
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request) => {
      const { params } = parseRequest(request, { params: envParams });
      const snapshot = await store.snapshot(params.env);
      return {
        revision: snapshot.revision,
        segments: [...snapshot.segments].sort((a, b) => a.key.localeCompare(b.key)),
      };
    },
  );

  app.get(
    '/envs/:env/segments/:key',
    {
      config: { access: 'read' },
      schema: {
        tags: ['segments'],
        summary: 'One segment; ETag is its version',
        params: doc(keyParams),
        headers: requestHeaders('if-none-match'),
        response: {
          200: reply('The segment', ref('Segment'), SEGMENT_ETAG),
          304: reply('Not modified: `If-None-Match` names the current version', undefined, SEGMENT_ETAG),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', 'no segment with this key in the environment.'],
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: keyParams });
      const segment = await findSegment(params.env, params.key);
      if (!segment) throw new VigilError('VIGIL_NOT_FOUND', `no segment ${params.key} in ${params.env}`);
      reply.header('etag', etag(segment.version));
      if (notModified(request, segment.version)) return reply.code(304).send();
      return segment;
    },
  );

  app.put(
    '/envs/:env/segments/:key',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['segments'],
        summary: 'Create or replace a segment',
        description:
          'The body is the whole segment; a `key` in it must equal the key in the URL (it may be left out). ' +
          'The server sets `version` and `updatedAt`.',
        params: doc(keyParams),
        headers: requestHeaders('if-match', 'x-vigil-reason', 'idempotency-key'),
        body: ref('SegmentReplacement'),
        response: {
          200: reply('Replaced: the segment as stored', ref('Segment'), SEGMENT_ETAG),
          201: reply('Created: the segment as stored', ref('Segment'), SEGMENT_ETAG),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ['VIGIL_INVALID_CONFIG', 'the segment is refused; `details` names every bad field.'],
            ...AUTH_ERRORS,
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
      const send = (segment: Segment, status: number) =>
        reply
          .code(status as 200 | 201)
          .header('etag', etag(segment.version))
          .send(segment);
      return idempotent(
        store,
        idem,
        (record) => send(record.result as Segment, record.status),
        async () => {
          const path = paramIssues(keyParams, request);
          const keyed = withUrlKey(request.body, (request.params as { key: string }).key);
          const checked = validateSegment(keyed.body ?? undefined);
          const bodyIssues = [...keyed.issues, ...(checked.ok ? [] : checked.issues)];
          if (path.issues.length > 0 || bodyIssues.length > 0 || !checked.ok)
            throw invalid(path.issues, bodyIssues, 'segment');
          const { env } = path.value!;
          const meta = writeMeta(request);
          const current = await findSegment(env, checked.value.key);
          const expected = expectation(match, current, `segment ${checked.value.key}`);
          if (expected && 'version' in expected && current?.version !== expected.version) {
            throw new VigilError(
              'VIGIL_VERSION_CONFLICT',
              `segment ${checked.value.key} is at version ${current?.version ?? 'none'}`,
              {
                current: current?.version,
                expected: expected.version,
              },
            );
          }
          // The check above answers the common case with a clear message (and 412 for a segment gone since
          // it was read); the store checks the expectation again atomically, so racing writers cannot both win.
          const status = current ? 200 : 201;
          const saved = await store.putSegment(env, checked.value, claimed(meta, idem, status), expected);
          metrics.writes.inc({ action: 'segment.upsert' });
          return send(saved, status);
        },
      );
    },
  );

  app.delete(
    '/envs/:env/segments/:key',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['segments'],
        summary: 'Delete a segment (409 while a flag rule uses it)',
        params: doc(keyParams),
        headers: requestHeaders('x-vigil-reason', 'idempotency-key'),
        response: {
          204: reply('Deleted'),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', 'no segment with this key in the environment.'],
            ['VIGIL_IN_USE', 'a flag rule names it in an `inSegment` clause (`details.dependents`).'],
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: keyParams });
      const idem = Idempotency.of(request);
      const meta = claimed(writeMeta(request), idem, 204);
      return idempotent(
        store,
        idem,
        () => reply.code(204).send(),
        async () => {
          const snapshot = await store.snapshot(params.env);
          if (!snapshot.segments.some((s) => s.key === params.key)) {
            throw new VigilError('VIGIL_NOT_FOUND', `no segment ${params.key} in ${params.env}`);
          }
          const dependents = flagsUsing(snapshot.flags, params.key);
          if (dependents.length > 0) {
            throw new VigilError(
              'VIGIL_IN_USE',
              `segment ${params.key} is used by flag(s) ${dependents.join(', ')}`,
              { dependents },
            );
          }
          await store.deleteSegment(params.env, params.key, meta);
          metrics.writes.inc({ action: 'segment.delete' });
          return reply.code(204).send();
        },
      );
    },
  );
}
