import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

// Checks every response a test server sends against the server's own `/openapi.json`: the status must
// be documented for the operation (or be one the overview documents for every operation), and a JSON
// body must match the schema documented for that status. OpenAPI 3.0.3 schemas are converted to JSON
// Schema for Ajv with 3.0.3's semantics (see `toJsonSchema`), so what the document says is what is held.

type Json = Record<string, unknown>;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** One response that contradicts the document. */
export interface Violation {
  operation: string;
  url: string;
  status: number;
  problem: string;
}

/** Statuses the document's overview says any operation may answer, with an Error body. */
const ANY_OPERATION = new Set([413, 415, 429, 500, 503]);

/** Schema keywords of OpenAPI 3.0 that are not JSON Schema (dropped after use). */
const OPENAPI_ONLY = new Set([
  'nullable',
  'discriminator',
  'readOnly',
  'writeOnly',
  'xml',
  'externalDocs',
  'example',
  'deprecated',
]);
/** Keywords whose value is data, not a schema: copied as they are. */
const DATA = new Set(['enum', 'const', 'default', 'examples', 'required', 'type', 'format', 'pattern']);
/** Keywords whose value maps names to schemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions', '$defs']);

const DOC_ID = 'vigil-openapi';

/**
 * An OpenAPI 3.0.3 Schema Object as JSON Schema. `nullable: true` adds `"null"` to `type` and does
 * nothing else: as 3.0.3 clarifies, other constraints keep their meaning, so an `enum` that does not
 * list `null` still refuses it. `exclusiveMinimum: true` becomes the JSON Schema number form.
 * `$ref`s into `#/components/schemas` point at the components, added to Ajv as `vigil-openapi`.
 */
export function toJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const source = schema as Json;
  const out: Json = {};
  for (const [key, value] of Object.entries(source)) {
    if (OPENAPI_ONLY.has(key) || key.startsWith('x-')) continue;
    if (DATA.has(key)) out[key] = value;
    else if (SCHEMA_MAPS.has(key) && value && typeof value === 'object')
      out[key] = Object.fromEntries(Object.entries(value).map(([name, s]) => [name, toJsonSchema(s)]));
    else if (key === '$ref' && typeof value === 'string')
      out[key] = value.replace(/^#\/components\/schemas\//, `${DOC_ID}#/definitions/`);
    else out[key] = toJsonSchema(value);
  }
  if (source.nullable === true && typeof source.type === 'string') out.type = [source.type, 'null'];
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (out[flag] === true) {
      out[flag] = out[bound];
      delete out[bound];
    } else if (out[flag] === false) delete out[flag];
  }
  return out;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Json };
}

interface Operation {
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

/** Validates a server's responses against its OpenAPI document and keeps what contradicts it. */
export class OpenApiConformance {
  readonly violations: Violation[] = [];
  private document: OpenApiDocument | undefined;
  private ajv: Ajv | undefined;
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly added = new Set<string>();
  /** `METHOD /path status` of every response checked, for tests that want every operation covered. */
  readonly seen = new Set<string>();

  /** `document`: check against this one instead of the server's own (to prove the check catches a lie). */
  constructor(private readonly given?: unknown) {}

  /** Checks every response `app` sends from now on (call before the app is ready). */
  watch(app: FastifyInstance): void {
    // Routes a test adds to the built server (to provoke a 500, say) are not the server's API.
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) this.added.add(`${method} ${route.url}`);
    });
    app.addHook('onSend', async (request, reply, payload) => {
      try {
        this.check(app, request, reply, payload);
      } catch (error) {
        this.violations.push({
          operation: `${request.method} ${request.routeOptions.url ?? request.url}`,
          url: request.url,
          status: reply.statusCode,
          problem: `the check itself failed: ${String(error)}`,
        });
      }
      return payload;
    });
  }

  /** The violations so far, removed from the list. */
  take(): Violation[] {
    return this.violations.splice(0);
  }

  private check(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, payload: unknown): void {
    const route = request.routeOptions;
    // No route matched (the not-found handler), or a route the document hides on purpose.
    if (route.url === undefined || (route.schema as { hide?: boolean } | undefined)?.hide) return;
    if (this.added.has(`${route.method} ${route.url}`)) return;
    const method = request.method === 'HEAD' ? 'get' : request.method.toLowerCase();
    const path = route.url.replace(/:(\w+)/g, '{$1}');
    const operation = `${method.toUpperCase()} ${path}`;
    const status = reply.statusCode;
    const violation = (problem: string) =>
      this.violations.push({ operation, url: request.url, status, problem });

    this.document ??= (this.given ?? app.swagger()) as unknown as OpenApiDocument;
    const op = this.document.paths[path]?.[method];
    if (!op) {
      violation('the operation is not in /openapi.json');
      return;
    }
    const documented =
      op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses.default;
    if (!documented && !ANY_OPERATION.has(status)) {
      violation(`status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`);
      return;
    }
    this.seen.add(`${operation} ${status}`);
    // A request the server accepted must be one the document allows.
    const requestSchema = op.requestBody?.content?.['application/json']?.schema;
    if (status < 300 && requestSchema !== undefined && request.body !== undefined) {
      const validateRequest = this.validator(`${operation} request`, requestSchema);
      if (!validateRequest(request.body)) {
        violation(`the server accepted a body the document refuses: ${describe(validateRequest)}`);
      }
    }
    const contentType = String(reply.getHeader('content-type') ?? '');
    if (request.method === 'HEAD' || !contentType.startsWith('application/json')) return;
    const schema = documented
      ? documented.content?.['application/json']?.schema
      : { $ref: '#/components/schemas/Error' };
    if (schema === undefined) {
      violation(`a JSON body where the document gives ${status} no JSON content`);
      return;
    }
    const text =
      typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
    if (text === undefined) return;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      violation('the body is not JSON although its content type says so');
      return;
    }
    const validate = this.validator(`${operation} ${documented ? status : 'any'}`, schema);
    if (!validate(body)) {
      violation(
        `the body does not match the documented schema: ${describe(validate)} — body ${text.slice(0, 300)}`,
      );
    }
  }

  private validator(key: string, schema: unknown): ValidateFunction {
    let validate = this.validators.get(key);
    if (!validate) {
      if (!this.ajv) {
        this.ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
        addFormats(this.ajv);
        const components = this.document?.components;
        const definitions = Object.fromEntries(
          Object.entries(components?.schemas ?? {}).map(([name, s]) => [name, toJsonSchema(s)]),
        );
        this.ajv.addSchema({ $id: DOC_ID, definitions });
      }
      validate = this.ajv.compile(toJsonSchema(schema) as Json);
      this.validators.set(key, validate);
    }
    return validate;
  }
}

function describe(validate: ValidateFunction): string {
  return (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
    .join('; ');
}
