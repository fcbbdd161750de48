import { type FieldIssue, zodIssues } from '@vigil/proto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { VigilError } from './errors.js';
import type { Expectation } from './store/store.js';

type Parts = { params?: z.ZodType; query?: z.ZodType; body?: z.ZodType };
type Parsed<P extends Parts> = { [K in keyof P]: P[K] extends z.ZodType ? z.output<P[K]> : never };

/**
 * Parses a request's path parameters, query and body with zod, all at once, so a 400 names every
 * bad field: path and query fields as `path.env` / `query.limit`, body fields by their own path.
 */
export function parseRequest<P extends Parts>(request: FastifyRequest, parts: P): Parsed<P> {
  const issues: FieldIssue[] = [];
  const out: Record<string, unknown> = {};
  const sources = { params: request.params, query: request.query, body: request.body };
  const prefixes = { params: ['path'], query: ['query'], body: [] };
  for (const part of ['params', 'query', 'body'] as const) {
    const schema = parts[part];
    if (!schema) continue;
    const result = schema.safeParse(part === 'body' ? sources.body : (sources[part] ?? {}));
    if (result.success) out[part] = result.data;
    else issues.push(...zodIssues(result.error, prefixes[part]));
  }
  if (issues.length > 0) throw badRequest(issues);
  return out as Parsed<P>;
}

/** A 400 that names the bad fields. */
export function badRequest(issues: FieldIssue[], message = 'invalid request'): VigilError {
  const fields = issues.map((i) => i.field);
  return new VigilError('VIGIL_BAD_REQUEST', `${message}: ${[...new Set(fields)].join(', ')}`, issues);
}

/** The ETag for a version or revision. */
export function etag(version: number): string {
  return `"${version}"`;
}

const ENTITY_TAG = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/;

/**
 * The expectation an `If-Match` header states: `"12"` (or `12`, `W/"12"`) → version 12, `*` → must
 * exist (returned as `'exists'` for the caller to resolve), absent → undefined.
 */
export function ifMatch(request: FastifyRequest): { version: number } | 'exists' | undefined {
  const header = request.headers['if-match'];
  if (header === undefined) return undefined;
  if (header.trim() === '*') return 'exists';
  const match = ENTITY_TAG.exec(header);
  if (!match) {
    throw badRequest([
      { field: 'header.if-match', message: 'must be one entity tag holding a version, e.g. "12"' },
    ]);
  }
  return { version: Number(match[1]) };
}

/** True when `If-None-Match` lists the current revision (or `*`). */
export function notModified(request: FastifyRequest, revision: number): boolean {
  const header = request.headers['if-none-match'];
  if (!header) return false;
  const current = String(revision);
  return header.split(',').some((tag) => {
    const t = tag.trim();
    if (t === '*') return true;
    return ENTITY_TAG.exec(t)?.[1] === current;
  });
}

/** Resolves `If-Match` into a store expectation, given the version currently stored (if any). */
export function expectation(
  match: ReturnType<typeof ifMatch>,
  current: { version: number } | undefined,
  what: string,
): Expectation {
  if (match === undefined) return undefined;
  if (match === 'exists') {
    if (!current) throw new VigilError('VIGIL_VERSION_CONFLICT', `${what} does not exist (If-Match: *)`);
    return { version: current.version };
  }
  return match;
}

/** Deepest nesting of arrays and objects a JSON body may have; a flag needs a handful of levels. */
export const MAX_JSON_DEPTH = 64;

/** True when `text` nests arrays and objects deeper than `limit` (brackets inside strings do not count). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > limit) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}

/**
 * The offset of the first byte that does not start or continue a well-formed UTF-8 sequence
 * (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF), or -1 when all are valid.
 * A truncated sequence is reported at its lead byte.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    // The lead byte decides the length and the allowed range of the second byte.
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) low = 0xa0;
      else if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) low = 0x90;
      else if (b === 0xf4) high = 0x8f;
    } else return i;
    if (i + length > n) return i;
    const second = bytes[i + 1]!;
    if (second < low || second > high) return i;
    for (let k = 2; k < length; k++) {
      const c = bytes[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += length;
  }
  return -1;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Fastify's JSON body parser, but refusing with a 400 bodies that are not valid UTF-8 (decoded
 * leniently they were stored with replacement characters) and bodies nested deeper than
 * {@link MAX_JSON_DEPTH} (validating, cloning or freezing a value nested thousands deep overflows the
 * stack, which was a 500).
 */
export function setupJsonBodies(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    let text: string;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      const offset = invalidUtf8Offset(bytes);
      done(
        new VigilError('VIGIL_BAD_REQUEST', `request body is not valid UTF-8 (byte offset ${offset})`, [
          { field: 'body', message: `not valid UTF-8 at byte offset ${offset}` },
        ]),
        undefined,
      );
      return;
    }
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      done(
        new VigilError('VIGIL_BAD_REQUEST', `JSON body nested deeper than ${MAX_JSON_DEPTH} levels`),
        undefined,
      );
      return;
    }
    parse(request, text, done);
  });
}
