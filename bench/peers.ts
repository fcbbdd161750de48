import { once } from 'node:events';
import { GrowthBookClient, type UserContext } from '@growthbook/growthbook';
import {
  basicLogger,
  init as initLaunchDarkly,
  type LDClient,
  type LDContext,
} from '@launchdarkly/node-server-sdk';
import { TestData } from '@launchdarkly/node-server-sdk/integrations';
import { InMemStorageProvider, Unleash, type Context as UnleashContext } from 'unleash-client';
import {
  BENCH_FLAG,
  FLAG_KEY,
  type FlagSpec,
  growthbookFeature,
  launchDarklyFlag,
  type User,
  unleashFeature,
} from './fixture.js';
import type { Path, Sdk } from './sdk.js';

/**
 * unleash-client, fully offline: bootstrapped from memory, polling off (`refreshInterval: 0`),
 * metrics off, and an in-memory backup store, so the URL it insists on is never contacted.
 */
async function startUnleash(flags: readonly FlagSpec[]): Promise<Unleash> {
  const client = new Unleash({
    appName: 'vigil-bench',
    url: 'http://127.0.0.1:9/never-contacted/',
    refreshInterval: 0,
    disableMetrics: true,
    bootstrap: { data: flags.map((f) => unleashFeature(f)) },
    storageProvider: new InMemStorageProvider(),
    skipInstanceCountWarning: true,
  });
  // Any attempt to reach the server would surface as a warning; `once` rejects on an 'error' event.
  client.on('warn', (message: unknown) => console.warn('unleash-client warned:', message));
  await once(client, 'ready');
  return client;
}

export const unleash: Sdk = {
  name: 'unleash-client',
  async: false,
  async open(users) {
    const client = await startUnleash([BENCH_FLAG]);
    const toContext = (u: User): UnleashContext => ({ userId: u.key, properties: { country: u.country } });
    const contexts: Record<Path, UnleashContext[]> = {
      hash: users.hash.map(toContext),
      short: users.short.map(toContext),
    };
    const loop = (list: UnleashContext[]): number => {
      let on = 0;
      for (let i = 0; i < list.length; i++) if (client.isEnabled(FLAG_KEY, list[i], false)) on++;
      return on;
    };
    return { sweep: (path) => loop(contexts[path]), close: () => client.destroy() };
  },
  async loadMany(flags) {
    const client = await startUnleash(flags);
    return {
      probe: (key, u) => client.isEnabled(key, { userId: u.key, properties: { country: u.country } }, false),
      close: () => client.destroy(),
    };
  },
};

/** GrowthBook's multi-user server client, initialised synchronously from a payload (no API host). */
function startGrowthBook(flags: readonly FlagSpec[]): GrowthBookClient {
  const features = Object.fromEntries(flags.map((f) => [f.key, growthbookFeature(f)]));
  return new GrowthBookClient().initSync({ payload: { features } });
}

export const growthbook: Sdk = {
  name: '@growthbook/growthbook',
  async: false,
  async open(users) {
    const client = startGrowthBook([BENCH_FLAG]);
    const toContext = (u: User): UserContext => ({ attributes: { id: u.key, country: u.country } });
    const contexts: Record<Path, UserContext[]> = {
      hash: users.hash.map(toContext),
      short: users.short.map(toContext),
    };
    const loop = (list: UserContext[]): number => {
      let on = 0;
      for (let i = 0; i < list.length; i++) if (client.isOn(FLAG_KEY, list[i]!)) on++;
      return on;
    };
    return { sweep: (path) => loop(contexts[path]), close: () => client.destroy() };
  },
  async loadMany(flags) {
    const client = startGrowthBook(flags);
    return {
      probe: (key, u) => client.isOn(key, { attributes: { id: u.key, country: u.country } }),
      close: () => client.destroy(),
    };
  },
};

/**
 * LaunchDarkly's server SDK fed by its TestData source with full flag JSON (the only TestData way to
 * get a percentage rollout in a rule). Not `offline: true`, which would serve every default.
 */
async function startLaunchDarkly(flags: readonly FlagSpec[]): Promise<LDClient> {
  const td = new TestData();
  // TestData hands the client's store the very objects it holds, so no flag is counted twice on the heap.
  await Promise.all(flags.map((f) => td.usePreconfiguredFlag(launchDarklyFlag(f))));
  const client = initLaunchDarkly('sdk-key-never-sent', {
    updateProcessor: td.getFactory(),
    sendEvents: false,
    diagnosticOptOut: true,
    logger: basicLogger({ level: 'warn' }),
  });
  await client.waitForInitialization({ timeout: 5 });
  return client;
}

export const launchDarkly: Sdk = {
  name: '@launchdarkly/node-server-sdk',
  async: true,
  async open(users) {
    const client = await startLaunchDarkly([BENCH_FLAG]);
    const toContext = (u: User): LDContext => ({ kind: 'user', key: u.key, country: u.country });
    const contexts: Record<Path, LDContext[]> = {
      hash: users.hash.map(toContext),
      short: users.short.map(toContext),
    };
    // `variation` always returns a promise, so each evaluation is awaited as an application would.
    const loop = async (list: LDContext[]): Promise<number> => {
      let on = 0;
      for (let i = 0; i < list.length; i++)
        if ((await client.variation(FLAG_KEY, list[i]!, false)) === true) on++;
      return on;
    };
    return { sweep: (path) => loop(contexts[path]), close: () => client.close() };
  },
  async loadMany(flags) {
    const client = await startLaunchDarkly(flags);
    return {
      probe: async (key, u) =>
        (await client.variation(key, { kind: 'user', key: u.key, country: u.country }, false)) === true,
      close: () => client.close(),
    };
  },
};

export const PEERS: readonly Sdk[] = [unleash, growthbook, launchDarkly];
