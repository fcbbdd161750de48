import swagger from '@fastify/swagger';
import {
  auditEntrySchema,
  cohortSummarySchema,
  contextSchema,
  errorBodySchema,
  flagHealthSchema,
  flagSchema,
  incidentSchema,
  jsonValueSchema,
  metricsBatchSchema,
  segmentSchema,
  tokenInfoSchema,
} from '@vigil/proto';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { z } from 'zod';
import { ACCESS, type Access } from './auth.js';
import { ERRORS, type ErrorCode } from './errors.js';

declare module 'fastify' {
  interface FastifySchema {
    /** For routes that check the token themselves (no `config.access`): the access level they demand. */
    'x-vigil-access'?: Access;
    /** For such routes whose environment is not a path parameter: tokens bound to one may call them for it. */
    'x-vigil-bound-tokens'?: 'own-env';
  }
}

/** Schemas shown as OpenAPI components, referenced from routes as `{ $ref: 'Flag#' }`. */
const COMPONENTS = {
  Flag: flagSchema,
  Segment: segmentSchema,
  JsonValue: jsonValueSchema,
  Context: contextSchema,
  Error: errorBodySchema,
  TokenInfo: tokenInfoSchema,
  AuditEntry: auditEntrySchema,
  CohortSummary: cohortSummarySchema,
  MetricsBatch: metricsBatchSchema,
  Incident: incidentSchema,
  FlagHealth: flagHealthSchema,
} as const;

/**
 * Components derived from others: request bodies of `PUT .../{key}`, where the key comes from the path
 * and may be left out of the body (`[component, from, the fields no longer required]`).
 */
const DERIVED = [
  ['FlagReplacement', 'Flag', ['key']],
  ['SegmentReplacement', 'Segment', ['key']],
] as const;

export type Component = keyof typeof COMPONENTS | (typeof DERIVED)[number][0];

/** A reference to a component schema. */
export const ref = (name: Component) => ({ $ref: `${name}#` });

/** A small zod schema (no shared parts) as an inline JSON Schema for route documentation. */
export function doc(schema: z.ZodType): Record<string, unknown> {
  return nullableEnums(
    z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }),
  ) as Record<string, unknown>;
}

/**
 * Lists `null` in the `enum` of every `nullable` schema. OpenAPI 3.0.3: `nullable: true` adds null to
 * the `type` only, "other constraints retain their defined behavior" — so an enum without null still
 * refuses it, and zod's output (`{ type, enum, nullable }` for `z.enum().nullable()`) must name it.
 */
function nullableEnums<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map(nullableEnums) as T;
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = key === 'enum' ? value : nullableEnums(value);
  if (out.nullable === true && Array.isArray(out.enum) && !out.enum.includes(null))
    out.enum = [...out.enum, null];
  return out as T;
}

/** The route groups, in the order the reference lists them. */
const TAGS = [
  {
    name: 'flags',
    description:
      "An environment's flags. The flag model and how it is evaluated: [evaluation.md](evaluation.md).",
  },
  {
    name: 'kill switch',
    description:
      'Kill serves the `offVariant` to everyone at once; revive restores exactly what was served before. ' +
      'Neither takes a version: an on-call kill never loses to a concurrent edit.',
  },
  {
    name: 'schedules',
    description:
      'Progressive rollouts the guardian moves step by step while the flag stays healthy: [guardian.md](guardian.md#progressive-schedules).',
  },
  { name: 'segments', description: 'Reusable sets of contexts that `inSegment` clauses name.' },
  {
    name: 'evaluation',
    description: 'Server-side evaluation for callers without an SDK, with the same evaluator the SDKs use.',
  },
  {
    name: 'guardian',
    description: "The guardian's verdict on a flag, shaped for deployment gates (Argo Rollouts, Flagger).",
  },
  {
    name: 'incidents',
    description:
      'Incidents the guardian opened: read, acknowledge, resolve, postmortem draft ([guardian.md](guardian.md#incidents)).',
  },
  { name: 'audit', description: 'Every configuration write: who, when, before and after, why.' },
  { name: 'tokens', description: 'API tokens and SDK keys. Secrets are shown once and stored as SHA-256.' },
  {
    name: 'backup',
    description:
      "A consistent copy of the embedded store's database while the server serves ([operations.md](operations.md#backups)).",
  },
  {
    name: 'sdk',
    description:
      'What SDKs call, with an SDK key bound to one environment. The stream protocol: [wire-protocol.md](wire-protocol.md).',
  },
  { name: 'operations', description: 'Probes and metrics for load balancers and Prometheus; no token.' },
  {
    name: 'console',
    description:
      'The ops console at `/` ([console.md](console.md)): sign-in to a session cookie, environments, a live event feed.',
  },
];

/** What each error code the REST API sends means (`VIGIL_SERVER_CONFIG`, `VIGIL_DATA_DIR_LOCKED` and `VIGIL_DATA_DIR_DAMAGED` only stop start-up). */
export const ERROR_MEANINGS = {
  VIGIL_BAD_REQUEST:
    'A path parameter, query parameter, header or body field is malformed, or the body is not JSON.',
  VIGIL_INVALID_CONFIG: 'A flag, segment or schedule refused at write time.',
  VIGIL_UNAUTHORIZED: 'No token, or an unknown one.',
  VIGIL_FORBIDDEN:
    "The token holds no scope the route accepts, or is bound to an environment other than the route's.",
  VIGIL_CSRF:
    'A write authenticated by a console session cookie without its `X-Vigil-CSRF` token, or from another origin (`Origin`, `Sec-Fetch-Site`).',
  VIGIL_NOT_FOUND: 'No such flag, segment, schedule, incident, token or route.',
  VIGIL_ALREADY_EXISTS: 'A flag with this key exists.',
  VIGIL_IN_USE:
    'The target is still referenced: a flag other flags require, a segment a rule uses, the last admin token.',
  VIGIL_INVALID_STATE:
    "The target's state does not allow the request, e.g. scheduling a killed flag or pausing a finished schedule.",
  VIGIL_VERSION_CONFLICT:
    '`If-Match` does not hold: the target changed since it was read (or, with `If-Match: *`, does not exist).',
  VIGIL_PRECONDITION_REQUIRED: 'Reserved: no route requires `If-Match` yet.',
  VIGIL_PAYLOAD_TOO_LARGE: 'The body is larger than the `bodyLimit` setting (1 MiB by default).',
  VIGIL_HEADERS_TOO_LARGE:
    "The request's headers exceed what the server reads (16 KiB); the connection is closed.",
  VIGIL_REQUEST_TIMEOUT: 'The request did not arrive in time; the connection is closed.',
  VIGIL_UNSUPPORTED_MEDIA_TYPE:
    'A body of a content type the server does not parse; send `application/json`.',
  VIGIL_RATE_LIMITED: 'Over the rate limit; `details.retryAfterMs` says when to try again.',
  VIGIL_INTERNAL: 'A bug: the message is generic, the cause is in the server log.',
  VIGIL_STORE_UNAVAILABLE:
    'The store (Redis) cannot be reached; a write answered this was not applied. Try again later.',
  VIGIL_WRITE_OUTCOME_UNKNOWN:
    'A write reached the store but its reply did not come back: it may or may not be applied. Retry it with the same `Idempotency-Key` to learn which.',
  VIGIL_IDEMPOTENCY_KEY_REUSED:
    'The `Idempotency-Key` was already used for a different request (another route, target, body or `If-Match`); use a new key.',
} as const satisfies Record<
  Exclude<ErrorCode, 'VIGIL_SERVER_CONFIG' | 'VIGIL_DATA_DIR_LOCKED' | 'VIGIL_DATA_DIR_DAMAGED'>,
  string
>;

type RestErrorCode = keyof typeof ERROR_MEANINGS;

/** An error a route may answer: its code, optionally with what it means on this route. */
export type ErrorDoc = RestErrorCode | readonly [code: RestErrorCode, when: string];

/** The errors of every route that needs a token. */
export const AUTH_ERRORS = ['VIGIL_UNAUTHORIZED', 'VIGIL_FORBIDDEN'] as const satisfies ErrorDoc[];

/**
 * The error responses a route may give, for documentation: one response per status, describing each
 * code it can carry (by default with its general meaning, or with the `when` given).
 */
export function errors(...docs: ErrorDoc[]): Record<number, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const entry of docs) {
    const [code, when] = typeof entry === 'string' ? [entry, ERROR_MEANINGS[entry]] : entry;
    const status = ERRORS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), `\`${code}\`: ${when}`]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, lines]) => [status, { description: lines.join(' '), ...ref('Error') }]),
  );
}

/** A success response: what it means, its body (a JSON Schema) and the headers it sets. */
export function reply(
  description: string,
  body?: Record<string, unknown>,
  headers?: Record<string, { type: string; description: string }>,
): Record<string, unknown> {
  return { ...(body ?? { type: 'null' }), description, ...(headers ? { headers } : {}) };
}

/** Response header `ETag`, holding a version or revision. */
export const etagHeader = (what: string) => ({
  etag: { type: 'string', description: `${what} as an entity tag, e.g. \`"42"\`` },
});

/** Request headers a route reads, documented once. */
const REQUEST_HEADERS = {
  'if-match': {
    type: 'string',
    description:
      '`"<version>"` (also `<version>` or `W/"<version>"`): write only if the stored version is this one, ' +
      'else 412; `*`: only if the target exists',
  },
  'if-none-match': {
    type: 'string',
    description: '`"<version>"` (a list, or `*`): answer 304 with no body while the version is unchanged',
  },
  'x-vigil-reason': {
    type: 'string',
    maxLength: 2048,
    description: 'Why the write is made; recorded in the audit log',
  },
  'idempotency-key': {
    type: 'string',
    minLength: 1,
    maxLength: 255,
    description:
      'Makes a retry safe (1 to 255 visible ASCII characters, e.g. a UUID): a repeat within 24 h answers ' +
      'the first response without writing again; the same key with another request is refused with 422',
  },
} as const;

/** A route's request headers, for documentation (Fastify does not validate them: see below). */
export function requestHeaders(...names: (keyof typeof REQUEST_HEADERS)[]): Record<string, unknown> {
  return {
    type: 'object',
    properties: Object.fromEntries(names.map((name) => [name, REQUEST_HEADERS[name]])),
  };
}

/** Who may call a route, as OpenAPI extensions the reference renders: access level, scopes, bound tokens. */
function accessExtensions(access: Access, url: string): Record<string, unknown> {
  const bound = access === 'sdk' ? 'key-env' : url.includes(':env') ? 'own-env' : 'refused';
  return { 'x-vigil-access': access, 'x-vigil-scopes': [...ACCESS[access]], 'x-vigil-bound-tokens': bound };
}

/**
 * Adds each route's security and access extensions from its `config.access` (or, for routes that
 * check the token themselves, the `x-vigil-access` in their schema): the one place that says who may
 * call a route is the route's own access level.
 */
function transform({
  schema,
  url,
  route,
}: {
  schema: FastifySchema;
  url: string;
  route: { config?: unknown; websocket?: boolean };
}): { schema: FastifySchema; url: string } {
  if (!schema) return { schema, url };
  // @fastify/websocket hides its routes; the SDK stream is documented as the GET that upgrades.
  const own = (route.websocket ? { ...schema, hide: false } : schema) as Record<string, unknown>;
  const access = ((route.config as { access?: Access } | undefined)?.access ?? own['x-vigil-access']) as
    | Access
    | undefined;
  const security =
    access === undefined ? [] : access === 'sdk' ? [{ bearer: [] }, { sdkKey: [] }] : [{ bearer: [] }];
  const extended = {
    ...own,
    security: own.security ?? security,
    ...(access === undefined ? {} : accessExtensions(access, url)),
    ...(own['x-vigil-bound-tokens'] === undefined
      ? {}
      : { 'x-vigil-bound-tokens': own['x-vigil-bound-tokens'] }),
  };
  return { schema: extended as FastifySchema, url };
}

/** The API's general rules, shown before the operations. */
function overview(): string {
  const scopes = (Object.entries(ACCESS) as [Access, readonly string[]][])
    .map(([access, list]) => `| \`${access}\` | ${list.map((s) => `\`${s}\``).join(', ')} |`)
    .join('\n');
  const codes = (Object.entries(ERROR_MEANINGS) as [RestErrorCode, string][])
    .map(([code, meaning]) => `| \`${code}\` | ${ERRORS[code]} | ${meaning} |`)
    .join('\n');
  return `Admin REST under \`/api/v1\`, SDK endpoints under \`/v1\`, operations endpoints at the root, and this
document at \`/openapi.json\`. Request and response bodies are JSON unless an operation says otherwise.

## Authentication

Every operation except the operations endpoints needs a token, sent as \`Authorization: Bearer <token>\`.
Tokens are \`vgl_…\` secrets created with \`POST /api/v1/tokens\`; the secret is shown once and the
store keeps its SHA-256. The SDK endpoints also take the key as \`?key=<key>\` (browsers). A missing or
unknown token is answered 401 \`VIGIL_UNAUTHORIZED\` with \`WWW-Authenticate: Bearer realm="vigil"\`; a
token that holds none of the scopes an operation accepts, 403 \`VIGIL_FORBIDDEN\`.

The console signs in with \`POST /api/v1/session\`, which exchanges a token for the \`vigil_session\`
cookie (HttpOnly, SameSite=Strict, Secure over TLS). Every \`/api/v1\` operation accepts that cookie in
place of \`Authorization\`, with the token's scopes. A request made with the cookie that is not a GET or
HEAD must carry \`X-Vigil-CSRF: <csrfToken>\` (from the session) and, when the browser sends \`Origin\` or
\`Sec-Fetch-Site\`, come from the same origin: else 403 \`VIGIL_CSRF\`. Bearer requests need neither.

Each operation has an access level; these scopes grant it:

| access | scopes |
| ------ | ------ |
${scopes}

A token may be bound to one environment (\`env\` when it is created; SDK keys always are). It may call
the operations under \`/api/v1/envs/{env}\` of that environment only, and none of those without an
environment (\`/api/v1/tokens\`, \`/api/v1/incidents\`): 403 otherwise. An SDK key holds exactly one of
\`sdk-server\` (every flag) and \`sdk-client\` (only \`clientSide\` flags, and the segments they use).

## Errors

Every error is \`{ "error": { "code": "VIGIL_…", "message": "…", "details": … } }\` with a stable code.
A 400 lists every bad field in \`details\` as \`[{ "field", "message" }]\`: path parameters as
\`path.<name>\`, query parameters as \`query.<name>\`, headers as \`header.<name>\`, body fields by their
path (\`rules[0].clauses[1].values\`).

| code | status | meaning |
| ---- | ------ | ------- |
${codes}

Besides the errors listed per operation, any operation may answer 413 (a body over \`bodyLimit\`), 415
(a body of a content type the server does not parse), 429 (rate limited, below), 500 \`VIGIL_INTERNAL\`,
and 503 \`VIGIL_STORE_UNAVAILABLE\` when it must ask the store about a token the server has not cached.

## Versions, revisions and conditional requests

Each environment has a \`revision\`, raised by every write. Each flag and segment carries the revision of
its last change as its \`version\`, set by the server (a \`version\` in a request body is ignored).
\`ETag\` holds a version (one flag or segment) or a revision (the flag list, \`GET /v1/flags\`). A flag
write (\`PUT\`, \`DELETE\`, schedule \`PUT\`) or segment \`PUT\` with \`If-Match: "<version>"\` is refused
with 412 \`VIGIL_VERSION_CONFLICT\` when the target changed since it was read; the store checks it in
the same atomic step as the write. Kill and revive take no \`If-Match\`.

## Audit reasons

Configuration writes accept \`X-Vigil-Reason: <why>\` (at most 2048 characters), recorded with the
write in the audit log. Kill and revive take their reason in the body; the schedule actions take an
optional \`reason\` in the body, which wins over the header.

## Idempotency and write outcomes

Every write takes an \`Idempotency-Key: <1–255 visible ASCII characters>\` header (a UUID). The key is
recorded with the write in the same atomic step, per token, for 24 h: a repeat with the same request
(method, route, path parameters, \`If-Match\`, \`X-Vigil-Reason\`, body) writes nothing and answers the
first response; a repeat with another request answers 422 \`VIGIL_IDEMPOTENCY_KEY_REUSED\`; a request
racing one with the same key answers the first one's response. Only successful writes are recorded.
A write answered 503 \`VIGIL_STORE_UNAVAILABLE\` was not applied; one answered 503
\`VIGIL_WRITE_OUTCOME_UNKNOWN\` reached the store and may have been: retry it with the same key.

## Rate limits

Each kind of traffic has a budget of its own per \`rateLimitWindowMs\` (a minute), so none can spend
another's, and none can delay a kill:

| budget | routes | per | default |
| --- | --- | --- | --- |
| kill | \`POST …/flags/{key}/kill\` and \`…/revive\`, together | token | 6000 (\`killRateLimitMax\`) |
| evaluate | \`POST /api/v1/envs/{env}/evaluate\` | token | 60000 (\`evaluateRateLimitMax\`) |
| sdk | \`GET /v1/flags\`, OFREP (\`/ofrep/…\`) | SDK key and client IP | 60000 (\`sdkRateLimitMax\`) |
| metrics | \`POST /v1/metrics\` | SDK key and client IP | 6000 (\`metricsRateLimitMax\`) |
| admin | the rest of \`/api/v1\` | token | 600 (\`rateLimitMax\`) |

A request without a valid token counts per client IP in its route's budget (so guessing tokens is
limited) and spends no token's budget. \`rateLimitMax: 0\` turns every limit off. Past a budget,
requests answer 429 \`VIGIL_RATE_LIMITED\` with \`details: { budget, max, retryAfterMs }\` and a
\`retry-after\` header. Streams and the operations endpoints are not limited.`;
}

/**
 * Registers @fastify/swagger and the component schemas. Route schemas document the API only: requests
 * are validated by zod in the handlers (one 400 naming every bad field), so Fastify's own validation and
 * response serialization are turned off.
 */
export async function setupOpenApi(app: FastifyInstance): Promise<void> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `${id}#`,
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Vigil flag server', version: '1', description: overview() },
      tags: TAGS,
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'A Vigil token or SDK key, vgl_…' },
          sdkKey: { type: 'apiKey', in: 'query', name: 'key', description: 'An SDK key in ?key= (browsers)' },
        },
      },
    },
    transform,
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`).replace(/#$/, ''),
    },
  });
  for (const [id, from, optional] of DERIVED) {
    const { required = [], ...base } = schemas[from] as (typeof schemas)[string] & { required?: string[] };
    const left = required.filter((f) => !(optional as readonly string[]).includes(f));
    // OpenAPI 3.0: `required`, when present, lists at least one property.
    schemas[id] = {
      ...base,
      description: `A ${from} as the body of a PUT to its URL: \`key\` may be left out (the path names it).`,
      ...(left.length > 0 ? { required: left } : {}),
    };
  }
  for (const [id, schema] of Object.entries(schemas)) app.addSchema({ ...nullableEnums(schema), $id: id });
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
