import { createConnection } from 'node:net';
import { errorBodySchema } from '@vigil/proto';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { ERRORS } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';

/**
 * fast-check settings for a fuzz property: `numRuns`, and the seed from `VIGIL_FUZZ_SEED` when set
 * (fast-check prints the seed and path of every failure; set both to replay one).
 */
export function fuzzParams(numRuns: number): fc.Parameters<unknown> {
  // fast-check counts runs up to numRuns exactly: a fraction never matches, and the property runs forever.
  if (!Number.isInteger(numRuns) || numRuns < 1)
    throw new RangeError(`numRuns must be a whole number, not ${numRuns}`);
  const seed = process.env.VIGIL_FUZZ_SEED;
  const path = process.env.VIGIL_FUZZ_PATH;
  return {
    numRuns,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path }),
  };
}

/** Time a whole property may take: its runs add up, and the machine may be loaded. */
export const FUZZ_TIMEOUT_MS = 90_000;

/**
 * Every route the app serves, as `METHOD /path/:param`, read from Fastify's route tree (which, unlike
 * the OpenAPI document, also holds hidden routes such as the stream and CORS preflights).
 */
export function listRoutes(app: FastifyInstance): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    const path = (stack[depth - 1] ?? '') + match[2]!;
    stack.push(path);
    for (const method of match[3]?.split(', ') ?? []) routes.push(`${method} ${path}`);
  }
  return routes.sort();
}

/** Asserts that a 4xx/5xx response carries `{ error: { code, message } }` with a VIGIL_* code that fits its status. */
export function expectErrorBody(response: { statusCode: number; body: string }): string {
  let body: unknown;
  try {
    body = JSON.parse(response.body);
  } catch {
    throw new Error(
      `status ${response.statusCode} with a body that is not JSON: ${response.body.slice(0, 300)}`,
    );
  }
  const parsed = errorBodySchema.safeParse(body);
  expect(parsed.success, `status ${response.statusCode}, body ${response.body.slice(0, 300)}`).toBe(true);
  const code = parsed.data!.error.code;
  expect(Object.keys(ERRORS), `unknown code ${code}`).toContain(code);
  expect(ERRORS[code as keyof typeof ERRORS], `${code} sent with status ${response.statusCode}`).toBe(
    response.statusCode,
  );
  return code;
}

// ---------------------------------------------------------------------------------------------------
// Hostile values

/** `n` nested arrays: deep enough values blow recursive validators' stacks. */
export const deepArrays = (n: number) => '['.repeat(n) + ']'.repeat(n);
/** `n` nested objects. */
export const deepObjects = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

/** Raw JSON texts that are hostile as a value: number edge cases, poisoned keys, deep or huge values. */
const RAW_CONSTANTS = [
  '1e309',
  '-1e309',
  '-0',
  '1e-400',
  '9007199254740993',
  '1' + '0'.repeat(400),
  '-1',
  '1.5',
  '0',
  '100001',
  'null',
  'true',
  '""',
  '" "',
  '"\\u0000"',
  '"\\ud800"',
  '"\\udfff\\ud800"',
  '"../../etc/passwd"',
  '"constructor"',
  '"__proto__"',
  '"prototype"',
  '"toString"',
  '"NaN"',
  '"Infinity"',
  '"-0"',
  '"1e309"',
  '[]',
  '{}',
  '[null]',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  deepArrays(64),
  deepArrays(200),
  deepArrays(20_000),
  deepObjects(3000),
  `"${'x'.repeat(4097)}"`,
  `"${'é'.repeat(3000)}"`,
  `[${Array(10_001).fill('0').join(',')}]`,
  `[${Array(501).fill('{}').join(',')}]`,
];

/** A raw JSON text (valid or not quite) to put where a value belongs. */
export const rawValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...RAW_CONSTANTS) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: fc.double().map((d) => String(d)) },
  { weight: 1, arbitrary: fc.bigInt().map((n) => String(n)) },
);

/** Object keys that prototype pollution and naive lookups trip over, plus arbitrary ones. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'valueOf',
    '',
    'key',
  ),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

/** Hostile strings for headers: printable garbage, almost-valid values, overlong ones. */
export const headerGarbage: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc.constantFrom('', ' ', '*', '"', '""', '"-1"', '"1.5"', 'W/', '"1", *', 'x'.repeat(9000), 'é', '\t'),
);

/** Percent-encodes every UTF-8 byte of a string (so lone surrogates become EF BF BD, never a throw). */
export function encodeBytes(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

/** Path segments that confuse routers and decoders: traversal, encoded slashes, NUL, bad escapes, overlong. */
export const hostileSegment: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '%2E%2E%2F',
      '%2F',
      'a%2Fb',
      '%5C',
      '%00',
      'a%00b',
      '%',
      '%zz',
      '%C0%AE',
      '%ED%A0%80',
      '%FF',
      '%E0%A4%A',
      '~',
      'constructor',
      'prototype',
      'toString',
      '__proto__',
      '%5F%5Fproto%5F%5F',
      'a'.repeat(129),
      'a'.repeat(5000),
      '%20',
      '+',
      'a;b',
      '*',
      '-',
      '_a',
      '%F0%9F%92%A5',
      'ไทย',
      'a\u0000b',
      'a b',
      '%0d%0aX-Injected:%201',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map(encodeBytes) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).map(encodeURIComponent) },
);

/** A query string of known and hostile keys: repeated keys, arrays, huge and negative numbers. */
export function hostileQuery(known: readonly string[]): fc.Arbitrary<string> {
  const key = fc.oneof(
    { weight: 4, arbitrary: known.length > 0 ? fc.constantFrom(...known) : fc.constant('x') },
    {
      weight: 1,
      arbitrary: known.length > 0 ? fc.constantFrom(...known.map((k) => `${k}[]`)) : fc.constant('x[]'),
    },
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'a[b]', 'key', '') },
  );
  const value = fc.oneof(
    fc.constantFrom(
      '',
      '-1',
      '0',
      '1',
      '1e309',
      '99999999999999999999999',
      '1.5',
      'NaN',
      ' 5 ',
      '0x10',
      '1-1',
      '999999999999999999999-1',
      'open',
      'production',
      'true',
      'x'.repeat(3000),
    ),
    fc.string({ unit: 'binary', maxLength: 20 }).map(encodeBytes),
  );
  return fc
    .array(fc.tuple(key, value), { maxLength: 5 })
    .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`));
}

/** Bodies that are not JSON at all, or not quite: broken syntax, invalid UTF-8, binary, deep nesting. */
export const brokenBody: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.constantFrom<string | Buffer>(
    '',
    '{',
    '{"a":}',
    '[1,]',
    "{'a':1}",
    '{"a":1}x',
    'nul',
    '\uFEFF{}',
    '{"a":"\\x"}',
    '{"key":"a","key":"b"}',
    '\u0000',
    ' ',
    deepArrays(30_000),
    deepObjects(10_000),
    Buffer.from([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    Buffer.from([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xc0, 0xae, 0x22, 0x7d]),
    Buffer.from([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]),
    Buffer.from([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xe2, 0x82, 0x22, 0x7d]),
    Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]),
  ),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
);

/** Bodies around the body limit: a JSON string or array just under, at and just over `limit` bytes. */
export function bodiesNearLimit(limit: number): fc.Arbitrary<string> {
  return fc.tuple(fc.integer({ min: -3, max: 3 }), fc.boolean()).map(([delta, asArray]) => {
    const size = limit + delta;
    if (!asArray) return `"${'x'.repeat(Math.max(0, size - 2))}"`;
    const items = Math.max(0, Math.floor((size - 2 + 1) / 2));
    return `[${Array(items).fill('0').join(',')}]`.slice(0, size);
  });
}

// ---------------------------------------------------------------------------------------------------
// Nearly valid bodies: a valid value with one field mutated

type Path = (string | number)[];

function paths(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) paths(v, [...at, i], out);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  }
  return out;
}

const HOLE = '\u0001hole\u0001';
const HOLE_TEXT = JSON.stringify(HOLE);

function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy;
  for (const part of path.slice(0, -1)) node = node[part] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

export interface Mutation {
  pick: number;
  kind: 'set' | 'delete' | 'add';
  key: string;
  raw: string;
}

/** How to mutate a value: which field (by index into its paths), replaced, removed or joined by a hostile key. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  pick: fc.nat(),
  kind: fc.constantFrom('set', 'set', 'delete', 'add'),
  key: hostileKey,
  raw: rawValue,
});

/** The JSON text of `base` with one mutation applied (raw texts such as `1e309` go in verbatim). */
export function mutate(base: unknown, mutation: Mutation): string {
  const all = paths(base);
  if (mutation.kind === 'add') {
    const objects = all.filter((p) => {
      const v = p.reduce<unknown>((node, part) => (node as Record<string | number, unknown>)[part], base);
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    });
    if (objects.length > 0) {
      const at = objects[mutation.pick % objects.length]!;
      const text = JSON.stringify(setAt(base, [...at, HOLE], HOLE));
      return text.replace(
        `${HOLE_TEXT}:${HOLE_TEXT}`,
        () => `${JSON.stringify(mutation.key)}:${mutation.raw}`,
      );
    }
  }
  const at = all[mutation.pick % all.length]!;
  if (mutation.kind === 'delete' && at.length > 0) return JSON.stringify(setAt(base, at, undefined));
  return JSON.stringify(setAt(base, at, HOLE)).replace(HOLE_TEXT, () => mutation.raw);
}

// ---------------------------------------------------------------------------------------------------
// Store state, to prove that a refused request wrote nothing

/** Everything a REST request could change in a store, in a form `toEqual` compares. */
export interface StoreState {
  /** Per environment; `audit` holds the ids of the newest two audit entries, newest first. */
  envs: Record<string, { revision: number; flags: unknown[]; segments: unknown[]; audit: string[] }>;
  tokens: unknown[];
  incidents: unknown[];
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * Reads the store's whole state. The audit log is append-only and grows with every write, so it is
 * represented by the ids of its newest two entries: enough to tell whether, and what, was appended.
 */
export async function storeState(store: Store): Promise<StoreState> {
  const envs: StoreState['envs'] = {};
  for (const env of await store.listEnvs()) {
    const snapshot = await store.snapshot(env);
    const audit = await store.audit(env, { limit: 2 });
    envs[env] = {
      revision: snapshot.revision,
      flags: [...snapshot.flags].sort(byKey),
      segments: [...snapshot.segments].sort(byKey),
      audit: audit.map((entry) => entry.id),
    };
  }
  return {
    envs,
    tokens: await store.listTokens(),
    incidents: await store.listIncidents({ limit: 1_000_000 }),
  };
}

// ---------------------------------------------------------------------------------------------------
// Raw HTTP over a socket

/** What came back on a raw connection. */
export interface RawExchange {
  /** Every byte the server sent. */
  data: Buffer;
  /** The server ended or reset the connection (rather than our deadline passing). */
  closedByServer: boolean;
}

/**
 * Writes `chunks` to a fresh connection (waiting `pauseMs` between them), half-closes when `end`, and
 * collects what the server sends until it closes the connection or `idleMs` pass without a byte.
 */
export function rawExchange(
  port: number,
  chunks: (string | Buffer)[],
  options: { end?: boolean; pauseMs?: number; idleMs?: number } = {},
): Promise<RawExchange> {
  const { end = false, pauseMs = 0, idleMs = 1500 } = options;
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    let done = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      socket.destroy();
      resolve({ data: Buffer.concat(received), closedByServer });
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    socket.on('data', (data) => {
      received.push(data);
      arm();
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.once('connect', async () => {
      for (const chunk of chunks) {
        if (done) return;
        socket.write(chunk);
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
      if (end && !done) socket.end();
      arm();
    });
  });
}

/** One HTTP/1.1 response parsed out of raw bytes. */
export interface RawResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits raw bytes into the responses they hold (Content-Length or chunked bodies). */
export function parseResponses(data: Buffer): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = data;
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) throw new Error(`incomplete response head: ${rest.toString('latin1').slice(0, 200)}`);
    const [statusLine, ...lines] = rest.subarray(0, headEnd).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine!);
    if (!status) throw new Error(`not an HTTP response: ${statusLine}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let body: Buffer = Buffer.alloc(0);
    let next = headEnd + 4;
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', next);
        const size = Number.parseInt(rest.subarray(next, lineEnd).toString('latin1'), 16);
        next = lineEnd + 2;
        if (size === 0) {
          next += 2;
          break;
        }
        parts.push(rest.subarray(next, next + size));
        next += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      body = rest.subarray(next, next + length);
      next += length;
    }
    responses.push({ statusCode: Number(status[1]), headers, body: body.toString('utf8') });
    rest = rest.subarray(next);
  }
  return responses;
}
