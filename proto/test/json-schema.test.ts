import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { EXPORTS, exportJsonSchemas, SCHEMA_DIR } from '../scripts/export-json-schema.js';
import {
  auditEntrySchema,
  clientMessageSchema,
  cohortSummarySchema,
  contextSchema,
  errorBodySchema,
  errorMessageSchema,
  type FlagInput,
  flagSchema,
  helloMessageSchema,
  incidentSchema,
  metricsBatchSchema,
  OPERATORS,
  patchMessageSchema,
  segmentSchema,
  serverMessageSchema,
  snapshotMessageSchema,
  tokenInfoSchema,
} from '../src/index.js';

type Schema = { [keyword: string]: unknown };

// Keywords that only annotate; they never make a document invalid.
const ANNOTATIONS = new Set(['$schema', '$defs', 'title', 'description', 'default', 'format']);
const ASSERTIONS = new Set([
  '$ref',
  'type',
  'const',
  'enum',
  'anyOf',
  'oneOf',
  'properties',
  'required',
  'additionalProperties',
  'propertyNames',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
]);

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function fitsType(value: unknown, type: string): boolean {
  if (type === 'integer') return Number.isInteger(value);
  return typeOf(value) === type;
}

/**
 * A small JSON Schema (2020-12) checker for exactly the keywords the export uses; it throws on any
 * other keyword, so a new zod feature cannot be silently skipped. Returns the paths that fail.
 */
function check(schema: Schema, value: unknown, root: Schema = schema, at = '$'): string[] {
  for (const keyword of Object.keys(schema)) {
    if (!ANNOTATIONS.has(keyword) && !ASSERTIONS.has(keyword))
      throw new Error(`unsupported keyword ${keyword} at ${at}`);
  }
  const errors: string[] = [];
  const fail = (why: string) => errors.push(`${at}: ${why}`);
  if (typeof schema.$ref === 'string') {
    const name = /^#\/\$defs\/(.+)$/.exec(schema.$ref)?.[1];
    const target =
      name === undefined ? undefined : (root.$defs as Record<string, Schema> | undefined)?.[name];
    if (!target) throw new Error(`unresolvable $ref ${schema.$ref}`);
    errors.push(...check(target, value, root, at));
  }
  if (typeof schema.type === 'string' && !fitsType(value, schema.type)) return [`${at}: not ${schema.type}`];
  if ('const' in schema && value !== schema.const) fail(`not ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) fail('not in enum');
  if (
    Array.isArray(schema.anyOf) &&
    !schema.anyOf.some((s: Schema) => check(s, value, root, at).length === 0)
  ) {
    fail('matches no anyOf branch');
  }
  if (Array.isArray(schema.oneOf)) {
    const matching = schema.oneOf.filter((s: Schema) => check(s, value, root, at).length === 0).length;
    if (matching !== 1) fail(`matches ${matching} oneOf branches`);
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof schema.minLength === 'number' && length < schema.minLength) fail('too short');
    if (typeof schema.maxLength === 'number' && length > schema.maxLength) fail('too long');
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) fail('pattern');
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) fail('below minimum');
    if (typeof schema.maximum === 'number' && value > schema.maximum) fail('above maximum');
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum)
      fail('not above exclusiveMinimum');
    if (typeof schema.exclusiveMaximum === 'number' && value >= schema.exclusiveMaximum)
      fail('not below exclusiveMaximum');
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) fail('too few items');
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) fail('too many items');
    const prefix = (schema.prefixItems as Schema[] | undefined) ?? [];
    value.forEach((item, i) => {
      const itemSchema = prefix[i] ?? (schema.items as Schema | undefined);
      if (itemSchema) errors.push(...check(itemSchema, item, root, `${at}[${i}]`));
    });
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties as Record<string, Schema> | undefined) ?? {};
    for (const name of (schema.required as string[] | undefined) ?? [])
      if (!(name in object)) fail(`missing ${name}`);
    for (const [name, item] of Object.entries(object)) {
      const path = `${at}.${name}`;
      if (schema.propertyNames)
        errors.push(...check(schema.propertyNames as Schema, name, root, `${path} (name)`));
      if (name in properties) errors.push(...check(properties[name]!, item, root, path));
      else if (schema.additionalProperties === false) errors.push(`${path}: not allowed`);
      else if (typeof schema.additionalProperties === 'object') {
        errors.push(...check(schema.additionalProperties as Schema, item, root, path));
      }
    }
  }
  return errors;
}

const committed = (file: string) => JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as Schema;
const flagDocument = committed('flag.schema.json');

/** Accepted by the JSON Schema document. */
const valid = (document: Schema, value: unknown) => check(document, value);

describe('the committed JSON Schema files', () => {
  it('equal a fresh export (run `pnpm --filter @vigil/proto schema` after changing a zod schema)', () => {
    const fresh = exportJsonSchemas();
    const onDisk = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json'));
    expect(onDisk.sort()).toEqual(Object.keys(fresh).sort());
    for (const [file, text] of Object.entries(fresh)) {
      expect(readFileSync(join(SCHEMA_DIR, file), 'utf8'), file).toBe(text);
    }
  });

  it('cover the flag, segment, context, wire messages, metrics, incident, error body, token and audit entry', () => {
    expect(Object.keys(EXPORTS).sort()).toEqual(
      [
        'audit-entry',
        'client-message',
        'cohort-summary',
        'context',
        'error-body',
        'error-message',
        'flag-health',
        'flag',
        'hello-message',
        'incident',
        'metrics-batch',
        'patch-message',
        'segment',
        'server-message',
        'snapshot-message',
        'token-info',
        'verdict',
      ].map((name) => `${name}.schema.json`),
    );
  });

  it('are draft 2020-12 documents with a title, using only keywords the checker understands', () => {
    for (const file of Object.keys(EXPORTS)) {
      const document = committed(file);
      expect(document.$schema, file).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(document.title, file).toEqual(expect.any(String));
      expect(document.$ref, `${file}: the root is inlined, not a $ref`).toBeUndefined();
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (typeof node === 'object' && node !== null) {
          for (const [keyword, child] of Object.entries(node)) {
            expect(ANNOTATIONS.has(keyword) || ASSERTIONS.has(keyword), `${file}: ${keyword}`).toBe(true);
            if (keyword === 'properties' || keyword === '$defs') Object.values(child as object).forEach(walk);
            else if (!['const', 'enum', 'default', 'required'].includes(keyword)) walk(child);
          }
        }
      };
      walk(document);
    }
  });
});

describe('the flag document', () => {
  const minimal = {
    key: 'new-checkout',
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'off' },
  } satisfies FlagInput;

  const full = {
    ...minimal,
    description: 'Checkout v2',
    tags: ['payments'],
    owner: 'payments',
    killed: true,
    killedAt: '2025-03-01T10:00:00Z',
    killedBy: 'guardian',
    killReason: 'error rate 4.1% vs 0.3%',
    rules: [
      {
        id: 'sea',
        clauses: [
          { attribute: 'country', op: 'in', values: ['TH', 'SG', 'MY'] },
          { attribute: 'device.os', op: 'exists', values: [], negate: true },
        ],
        serve: {
          rollout: {
            bucketBy: 'org.id',
            exposure: 50_000,
            weights: [
              { variant: 'on', weight: 20_000 },
              { variant: 'off', weight: 80_000 },
            ],
          },
        },
      },
    ],
    prerequisites: [{ flag: 'payments-v2', variant: 'on' }],
    salt: 'checkout',
    clientSide: true,
    version: 12,
    schedule: { variant: 'on', steps: [{ percent: 5, hold: '30m' }], status: 'running', stepIndex: 0 },
    guard: { severity: 'sev1', maxErrorRate: 0.02, minSamples: 200 },
    createdAt: '2025-01-01T00:00:00Z',
  } satisfies FlagInput;

  it('requires exactly the fields a writer must give, and closes the object', () => {
    expect(flagDocument.required).toEqual(['key', 'variants', 'offVariant', 'enabled', 'fallthrough']);
    expect(flagDocument.additionalProperties).toBe(false);
  });

  it('lists every operator', () => {
    const defs = flagDocument.$defs as Record<string, Schema>;
    const op = (defs.Clause!.properties as Record<string, Schema>).op!;
    expect(op.enum).toEqual([...OPERATORS]);
  });

  it('accepts sample valid flags, minimal and full, as zod does', () => {
    for (const flag of [minimal, full]) {
      expect(flagSchema.safeParse(flag).success).toBe(true);
      expect(valid(flagDocument, flag)).toEqual([]);
    }
  });

  it('refuses what the zod schema refuses', () => {
    const bad: [string, unknown][] = [
      [
        'unknown operator',
        { ...full, rules: [{ ...full.rules[0], clauses: [{ attribute: 'a', op: 'like', values: [] }] }] },
      ],
      ['unknown field', { ...minimal, colour: 'red' }],
      ['bad key', { ...minimal, key: '-x' }],
      ['missing fallthrough', { ...minimal, fallthrough: undefined }],
      [
        'weight above 100000',
        { ...minimal, fallthrough: { rollout: { weights: [{ variant: 'on', weight: 100_001 }] } } },
      ],
      [
        'serve with variant and rollout',
        { ...minimal, fallthrough: { variant: 'on', rollout: { weights: [] } } },
      ],
      ['null variant value', { ...minimal, variants: [{ key: 'on', value: null }] }],
      ['no variants', { ...minimal, variants: [] }],
      ['fractional version', { ...minimal, version: 1.5 }],
      ['timestamp without zone', { ...minimal, killedAt: '2025-03-01T10:00:00' }],
    ];
    for (const [why, flag] of bad) {
      const input = JSON.parse(JSON.stringify(flag));
      expect(flagSchema.safeParse(input).success, why).toBe(false);
      expect(valid(flagDocument, input).length, why).toBeGreaterThan(0);
    }
  });

  it('agrees with zod on generated flags, valid and not', () => {
    // mostly valid parts, each sometimes broken, so both answers come up often
    const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
      fc.oneof({ arbitrary: good, weight: 60 }, { arbitrary: bad, weight: 1 });
    const key = mostly(
      fc.stringMatching(/^[A-Za-z0-9][\w.-]{0,8}$/),
      fc.constantFrom('', '-x', 'a b', 'ä', 'x'.repeat(129)),
    );
    const value = mostly(
      fc.oneof(
        fc.boolean(),
        fc.integer(),
        fc.string({ maxLength: 4 }),
        fc.array(fc.integer(), { maxLength: 2 }),
      ),
      fc.constant(null),
    );
    const weight = mostly(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(-1, 100_001, 0.5));
    const clause = fc.record(
      {
        attribute: mostly(fc.constantFrom('country', 'a.b', 'é.ü'), fc.constantFrom('a..b', '', '.x')),
        op: mostly(fc.constantFrom(...OPERATORS), fc.constantFrom('like', 'IN')),
        values: fc.array(
          mostly(fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.boolean()), fc.constant(null)),
          {
            maxLength: 3,
          },
        ),
        negate: fc.boolean(),
      },
      { requiredKeys: ['attribute', 'op', 'values'] },
    );
    const serve = mostly(
      fc.oneof(
        fc.record({ variant: key }),
        fc.record({
          rollout: fc.record(
            {
              weights: fc.array(fc.record({ variant: key, weight }), { minLength: 1, maxLength: 3 }),
              exposure: weight,
              bucketBy: fc.constantFrom('key', 'org.id'),
            },
            { requiredKeys: ['weights'] },
          ),
        }),
      ),
      fc.constantFrom({}, { variant: 'on', rollout: { weights: [] } }, { rollout: { weights: [] } }),
    );
    const flag = fc.record(
      {
        key,
        variants: fc.array(fc.record({ key, value }), { minLength: 1, maxLength: 3 }),
        offVariant: key,
        enabled: mostly(fc.boolean(), fc.constant('yes')),
        killed: fc.boolean(),
        rules: fc.array(fc.record({ id: key, clauses: fc.array(clause, { maxLength: 2 }), serve }), {
          maxLength: 2,
        }),
        fallthrough: serve,
        prerequisites: fc.array(fc.record({ flag: key, variant: key }), { maxLength: 2 }),
        version: mostly(fc.nat(), fc.constantFrom(-1, 0.5)),
        killedAt: mostly(
          fc.constantFrom('2025-01-01T00:00:00Z', '2024-02-29T23:59:59.123Z'),
          fc.constantFrom('2025-01-01', 'soon'),
        ),
        tags: fc.array(mostly(fc.string({ minLength: 1, maxLength: 3 }), fc.constant('')), { maxLength: 2 }),
      },
      { requiredKeys: ['key', 'variants', 'offVariant', 'enabled', 'fallthrough'] },
    );
    // now and then a required field missing or an unknown one added
    const change = mostly(fc.constant(null), fc.constantFrom('key', 'variants', 'fallthrough', 'colour'));
    const maybeIncomplete = fc.tuple(flag, change);
    let accepted = 0;
    fc.assert(
      fc.property(maybeIncomplete, ([input, drop]) => {
        if (drop === 'colour') Object.assign(input, { colour: 'red' });
        else if (drop !== null) delete (input as Record<string, unknown>)[drop];
        const byZod = flagSchema.safeParse(input).success;
        if (byZod) accepted++;
        expect(valid(flagDocument, input).length === 0).toBe(byZod);
      }),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(150);
    expect(accepted).toBeLessThan(1350);
  });
});

describe('the other documents', () => {
  const flag = flagSchema.parse({
    key: 'f',
    variants: [{ key: 'on', value: { theme: 'dark', sizes: [1, 2] } }],
    offVariant: 'on',
    enabled: true,
    fallthrough: { variant: 'on' },
    guard: {},
    schedule: { variant: 'on', steps: [{ percent: 10, hold: 60 }] },
  });
  const segment = segmentSchema.parse({ key: 'beta', included: ['alice'] });
  const summary = {
    env: 'production',
    flag: 'f',
    variant: 'on',
    version: 3,
    windowStart: '2025-03-01T10:00:00Z',
    windowEnd: '2025-03-01T10:00:10Z',
    requests: 120,
    errors: 2,
    latency: {
      alpha: 0.01,
      zero: 0,
      bins: [
        [120, 100],
        [150, 20],
      ],
      count: 120,
      sum: 4200.5,
      min: 3,
      max: 180,
    },
  };
  const samples: [string, z.ZodType, unknown][] = [
    [
      'segment.schema.json',
      segmentSchema,
      { key: 'beta', rules: [[{ attribute: 'plan', op: 'in', values: ['pro'] }]] },
    ],
    [
      'context.schema.json',
      contextSchema,
      { key: 'user-1', country: 'TH', device: { os: 'iOS', beta: null }, groups: [1, 'a'] },
    ],
    [
      'hello-message.schema.json',
      helloMessageSchema,
      { type: 'hello', sdk: 'vigil-node/0.1.0', revision: 4 },
    ],
    ['client-message.schema.json', clientMessageSchema, { type: 'ping', at: 1 }],
    [
      'snapshot-message.schema.json',
      snapshotMessageSchema,
      { type: 'snapshot', revision: 5, flags: [flag], segments: [segment] },
    ],
    [
      'patch-message.schema.json',
      patchMessageSchema,
      { type: 'patch', revision: 6, flags: [flag], segments: [], deleted: { flags: ['old'], segments: [] } },
    ],
    [
      'error-message.schema.json',
      errorMessageSchema,
      { type: 'error', code: 'VIGIL_BAD_KEY', message: 'unknown SDK key' },
    ],
    [
      'server-message.schema.json',
      serverMessageSchema,
      { type: 'snapshot', revision: 5, flags: [flag], segments: [segment] },
    ],
    ['cohort-summary.schema.json', cohortSummarySchema, summary],
    ['metrics-batch.schema.json', metricsBatchSchema, { sdk: 'vigil-node', summaries: [summary] }],
    [
      'incident.schema.json',
      incidentSchema,
      {
        id: 'inc-1',
        env: 'production',
        flag: 'f',
        flagVersion: 3,
        severity: 'sev2',
        status: 'open',
        title: 'f raised errors',
        summary: 'error rate 5% vs 0.2%',
        killed: true,
        cohorts: [{ variant: 'on', requests: 100, errors: 5, errorRate: 0.05, p99LatencyMs: null }],
        detectedAt: '2025-03-01T10:00:20Z',
        timeline: [{ at: '2025-03-01T10:00:20Z', kind: 'kill', message: 'killed', data: { by: 'guardian' } }],
      },
    ],
    [
      'error-body.schema.json',
      errorBodySchema,
      { error: { code: 'VIGIL_INVALID_FLAG', message: 'bad', details: [{ field: 'key' }] } },
    ],
    [
      'token-info.schema.json',
      tokenInfoSchema,
      { id: 't1', name: 'ci', scopes: ['sdk-server'], env: 'production', createdAt: '2025-01-01T00:00:00Z' },
    ],
    [
      'audit-entry.schema.json',
      auditEntrySchema,
      {
        id: 'a1',
        env: 'production',
        at: '2025-01-01T00:00:00Z',
        actor: 'guardian',
        action: 'flag.kill',
        target: 'f',
        revision: 9,
      },
    ],
  ];

  it('accept a sample that zod accepts, and refuse it with an unknown field', () => {
    for (const [file, schema, sample] of samples) {
      const document = committed(file);
      expect(schema.safeParse(sample).success, file).toBe(true);
      expect(valid(document, JSON.parse(JSON.stringify(sample))), file).toEqual([]);
      if (file !== 'context.schema.json') {
        expect(valid(document, { ...(sample as object), unexpected: 1 }).length, file).toBeGreaterThan(0);
      }
    }
  });

  it('describe what the server sends with defaults applied, so a streamed flag must carry them', () => {
    const input = {
      key: 'f',
      variants: [{ key: 'on', value: true }],
      offVariant: 'on',
      enabled: true,
      fallthrough: { variant: 'on' },
    };
    expect(valid(flagDocument, input)).toEqual([]);
    const snapshot = committed('snapshot-message.schema.json');
    const errors = valid(snapshot, { type: 'snapshot', revision: 1, flags: [input], segments: [] });
    expect(errors).toEqual(
      expect.arrayContaining([
        '$.flags[0]: missing rules',
        '$.flags[0]: missing killed',
        '$.flags[0]: missing version',
      ]),
    );
    expect(
      valid(snapshot, { type: 'snapshot', revision: 1, flags: [flagSchema.parse(input)], segments: [] }),
    ).toEqual([]);
  });
});
