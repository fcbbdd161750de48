import type { FeatureDefinition } from '@growthbook/growthbook';
import { type Flag, flagSchema } from '@vigil/proto';
import type { ClientFeaturesResponse } from 'unleash-client';
import { Operator } from 'unleash-client/lib/strategy/strategy.js';

/** What a benchmark flag says: `country in countries` → `percent`% on, everyone else off. */
export interface FlagSpec {
  readonly key: string;
  readonly countries: readonly string[];
  readonly percent: number;
}

/**
 * The one flag every evaluator is timed on, written below in each SDK's own data model:
 * rule `country in [TH, SG, MY]` serving a 20% rollout of `true`, everyone else `false`.
 */
export const FLAG_KEY = 'checkout-v2';
export const TARGET_COUNTRIES = ['TH', 'SG', 'MY'];
export const ROLLOUT_PERCENT = 20;
export const BENCH_FLAG: FlagSpec = { key: FLAG_KEY, countries: TARGET_COUNTRIES, percent: ROLLOUT_PERCENT };

/** Distinct users per path; each timed pass visits all of them, so no SDK can cache by user. */
export const USER_COUNT = 10_000;

export interface User {
  readonly key: string;
  readonly country: string;
}

/** `count` distinct users, all in `country`. */
export function makeUsers(country: string, count = USER_COUNT): User[] {
  return Array.from({ length: count }, (_, i) => ({ key: `user-${i}`, country }));
}

/** `count` copies of the benchmark flag that differ only in key. */
export function sameRuleFlags(count: number): FlagSpec[] {
  return Array.from({ length: count }, (_, i) => ({ ...BENCH_FLAG, key: `${FLAG_KEY}-${i}` }));
}

// Two-letter codes made once and shared, as a process holds each country string once; only the lists differ.
const CODES = Array.from({ length: 26 * 26 }, (_, i) =>
  String.fromCharCode(65 + Math.floor(i / 26), 65 + (i % 26)),
);

/**
 * `count` flags whose rules all differ (TH plus two other countries, and a share from 1 to 99%), so
 * an SDK that shares equal rules between flags gets no help from the data being identical.
 */
export function distinctRuleFlags(count: number): FlagSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    key: `${FLAG_KEY}-${i}`,
    countries: ['TH', CODES[i % CODES.length]!, CODES[(i * 7 + 1) % CODES.length]!],
    percent: 1 + (i % 99),
  }));
}

/** Vigil: weights are thousandths of a percent. */
export function vigilFlag(spec: FlagSpec = BENCH_FLAG): Flag {
  return flagSchema.parse({
    key: spec.key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    rules: [
      {
        id: 'sea',
        clauses: [{ attribute: 'country', op: 'in', values: [...spec.countries] }],
        serve: {
          rollout: {
            weights: [
              { variant: 'on', weight: spec.percent * 1000 },
              { variant: 'off', weight: (100 - spec.percent) * 1000 },
            ],
          },
        },
      },
    ],
    fallthrough: { variant: 'off' },
  });
}

type UnleashFeature = ClientFeaturesResponse['features'][number];

/** Unleash: a gradual (flexible) rollout strategy constrained to the countries, sticky on userId. */
export function unleashFeature(spec: FlagSpec = BENCH_FLAG): UnleashFeature {
  return {
    name: spec.key,
    enabled: true,
    strategies: [
      {
        name: 'flexibleRollout',
        constraints: [
          { contextName: 'country', operator: Operator.IN, values: [...spec.countries], inverted: false },
        ],
        parameters: { rollout: String(spec.percent), stickiness: 'userId', groupId: spec.key },
      },
    ],
  };
}

/**
 * GrowthBook: a percentage-rollout rule (`force` with `coverage`), the cheapest of its rule kinds
 * that expresses the split; an experiment rule would add tracking work on top.
 */
export function growthbookFeature(spec: FlagSpec = BENCH_FLAG): FeatureDefinition<boolean> {
  return {
    defaultValue: false,
    rules: [
      {
        id: 'sea',
        condition: { country: { $in: [...spec.countries] } },
        force: true,
        coverage: spec.percent / 100,
        hashAttribute: 'id',
      },
    ],
  };
}

/** LaunchDarkly's server-side flag data model; rollout weights are thousandths of a percent too. */
export function launchDarklyFlag(spec: FlagSpec = BENCH_FLAG): Record<string, unknown> {
  return {
    key: spec.key,
    version: 1,
    on: true,
    variations: [true, false],
    offVariation: 1,
    fallthrough: { variation: 1 },
    targets: [],
    contextTargets: [],
    prerequisites: [],
    rules: [
      {
        id: 'sea',
        clauses: [
          { contextKind: 'user', attribute: 'country', op: 'in', values: [...spec.countries], negate: false },
        ],
        rollout: {
          variations: [
            { variation: 0, weight: spec.percent * 1000 },
            { variation: 1, weight: (100 - spec.percent) * 1000 },
          ],
        },
        trackEvents: false,
      },
    ],
    salt: spec.key,
    trackEvents: false,
    trackEventsFallthrough: false,
    clientSide: false,
  };
}
