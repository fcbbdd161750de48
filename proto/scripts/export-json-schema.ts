// Writes proto/schema/*.schema.json from the zod schemas, for writers and SDKs outside TypeScript.
// `pnpm --filter @vigil/proto schema` regenerates them; proto/test/json-schema.test.ts fails when the
// committed files differ from a fresh export.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  auditEntrySchema,
  clauseSchema,
  clientMessageSchema,
  cohortSummarySchema,
  contextSchema,
  errorBodySchema,
  errorMessageSchema,
  flagHealthSchema,
  flagSchema,
  guardSchema,
  helloMessageSchema,
  incidentSchema,
  jsonValueSchema,
  latencySketchSchema,
  metricsBatchSchema,
  patchMessageSchema,
  prerequisiteSchema,
  rolloutSchema,
  ruleSchema,
  scheduleSchema,
  segmentSchema,
  serverMessageSchema,
  serveSchema,
  snapshotMessageSchema,
  tokenInfoSchema,
  variantSchema,
  verdictSchema,
} from '../src/index.js';

/**
 * Which side of a schema a file describes. `input` is what a writer may send: fields with a default
 * are optional. `output` is what a reader receives: defaults are applied, so those fields are required.
 */
type Io = 'input' | 'output';

interface Export {
  title: string;
  description: string;
  schema: z.ZodType;
  io: Io;
}

/** Every exported document, by file name. */
export const EXPORTS: Record<string, Export> = {
  'flag.schema.json': {
    title: 'Flag',
    description: 'A flag as written through the admin API (fields with defaults may be omitted).',
    schema: flagSchema,
    io: 'input',
  },
  'segment.schema.json': {
    title: 'Segment',
    description: 'A segment as written through the admin API (fields with defaults may be omitted).',
    schema: segmentSchema,
    io: 'input',
  },
  'context.schema.json': {
    title: 'EvaluationContext',
    description:
      'An evaluation context: `key` and attributes addressed by dot paths (at most 64 KiB as JSON).',
    schema: contextSchema,
    io: 'input',
  },
  'hello-message.schema.json': {
    title: 'HelloMessage',
    description: 'Client → server, the first message on a stream.',
    schema: helloMessageSchema,
    io: 'input',
  },
  'snapshot-message.schema.json': {
    title: 'SnapshotMessage',
    description: 'Server → client: the whole environment, flags and segments with defaults applied.',
    schema: snapshotMessageSchema,
    io: 'output',
  },
  'patch-message.schema.json': {
    title: 'PatchMessage',
    description:
      'Server → client: flags and segments changed since a revision (defaults applied), keys deleted.',
    schema: patchMessageSchema,
    io: 'output',
  },
  'error-message.schema.json': {
    title: 'ErrorMessage',
    description: 'Server → client before it closes the stream.',
    schema: errorMessageSchema,
    io: 'output',
  },
  'server-message.schema.json': {
    title: 'ServerMessage',
    description: 'Any message the flag server sends on a stream.',
    schema: serverMessageSchema,
    io: 'output',
  },
  'client-message.schema.json': {
    title: 'ClientMessage',
    description: 'Any message an SDK sends on a stream.',
    schema: clientMessageSchema,
    io: 'input',
  },
  'cohort-summary.schema.json': {
    title: 'CohortSummary',
    description:
      'What one SDK saw of one cohort during one window (errors ≤ requests, windowEnd ≥ windowStart).',
    schema: cohortSummarySchema,
    io: 'input',
  },
  'metrics-batch.schema.json': {
    title: 'MetricsBatch',
    description: 'Body of POST /v1/metrics.',
    schema: metricsBatchSchema,
    io: 'input',
  },
  'incident.schema.json': {
    title: 'Incident',
    description: 'An incident the guardian opened.',
    schema: incidentSchema,
    io: 'output',
  },
  'verdict.schema.json': {
    title: 'Verdict',
    description: "The guardian's latest verdict on a flag version, as it stores it for the health endpoint.",
    schema: verdictSchema,
    io: 'output',
  },
  'flag-health.schema.json': {
    title: 'FlagHealth',
    description:
      'Body of GET /api/v1/envs/{env}/flags/{key}/health (Argo Rollouts web metric, Flagger gate).',
    schema: flagHealthSchema,
    io: 'output',
  },
  'error-body.schema.json': {
    title: 'ErrorBody',
    description: 'Every REST error response.',
    schema: errorBodySchema,
    io: 'output',
  },
  'token-info.schema.json': {
    title: 'TokenInfo',
    description: 'A token as listed (never its secret).',
    schema: tokenInfoSchema,
    io: 'output',
  },
  'audit-entry.schema.json': {
    title: 'AuditEntry',
    description: 'One entry of the audit log.',
    schema: auditEntrySchema,
    io: 'output',
  },
};

/** Shapes that recur inside the documents, emitted once under `$defs` with these names. */
const DEFINITIONS: [z.ZodType, string][] = [
  [jsonValueSchema, 'JsonValue'],
  [variantSchema, 'Variant'],
  [clauseSchema, 'Clause'],
  [rolloutSchema, 'Rollout'],
  [serveSchema, 'Serve'],
  [ruleSchema, 'Rule'],
  [prerequisiteSchema, 'Prerequisite'],
  [scheduleSchema, 'Schedule'],
  [guardSchema, 'Guard'],
  [flagSchema, 'Flag'],
  [segmentSchema, 'Segment'],
  [latencySketchSchema, 'LatencySketch'],
  [cohortSummarySchema, 'CohortSummary'],
];

/** One document: the schema at the root (never a `$ref` to itself), shared shapes under `$defs`. */
export function jsonSchemaOf({ title, description, schema, io }: Export): Record<string, unknown> {
  const names = z.registry<{ id: string }>();
  for (const [shape, id] of DEFINITIONS) if (shape !== schema) names.add(shape, { id });
  const { $schema, ...body } = z.toJSONSchema(schema, { io, metadata: names, unrepresentable: 'throw' });
  return { $schema, title, description, ...body };
}

/** Every document as the text written to disk. */
export function exportJsonSchemas(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [file, spec] of Object.entries(EXPORTS))
    out[file] = `${JSON.stringify(jsonSchemaOf(spec), null, 2)}\n`;
  return out;
}

/** The folder the documents live in. */
export const SCHEMA_DIR = fileURLToPath(new URL('../schema/', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(SCHEMA_DIR, { recursive: true });
  const files = exportJsonSchemas();
  // a schema dropped from EXPORTS must not linger as a stale file
  for (const file of readdirSync(SCHEMA_DIR)) {
    if (file.endsWith('.schema.json') && !(file in files)) rmSync(join(SCHEMA_DIR, file));
  }
  for (const [file, text] of Object.entries(files)) writeFileSync(join(SCHEMA_DIR, file), text);
  console.log(`wrote ${Object.keys(files).length} JSON Schemas to ${SCHEMA_DIR}`);
}
