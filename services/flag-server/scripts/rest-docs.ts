/**
 * Renders `docs/rest-api.md` from the OpenAPI document the flag server serves at `/openapi.json`.
 *
 *   pnpm docs:api            writes docs/rest-api.md
 *   pnpm docs:api --check    exits 1 when docs/rest-api.md differs from what would be written
 *
 * Everything the page says about an operation comes from the route schemas in `src/` (summaries,
 * descriptions, tags, parameters, bodies, responses, error codes) and from `src/openapi.ts` (the
 * overview, the tags, and each route's access level, taken from its `config.access`). To change the
 * page, change those and run the script; `test/rest-docs.test.ts` fails when the page is stale.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KEY_PATTERN } from '@vigil/proto';
import { buildServer } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { EmbeddedStore } from '../src/store/embedded.js';

/** Where the page lives. */
export const REST_DOCS_PATH = fileURLToPath(new URL('../../../docs/rest-api.md', import.meta.url));

/** The parts of a JSON Schema (OpenAPI 3.0 dialect) the page renders. */
export interface Schema {
  $ref?: string;
  type?: string;
  format?: string;
  pattern?: string;
  enum?: unknown[];
  nullable?: boolean;
  default?: unknown;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean | number;
  exclusiveMaximum?: boolean | number;
  minItems?: number;
  maxItems?: number;
}

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema?: Schema;
}

interface Response {
  description?: string;
  headers?: Record<string, { description?: string; schema?: Schema }>;
  content?: Record<string, { schema?: Schema }>;
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, Response>;
  security?: Record<string, string[]>[];
  'x-vigil-access'?: string;
  'x-vigil-scopes'?: string[];
  'x-vigil-bound-tokens'?: 'own-env' | 'refused' | 'key-env';
}

/** The parts of the OpenAPI document the page renders. */
export interface OpenApiDocument {
  info: { title: string; description?: string };
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
  components?: {
    schemas?: Record<string, Schema>;
    securitySchemes?: Record<string, { type: string; scheme?: string; in?: string; name?: string }>;
  };
}

/** The document a freshly built server (embedded store in a temp directory) serves at `/openapi.json`. */
export async function servedOpenApi(): Promise<OpenApiDocument> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-rest-docs-'));
  const store = new EmbeddedStore({ dataDir });
  try {
    await store.start();
    const app = await buildServer({
      config: parseConfig({ logLevel: 'silent' }),
      store,
      logger: createLogger('silent'),
    });
    try {
      const response = await app.inject({ method: 'GET', url: '/openapi.json' });
      if (response.statusCode !== 200) throw new Error(`GET /openapi.json answered ${response.statusCode}`);
      return response.json() as OpenApiDocument;
    } finally {
      await app.close();
    }
  } finally {
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
class Slugger {
  private readonly seen = new Map<string, number>();

  slug(heading: string): string {
    const base = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-');
    const count = this.seen.get(base) ?? 0;
    this.seen.set(base, count + 1);
    return count === 0 ? base : `${base}-${count}`;
  }
}

/** Text safe inside a table cell. */
const cell = (text: string) => text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');

const code = (text: string) => `\`${text}\``;

const sentence = (text: string) => (/[.!?]$/.test(text) ? text : `${text}.`);

/** Text from the document as Markdown: `<` outside code spans is escaped, so `<version>` is not taken for HTML. */
const prose = (text: string) =>
  text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/</g, '&lt;')))
    .join('');

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

const plural = (n: number, noun: string) => (n === 1 ? `one ${noun}` : `${n} ${noun}s`);

/** The component a `$ref` names. */
const refName = (ref: string) => ref.replace(/^#\/components\/schemas\//, '');

interface Context {
  /** Anchor of each component's heading. */
  schemaAnchors: Map<string, string>;
}

function link(ctx: Context, ref: string): string {
  const name = refName(ref);
  const anchor = ctx.schemaAnchors.get(name);
  return anchor === undefined ? code(name) : `[${name}](#${anchor})`;
}

/** A schema's type, briefly: `key`, `integer`, `string[]`, `[Flag](#flag)`, `boolean | string`. */
function typeOf(ctx: Context, schema: Schema): string {
  if (schema.$ref) return link(ctx, schema.$ref);
  const alternatives = schema.anyOf ?? schema.oneOf;
  let type: string;
  if (alternatives) {
    type = [...new Set(alternatives.map((s) => typeOf(ctx, s)))].join(' | ');
  } else if (schema.enum && schema.enum.length === 1 && schema.enum[0] === null) {
    return 'null';
  } else if (schema.type === 'array') {
    const item = schema.items ? typeOf(ctx, schema.items) : 'any';
    type = item.includes(' ') ? `(${item})[]` : `${item}[]`;
  } else if (schema.type === 'string' && schema.format === 'date-time') {
    type = 'date-time';
  } else if (schema.type === 'string' && schema.pattern === KEY_PATTERN.source) {
    type = 'key';
  } else if (
    schema.type === 'object' &&
    !schema.properties &&
    typeof schema.additionalProperties === 'object'
  ) {
    type = `object (string → ${typeOf(ctx, schema.additionalProperties)})`;
  } else {
    type = schema.type ?? 'any';
  }
  return schema.nullable ? `${type} | null` : type;
}

/** What a schema's keywords constrain, in words. */
function constraints(schema: Schema): string[] {
  const notes: string[] = [];
  if (schema.enum && !(schema.enum.length === 1 && schema.enum[0] === null)) {
    notes.push(`one of ${schema.enum.map((v) => code(JSON.stringify(v))).join(', ')}`);
  }
  const { minLength, maxLength, minItems, maxItems } = schema;
  if (minLength !== undefined && maxLength !== undefined) notes.push(`${minLength}–${maxLength} characters`);
  else if (maxLength !== undefined) notes.push(`at most ${maxLength} characters`);
  else if (minLength !== undefined && minLength > 0) notes.push(`at least ${plural(minLength, 'character')}`);
  if (minItems !== undefined && maxItems !== undefined) notes.push(`${minItems}–${maxItems} items`);
  else if (maxItems !== undefined) notes.push(`at most ${maxItems} items`);
  else if (minItems !== undefined && minItems > 0) notes.push(`at least ${plural(minItems, 'item')}`);
  const min = schema.minimum !== undefined && schema.minimum > -MAX_SAFE ? schema.minimum : undefined;
  const max = schema.maximum !== undefined && schema.maximum < MAX_SAFE ? schema.maximum : undefined;
  const above = schema.exclusiveMinimum === true ? '>' : '≥';
  const below = schema.exclusiveMaximum === true ? '<' : '≤';
  if (min !== undefined && max !== undefined && above === '≥' && below === '≤') notes.push(`${min}–${max}`);
  else {
    if (min !== undefined) notes.push(`${above} ${min}`);
    if (max !== undefined) notes.push(`${below} ${max}`);
  }
  if (schema.pattern && schema.format !== 'date-time' && schema.pattern !== KEY_PATTERN.source) {
    notes.push(`matches ${code(schema.pattern)}`);
  }
  const items = schema.type === 'array' ? schema.items : undefined;
  if (items && !items.$ref && !items.properties && items.type !== 'array') {
    const each = constraints(items);
    if (each.length > 0) notes.push(`each ${each.join(', ')}`);
  }
  if (schema.default !== undefined) notes.push(`default ${code(JSON.stringify(schema.default))}`);
  return notes;
}

/** A field's notes: its description, then its constraints. */
function notesOf(schema: Schema, extra: string[] = []): string {
  const parts = [...extra];
  if (schema.description) parts.push(sentence(prose(schema.description)));
  const limits = constraints(schema);
  if (limits.length > 0) parts.push(sentence(capitalize(limits.join('; '))));
  return parts.join(' ');
}

interface FieldRow {
  path: string;
  type: string;
  required: boolean;
  notes: string;
}

/** The object forms among a schema's alternatives (a serve is `{ variant }` or `{ rollout }`). */
function objectForms(schema: Schema): Schema[] | undefined {
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (!alternatives?.every((s) => s.type === 'object' && s.properties)) return undefined;
  return alternatives;
}

/** The element schema to descend into: an array's items (of items...), or the value itself. */
function element(schema: Schema): { schema: Schema; suffix: string } {
  let inner = schema;
  let suffix = '';
  while (inner.type === 'array' && inner.items) {
    inner = inner.items;
    suffix += '[]';
  }
  return { schema: inner, suffix };
}

/** Every field of an object schema, nested fields by path (`rules[].clauses[].op`). */
function fieldRows(ctx: Context, schema: Schema, prefix = '', form?: string): FieldRow[] {
  const rows: FieldRow[] = [];
  const required = new Set(schema.required ?? []);
  for (const [name, field] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${name}`;
    const extra = form ? [`In the ${form} form.`] : [];
    rows.push({ path, type: typeOf(ctx, field), required: required.has(name), notes: notesOf(field, extra) });
    const { schema: inner, suffix } = element(field);
    if (inner.$ref) continue;
    if (inner.type === 'object' && inner.properties) {
      rows.push(...fieldRows(ctx, inner, `${path}${suffix}.`));
    }
    const forms = objectForms(inner);
    for (const alternative of forms ?? []) {
      const name = `{ ${(alternative.required ?? Object.keys(alternative.properties ?? {})).join(', ')} }`;
      rows.push(...fieldRows(ctx, alternative, `${path}${suffix}.`, code(name)));
    }
  }
  return rows;
}

function fieldTable(rows: FieldRow[]): string[] {
  return [
    '| field | type | required | notes |',
    '| ----- | ---- | -------- | ----- |',
    ...rows.map(
      (r) => `| ${code(r.path)} | ${cell(r.type)} | ${r.required ? 'yes' : 'no'} | ${cell(r.notes)} |`,
    ),
  ];
}

/** A body in one line: a component link, or `{ field: type, ... }` for a small inline object. */
function bodyOf(ctx: Context, schema: Schema | undefined): string {
  if (!schema) return '—';
  if (schema.$ref) return link(ctx, schema.$ref);
  if (schema.type === 'object' && schema.properties) {
    const fields = Object.entries(schema.properties).map(([name, s]) => `${name}: ${typeOf(ctx, s)}`);
    return `{ ${fields.join(', ')} }`;
  }
  return typeOf(ctx, schema);
}

function accessLines(op: Operation, doc: OpenApiDocument): string[] {
  const access = op['x-vigil-access'];
  if (access === undefined) return ['**Access:** public, no token.'];
  const scopes = (op['x-vigil-scopes'] ?? []).map(code).join(', ');
  const bound = {
    'own-env': 'a token bound to an environment, for that environment only',
    refused: 'not for tokens bound to an environment',
    'key-env': "the environment is the key's own",
  }[op['x-vigil-bound-tokens'] ?? 'own-env'];
  const schemes = doc.components?.securitySchemes ?? {};
  const ways = (op.security ?? []).flatMap((requirement) =>
    Object.keys(requirement).map((name) => {
      const scheme = schemes[name];
      if (scheme?.type === 'http' && scheme.scheme === 'bearer') return code('Authorization: Bearer <token>');
      if (scheme?.type === 'apiKey') return code(`${scheme.in === 'query' ? '?' : ''}${scheme.name}=<key>`);
      return code(name);
    }),
  );
  return [
    `**Access:** ${code(access)} (scopes ${scopes}); ${bound}.` +
      (ways.length > 0 ? ` Token: ${ways.join(' or ')}.` : ''),
  ];
}

function parameterLines(ctx: Context, op: Operation): string[] {
  const parameters = op.parameters ?? [];
  if (parameters.length === 0) return [];
  const order = ['path', 'query', 'header'];
  const sorted = [...parameters].sort((a, b) => order.indexOf(a.in) - order.indexOf(b.in));
  return [
    '| parameter | in | type | required | notes |',
    '| --------- | -- | ---- | -------- | ----- |',
    ...sorted.map((p) => {
      const schema = p.schema ?? {};
      const notes = notesOf({ ...schema, description: p.description ?? schema.description });
      return `| ${code(p.name)} | ${p.in} | ${cell(typeOf(ctx, schema))} | ${p.required ? 'yes' : 'no'} | ${cell(notes)} |`;
    }),
  ];
}

function bodyLines(ctx: Context, op: Operation): string[] {
  const content = op.requestBody?.content;
  if (!content) return [];
  const [type, media] = Object.entries(content)[0] ?? [];
  const schema = media?.schema;
  if (!type || !schema) return [];
  // A body schema with a default may be left out (send no Content-Type then).
  const optional = schema.default !== undefined ? '; optional: `{}`, or no body and no `Content-Type`' : '';
  if (schema.$ref) return [`**Body** (${code(type)}${optional}): ${link(ctx, schema.$ref)}.`];
  const rows = fieldRows(ctx, schema);
  if (rows.length === 0) return [`**Body** (${code(type)}${optional}): ${typeOf(ctx, schema)}.`];
  return [`**Body** (${code(type)}${optional}):`, '', ...fieldTable(rows)];
}

function responseLines(ctx: Context, op: Operation): string[] {
  const responses = Object.entries(op.responses ?? {});
  if (responses.length === 0) return [];
  return [
    '| status | body | meaning |',
    '| ------ | ---- | ------- |',
    ...responses.map(([status, response]) => {
      const entries = Object.entries(response.content ?? {});
      const [type, media] = entries[0] ?? [];
      let body = media?.schema ? bodyOf(ctx, media.schema) : '—';
      if (type && type !== 'application/json') body = `${body} (${code(type)})`;
      const headers = Object.entries(response.headers ?? {}).map(
        ([name, h]) => `${code(name)}: ${h.description ? prose(h.description) : typeOf(ctx, h.schema ?? {})}`,
      );
      let meaning = prose(response.description ?? '');
      if (headers.length > 0) meaning = `${sentence(meaning)} Headers: ${headers.join('; ')}.`;
      return `| ${status} | ${cell(body)} | ${cell(meaning)} |`;
    }),
  ];
}

interface Entry {
  method: string;
  path: string;
  op: Operation;
}

/** The page for an OpenAPI document. Deterministic: the same document gives the same bytes. */
export function renderRestDocs(doc: OpenApiDocument): string {
  const slugger = new Slugger();
  const overview = (doc.info.description ?? '').trim();
  // Anchors follow the order headings appear in, as GitHub numbers repeats.
  slugger.slug('REST API reference');
  for (const line of overview.split('\n')) {
    const heading = /^#{1,6}\s+(.+)$/.exec(line);
    if (heading) slugger.slug(heading[1]!);
  }
  slugger.slug('Contents');

  const entries: Entry[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (op) entries.push({ method: method.toUpperCase(), path, op });
    }
  }
  const tagNames = [
    ...(doc.tags ?? []).map((t) => t.name),
    ...entries.flatMap((e) => e.op.tags ?? ['other']),
  ].filter((name, i, all) => all.indexOf(name) === i);
  const groups = tagNames
    .map((name) => ({
      name,
      description: doc.tags?.find((t) => t.name === name)?.description,
      entries: entries.filter((e) => (e.op.tags ?? ['other'])[0] === name),
    }))
    .filter((g) => g.entries.length > 0);

  const tagAnchors = new Map<string, string>();
  const opAnchors = new Map<Entry, string>();
  for (const group of groups) {
    tagAnchors.set(group.name, slugger.slug(capitalize(group.name)));
    for (const entry of group.entries) opAnchors.set(entry, slugger.slug(`${entry.method} ${entry.path}`));
  }
  slugger.slug('Schemas');
  const schemas = Object.entries(doc.components?.schemas ?? {});
  const ctx: Context = { schemaAnchors: new Map(schemas.map(([name]) => [name, slugger.slug(name)])) };

  const out: string[] = [
    '<!-- Generated by services/flag-server/scripts/rest-docs.ts from the OpenAPI document the flag server',
    '     serves at /openapi.json. Do not edit: change the route schemas in services/flag-server/src, then',
    '     run `pnpm docs:api`. -->',
    '',
    '# REST API reference',
    '',
    `${doc.info.title}. Generated from the OpenAPI document the server serves at \`/openapi.json\`, so it`,
    'lists exactly the routes the server registers. The SDK stream is described in',
    '[wire-protocol.md](wire-protocol.md), the flag model in [evaluation.md](evaluation.md).',
    '',
    prose(overview),
    '',
    '## Contents',
    '',
    '| area | operation | access | summary |',
    '| ---- | --------- | ------ | ------- |',
  ];
  for (const group of groups) {
    for (const entry of group.entries) {
      const access = entry.op['x-vigil-access'] ? code(entry.op['x-vigil-access']) : 'public';
      const title = `${entry.method} ${entry.path}`;
      out.push(
        `| [${cell(group.name)}](#${tagAnchors.get(group.name)}) | [${code(title)}](#${opAnchors.get(entry)}) | ${access} | ${cell(prose(entry.op.summary ?? ''))} |`,
      );
    }
  }

  for (const group of groups) {
    out.push('', `## ${capitalize(group.name)}`, '');
    if (group.description) out.push(prose(group.description), '');
    for (const entry of group.entries) {
      const { op } = entry;
      out.push(`### ${entry.method} ${entry.path}`, '');
      if (op.summary) out.push(sentence(capitalize(prose(op.summary))), '');
      if (op.description) out.push(prose(op.description), '');
      out.push(...accessLines(op, doc), '');
      for (const block of [parameterLines(ctx, op), bodyLines(ctx, op), responseLines(ctx, op)]) {
        if (block.length > 0) out.push(...block, '');
      }
    }
  }

  out.push(
    '## Schemas',
    '',
    `Types: ${code('key')} is a string matching ${code(KEY_PATTERN.source)} (flag, segment, variant, rule`,
    `and environment names); ${code('date-time')} is ISO 8601 in UTC, e.g. ${code('2030-03-01T12:00:00.000Z')}.`,
    'Fields with a default may be left out of a request. The write-time checks JSON Schema cannot express',
    '(weights summing to 100000, variants that exist, regexes RE2 compiles, prerequisite cycles) are in',
    '[evaluation.md](evaluation.md). The same shapes are exported as JSON Schema in',
    '[`proto/schema/`](../proto/schema).',
    '',
  );
  for (const [name, schema] of schemas) {
    out.push(`### ${name}`, '');
    if (schema.description) out.push(sentence(prose(schema.description)), '');
    const rows = fieldRows(ctx, schema);
    if (rows.length > 0) {
      out.push(...fieldTable(rows), '');
      if (typeof schema.additionalProperties === 'object') {
        out.push(`Any other field: ${typeOf(ctx, schema.additionalProperties)}.`, '');
      }
    } else {
      out.push(`${typeOf(ctx, schema)}.`, '');
    }
  }
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

/** Renders the page from a freshly served document. */
export async function generateRestDocs(): Promise<string> {
  return renderRestDocs(await servedOpenApi());
}

async function main(): Promise<void> {
  const page = await generateRestDocs();
  if (process.argv.includes('--check')) {
    const current = await readFile(REST_DOCS_PATH, 'utf8').catch(() => '');
    if (current !== page) {
      process.stderr.write('docs/rest-api.md is out of date: run pnpm docs:api\n');
      process.exit(1);
    }
    process.stdout.write('docs/rest-api.md is up to date\n');
    return;
  }
  await writeFile(REST_DOCS_PATH, page);
  process.stdout.write(`wrote ${REST_DOCS_PATH}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`rest-docs: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
