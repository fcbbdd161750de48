import { readFileSync } from 'node:fs';
import type { Flag, Segment, VariantValue } from '@vigil/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient, type VigilClient } from '../src/index.js';

interface VectorCase {
  name: string;
  flag: string;
  context: unknown;
  default?: VariantValue;
  expect: {
    value: unknown;
    variant?: string;
    reason: string;
    errorCode?: string;
    detail?: string;
    ruleId?: string;
  };
}
interface VectorSuite {
  name: string;
  flags: Flag[];
  segments: Segment[];
  cases: VectorCase[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../../proto/vectors/evaluation.json', import.meta.url), 'utf8'),
) as { suites: VectorSuite[] };

const clients: VigilClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

describe('shared evaluation vectors through the Node SDK', () => {
  it('are all there', () => {
    expect(vectors.suites.reduce((n, s) => n + s.cases.length, 0)).toBeGreaterThanOrEqual(150);
  });

  for (const suite of vectors.suites) {
    it(`${suite.name} (${suite.cases.length} cases)`, () => {
      // Each suite is an environment, loaded the way an app starts without a server: bootstrap.
      const client = createClient({
        url: 'http://127.0.0.1:1',
        sdkKey: 'vectors',
        offline: true,
        bootstrap: { revision: 1, flags: suite.flags, segments: suite.segments },
      });
      clients.push(client);
      expect(client.ready).toBe(true);
      for (const c of suite.cases) {
        const detail = client.detail(c.flag, c.context, c.default);
        const want = c.expect;
        const got = {
          value: detail.value,
          variant: detail.variant,
          reason: detail.reason,
          errorCode: detail.errorCode,
          ruleId: detail.ruleId,
          // `detail` is a contract only where the vector states it (KILLED); elsewhere it is a message.
          ...(want.detail === undefined ? {} : { detail: detail.detail }),
        };
        expect(got, `${suite.name}: ${c.name}`).toEqual({
          value: want.value,
          variant: want.variant,
          reason: want.reason,
          errorCode: want.errorCode,
          ruleId: want.ruleId,
          ...(want.detail === undefined ? {} : { detail: want.detail }),
        });
        // The shortcut methods agree with detail.
        if (c.default !== undefined)
          expect(client.value(c.flag, c.context, c.default), c.name).toEqual(want.value);
        if (typeof c.default === 'boolean')
          expect(client.isEnabled(c.flag, c.context, c.default), c.name).toBe(want.value);
        // `variant` takes no default, so a type mismatch still names the served variant.
        if (want.errorCode !== 'TYPE_MISMATCH')
          expect(client.variant(c.flag, c.context), c.name).toBe(want.variant);
        // A request scope serves the same.
        expect(
          client.scope(c.context as Record<string, unknown>).detail(c.flag, c.default).value,
          c.name,
        ).toEqual(want.value);
      }
    });
  }
});
