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
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

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

export type Component = keyof typeof COMPONENTS;

/** A reference to a component schema. */
export const ref = (name: Component) => ({ $ref: `${name}#` });

/** A small zod schema (no shared parts) as an inline JSON Schema for route documentation. */
export function doc(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
}

/** The error responses a route may give, for documentation. */
export function errors(...statuses: number[]): Record<number, unknown> {
  return Object.fromEntries(statuses.map((s) => [s, { description: 'Error', ...ref('Error') }]));
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
      info: {
        title: 'Vigil flag server',
        version: '1',
        description:
          'Admin REST (/api/v1), SDK endpoints (/v1) and operations endpoints of the Vigil flag server.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A Vigil token, vgl_…' } },
      },
      security: [{ bearer: [] }],
    },
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`).replace(/#$/, ''),
    },
  });
  for (const [id, schema] of Object.entries(schemas)) app.addSchema({ ...schema, $id: id });
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
