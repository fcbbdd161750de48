import {
  type Client,
  ErrorCode,
  type EventDetails,
  OpenFeature,
  ProviderEvents,
  ProviderStatus,
} from '@openfeature/server-sdk';
import type { FlagInput } from '@vigil/proto';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { type ClientOptions, createClient, type VigilClient } from '../src/index.js';
import { toVigilContext, VigilProvider, type VigilProviderOptions } from '../src/openfeature.js';
import { boolFlag, memoryLogger, TestServer } from './helpers.js';

const ENV = 'production';

const colour = (key: string, extra: Partial<FlagInput> = {}): FlagInput => ({
  key,
  variants: [
    { key: 'red', value: 'red' },
    { key: 'blue', value: 'blue' },
  ],
  offVariant: 'blue',
  enabled: true,
  fallthrough: { variant: 'red' },
  ...extra,
});

const FLAGS: FlagInput[] = [
  boolFlag('static'),
  boolFlag('targeted', {
    rules: [
      { id: 'beta', clauses: [{ attribute: 'plan', op: 'in', values: ['beta'] }], serve: { variant: 'on' } },
    ],
    fallthrough: { variant: 'off' },
  }),
  boolFlag('split', {
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', weight: 50_000 },
          { variant: 'off', weight: 50_000 },
        ],
      },
    },
  }),
  colour('disabled', { enabled: false }),
  colour('killed', { killed: true }),
  colour('needs-disabled', { prerequisites: [{ flag: 'disabled', variant: 'red' }] }),
  boolFlag('new-signups', {
    rules: [
      {
        id: 'after-2024',
        clauses: [{ attribute: 'signup', op: 'after', values: ['2024-01-01T00:00:00Z'] }],
        serve: { variant: 'on' },
      },
    ],
    fallthrough: { variant: 'off' },
  }),
  {
    key: 'layout',
    variants: [{ key: 'grid', value: { columns: 3 } }],
    offVariant: 'grid',
    enabled: true,
    fallthrough: { variant: 'grid' },
  },
];

const offline = (): ClientOptions => ({
  url: 'http://127.0.0.1:9',
  sdkKey: 'test',
  offline: true,
  metrics: false,
  bootstrap: { revision: 7, flags: FLAGS.map((f) => ({ ...f, version: 7 })) },
});

const servers: TestServer[] = [];
const owned: VigilClient[] = [];
let domains = 0;

/** Sets the provider on a fresh OpenFeature domain and returns that domain's client. */
async function openFeature(provider: VigilProvider): Promise<Client> {
  const domain = `provider-test-${++domains}`;
  await OpenFeature.setProviderAndWait(domain, provider).catch(() => {});
  return OpenFeature.getClient(domain);
}

function offlineClient(options: VigilProviderOptions = {}): Promise<Client> {
  return openFeature(new VigilProvider(offline(), options));
}

/** Resolves with the details of the next event of a type on an OpenFeature client. */
function nextEvent(client: Client, type: ProviderEvents): Promise<EventDetails | undefined> {
  return new Promise((resolve) => {
    const handler = (details?: EventDetails) => {
      client.removeHandler(type, handler);
      resolve(details);
    };
    client.addHandler(type, handler);
  });
}

afterEach(async () => {
  await Promise.all(owned.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await OpenFeature.close();
  await Promise.all(servers.splice(0).map((s) => s.dispose()));
});

describe('VigilProvider resolutions', () => {
  it('carries Vigil reasons, variants and the flag version and rule as metadata', async () => {
    const client = await offlineClient();
    expect(client.metadata.providerMetadata.name).toBe('vigil');
    expect(await client.getBooleanDetails('static', false)).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'STATIC',
      flagMetadata: { version: '7' },
    });
    expect(await client.getBooleanDetails('targeted', false, { plan: 'beta' })).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'TARGETING_MATCH',
      flagMetadata: { version: '7', ruleId: 'beta' },
    });
    const fallthrough = await client.getBooleanDetails('targeted', true, { plan: 'free' });
    expect(fallthrough).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT' });
    expect(fallthrough.flagMetadata).toStrictEqual({ version: '7' });
    expect(await client.getBooleanDetails('split', false, { targetingKey: 'user-1' })).toMatchObject({
      reason: 'SPLIT',
    });
    expect(await client.getObjectDetails('layout', null)).toMatchObject({
      value: { columns: 3 },
      variant: 'grid',
      reason: 'STATIC',
    });
  });

  it('maps targetingKey to the context key, so OpenFeature and Vigil bucket a user alike', async () => {
    const client = await offlineClient();
    const vigil = createClient(offline());
    owned.push(vigil);
    for (const user of ['user-1', 'user-2', 'user-3', 'ผู้ใช้-4', '🙂-5']) {
      const details = await client.getBooleanDetails('split', false, { targetingKey: user });
      expect(details.variant).toBe(vigil.variant('split', { key: user }));
    }
    expect(toVigilContext({ targetingKey: 'a', key: 'b', plan: 'beta' })).toEqual({ key: 'a', plan: 'beta' });
  });

  it('passes Dates as ISO strings, which the before/after operators read', async () => {
    const client = await offlineClient();
    expect(await client.getBooleanValue('new-signups', false, { signup: new Date('2025-03-01') })).toBe(true);
    expect(await client.getBooleanValue('new-signups', true, { signup: new Date('2023-03-01') })).toBe(false);
    expect(toVigilContext({ nested: { at: new Date(0) }, list: [new Date(Number.NaN)] })).toEqual({
      nested: { at: '1970-01-01T00:00:00.000Z' },
      list: [undefined],
    });
  });

  it("returns the caller's default with the error code for unknown flags, type mismatches and a missing key", async () => {
    const client = await offlineClient();
    expect(await client.getStringDetails('nope', 'fallback')).toMatchObject({
      value: 'fallback',
      reason: 'ERROR',
      errorCode: ErrorCode.FLAG_NOT_FOUND,
    });
    expect(await client.getNumberDetails('static', 42)).toMatchObject({
      value: 42,
      reason: 'ERROR',
      errorCode: ErrorCode.TYPE_MISMATCH,
    });
    // An object asked of a string flag is a mismatch even with a null default.
    expect(await client.getObjectDetails('disabled', null)).toMatchObject({
      value: null,
      errorCode: ErrorCode.TYPE_MISMATCH,
    });
    const missing = await client.getBooleanDetails('split', true, {});
    expect(missing).toMatchObject({
      value: true,
      reason: 'ERROR',
      errorCode: ErrorCode.TARGETING_KEY_MISSING,
    });
    expect(missing.variant).toBeUndefined();
  });

  it("serves the caller's default for a disabled or killed flag, or the offVariant when asked to", async () => {
    const spec = await offlineClient();
    const disabled = await spec.getStringDetails('disabled', 'green');
    expect(disabled).toMatchObject({ value: 'green', reason: 'DISABLED' });
    expect(disabled.variant).toBeUndefined();
    expect(await spec.getStringDetails('killed', 'green')).toMatchObject({
      value: 'green',
      reason: 'DISABLED',
      flagMetadata: { version: '7', killed: true },
    });

    const vigil = await offlineClient({ disabledValue: 'offVariant' });
    expect(await vigil.getStringDetails('disabled', 'green')).toMatchObject({
      value: 'blue',
      variant: 'blue',
      reason: 'DISABLED',
    });
    expect(await vigil.getStringDetails('killed', 'green')).toMatchObject({
      value: 'blue',
      reason: 'DISABLED',
    });
  });

  it('reports a failed prerequisite as PREREQUISITE_FAILED with the offVariant', async () => {
    const client = await offlineClient();
    expect(await client.getStringDetails('needs-disabled', 'green')).toMatchObject({
      value: 'blue',
      variant: 'blue',
      reason: 'PREREQUISITE_FAILED',
    });
  });

  it('takes a flagMetadata function in place of the default metadata', async () => {
    const client = await offlineClient({ flagMetadata: (key, detail) => ({ key, reason: detail.reason }) });
    expect((await client.getBooleanDetails('static', false)).flagMetadata).toStrictEqual({
      key: 'static',
      reason: 'STATIC',
    });
  });
});

describe('VigilProvider lifecycle and events', () => {
  it('closes a client it created, and leaves open a client it was given', async () => {
    const created = new VigilProvider(offline());
    const closeCreated = vi.spyOn(created.client, 'close');
    await created.onClose();
    expect(closeCreated).toHaveBeenCalledOnce();

    const given = createClient(offline());
    owned.push(given);
    const closeGiven = vi.spyOn(given, 'close');
    await new VigilProvider(given).onClose();
    expect(closeGiven).not.toHaveBeenCalled();
    expect(given.isEnabled('static', {})).toBe(true);
  });

  it('emits ConfigurationChanged with the changed flags, Stale on losing the server and Ready on regaining it', async () => {
    const server = await TestServer.start();
    servers.push(server);
    const key = await server.token(['sdk-server'], ENV);
    await server.putFlag(ENV, boolFlag('checkout'));
    const provider = new VigilProvider(
      {
        url: server.url,
        sdkKey: key,
        metrics: false,
        logger: memoryLogger(),
        reconnect: { baseMs: 20, capMs: 100 },
      },
      { recoveryCheckMs: 20 },
    );
    const client = await openFeature(provider);
    expect(client.providerStatus).toBe(ProviderStatus.READY);
    expect(await client.getBooleanValue('checkout', false)).toBe(true);

    const changed = nextEvent(client, ProviderEvents.ConfigurationChanged);
    await server.putFlag(ENV, boolFlag('checkout', { fallthrough: { variant: 'off' } }));
    expect((await changed)?.flagsChanged).toEqual(['checkout']);
    expect(await client.getBooleanValue('checkout', true)).toBe(false);

    const stale = nextEvent(client, ProviderEvents.Stale);
    await server.stop();
    await stale;
    expect(client.providerStatus).toBe(ProviderStatus.STALE);
    // The last known flags are still served while stale.
    expect(await client.getBooleanValue('checkout', true)).toBe(false);

    const ready = nextEvent(client, ProviderEvents.Ready);
    await server.restart();
    await ready;
    expect(client.providerStatus).toBe(ProviderStatus.READY);
  });

  it('is in ERROR when no flags come within readyTimeoutMs, and turns READY when they arrive', async () => {
    const server = await TestServer.start();
    servers.push(server);
    const key = await server.token(['sdk-server'], ENV);
    await server.putFlag(ENV, boolFlag('checkout'));
    await server.stop();

    const provider = new VigilProvider(
      {
        url: server.url,
        sdkKey: key,
        metrics: false,
        logger: memoryLogger(),
        reconnect: { baseMs: 20, capMs: 100 },
      },
      { readyTimeoutMs: 100 },
    );
    const client = await openFeature(provider);
    expect(client.providerStatus).toBe(ProviderStatus.ERROR);
    // Not "no such flag": the flag exists, the provider has no flags yet (issue 11, point 9).
    expect(await client.getBooleanDetails('checkout', false)).toMatchObject({
      value: false,
      reason: 'ERROR',
      errorCode: ErrorCode.PROVIDER_NOT_READY,
    });
    expect(await client.getStringDetails('anything', 'dflt')).toMatchObject({
      value: 'dflt',
      errorCode: ErrorCode.PROVIDER_NOT_READY,
    });

    const ready = nextEvent(client, ProviderEvents.Ready);
    await server.restart();
    await ready;
    expect(client.providerStatus).toBe(ProviderStatus.READY);
    expect(await client.getBooleanValue('checkout', false)).toBe(true);
  });

  it('is FATAL when the server refuses the SDK key', async () => {
    const server = await TestServer.start();
    servers.push(server);
    const provider = new VigilProvider({
      url: server.url,
      sdkKey: 'not-a-key',
      metrics: false,
      logger: memoryLogger(),
    });
    const client = await openFeature(provider);
    expect(client.providerStatus).toBe(ProviderStatus.FATAL);
    expect(await client.getBooleanDetails('checkout', true)).toMatchObject({
      value: true,
      errorCode: ErrorCode.PROVIDER_FATAL,
    });
  });
});
