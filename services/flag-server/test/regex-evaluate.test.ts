import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlagSet } from '@vigil/core';
import { type Flag, type FlagInput, flagSchema } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedStore } from '../src/store/embedded.js';
import { adminSecret, type Rest, rest, type ServerProcess, spawnServer } from './helpers/process.js';
import { boolFlag, rolloutFlag } from './helpers/server.js';

const ENV = 'production';
const matching = (key: string, pattern: string, attribute = 's'): FlagInput =>
  boolFlag(key, {
    rules: [
      { id: 'r', clauses: [{ attribute, op: 'matches', values: [pattern] }], serve: { variant: 'on' } },
    ],
    fallthrough: { variant: 'off' },
  });

interface Evaluated {
  revision: number;
  results: Record<string, { value: unknown; variant?: string; reason: string }>;
}

/**
 * The flag server as its own process, so a stalled evaluation shows as a /healthz that does not
 * answer (within the REST helper's 10 s abort) rather than as a frozen test runner.
 */
describe('matches through the REST server, evaluated with RE2', () => {
  let dataDir: string;
  let server: ServerProcess;
  let api: Rest;
  const admin = adminSecret();

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vigil-regex-'));
    // A flag stored before RE2 was the engine: `(a)\1` is a JavaScript backreference RE2 refuses.
    const store = new EmbeddedStore({ dataDir, onListenerError: () => {} });
    await store.start();
    await store.putFlag(ENV, flagSchema.parse({ ...matching('legacy', '(a)\\1'), version: 0 }), undefined, {
      actor: 'test',
    });
    await store.close();
    server = await spawnServer({
      VIGIL_STORE: 'embedded',
      VIGIL_DATA_DIR: dataDir,
      VIGIL_ADMIN_TOKEN: admin,
    });
    api = rest(server.url, admin);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('reports at start-up a stored pattern RE2 refuses, and its clause never matches', async () => {
    const warning = server
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((entry) => entry.flag === 'legacy');
    expect(warning, server.output()).toMatchObject({
      level: 40,
      env: ENV,
      flag: 'legacy',
      clause: 'rules[0].clauses[0].values[0]',
      reason: expect.stringMatching(/^invalid regex \(RE2 syntax\)/),
    });
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^vigil_stored_patterns_refused_total\{env="production"\} 1$/m);
    // a backtracking engine would match "aa"; the refused clause is false instead
    const { body } = await api<Evaluated>('POST', `/api/v1/envs/${ENV}/evaluate`, {
      context: { key: 'u', s: 'aa' },
      flags: ['legacy'],
    });
    expect(body.results.legacy).toMatchObject({ variant: 'off', reason: 'DEFAULT' });
  });

  it('refuses a pattern RE2 refuses (a backreference, which RegExp accepts) with a 400 naming the clause value', async () => {
    const flag = boolFlag('backreference', {
      rules: [
        {
          id: 'r',
          clauses: [
            { attribute: 'country', op: 'in', values: ['TH'] },
            { attribute: 'email', op: 'matches', values: ['^([a-z])\\1@example\\.com$'] },
          ],
          serve: { variant: 'on' },
        },
      ],
    });
    const { status, body } = await api<{
      error: { code: string; details: { field: string; message: string }[] };
    }>('POST', `/api/v1/envs/${ENV}/flags`, flag);
    expect(status).toBe(400);
    expect(body.error.details).toEqual([
      {
        field: 'rules[0].clauses[1].values[0]',
        message: expect.stringMatching(/^invalid regex \(RE2 syntax\)/),
      },
    ]);
  });

  it('evaluates the patterns that froze evaluation on a 10,000-character attribute while /healthz answers', async () => {
    for (const [key, pattern] of [
      ['alternation-star', '^(a|a)*$'],
      ['alternation-plus', '(a|aa)+b'],
      ['nested', '(a+)+$'],
    ] as const) {
      const { status } = await api('POST', `/api/v1/envs/${ENV}/flags`, matching(key, pattern));
      expect(status, `${pattern} is RE2 syntax, so it is accepted`).toBe(201);
    }
    const hostile = `${'a'.repeat(10_000)}!`;
    // Both requests are in flight at once; each aborts after 10 s (the REST helper's signal).
    const [evaluated, health] = await Promise.all([
      api<Evaluated>('POST', `/api/v1/envs/${ENV}/evaluate`, {
        context: { key: 'u', s: hostile },
        flags: ['alternation-star', 'alternation-plus', 'nested'],
      }),
      fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(10_000) }),
    ]);
    expect(health.status).toBe(200);
    expect(evaluated.status).toBe(200);
    for (const key of ['alternation-star', 'alternation-plus', 'nested']) {
      expect(evaluated.body.results[key], key).toMatchObject({ variant: 'off', reason: 'DEFAULT' });
    }
    const matched = await api<Evaluated>('POST', `/api/v1/envs/${ENV}/evaluate`, {
      context: { key: 'u', s: 'a'.repeat(10_000) },
      flags: ['alternation-star', 'nested'],
    });
    expect(matched.body.results['alternation-star']).toMatchObject({
      variant: 'on',
      reason: 'TARGETING_MATCH',
    });
    expect(matched.body.results.nested).toMatchObject({ variant: 'on', reason: 'TARGETING_MATCH' });
  });

  it('answers a context whose key is over 1,024 characters as the core evaluator (and so every SDK) does', async () => {
    expect((await api('POST', `/api/v1/envs/${ENV}/flags`, rolloutFlag('half', 50))).status).toBe(201);
    const { body: listed } = await api<{ flags: Flag[] } | Flag[]>('GET', `/api/v1/envs/${ENV}/flags`);
    const flags = Array.isArray(listed) ? listed : listed.flags;
    const core = new FlagSet();
    core.load({ revision: 1, flags, segments: [] });
    const contexts = [1025, 2000, 4096, 30_000].map((length, i) => ({
      key: String(i).repeat(length),
      long: 'x'.repeat(1500),
    }));
    for (const context of contexts) {
      const { status, body } = await api<Evaluated>('POST', `/api/v1/envs/${ENV}/evaluate`, {
        context,
        flags: ['half'],
      });
      expect(status, JSON.stringify(body)).toBe(200);
      const expected = core.detail('half', context);
      expect(body.results.half).toMatchObject({ variant: expected.variant, reason: expected.reason });
    }
  });
});
