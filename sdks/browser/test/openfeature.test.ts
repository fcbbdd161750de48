import {
  type Client,
  ErrorCode,
  type EvaluationContext,
  type EventDetails,
  OpenFeature,
  ProviderEvents,
  ProviderStatus,
} from '@openfeature/web-sdk';
import { type Flag, type FlagInput, flagSchema } from '@vigil/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VigilWebProvider } from '../src/openfeature.js';

// The web provider over the browser client, in Node without a DOM: the client starts from a bootstrap,
// and a stand-in WebSocket lets the test play the flag server's stream (a snapshot, then patches).

/** A WebSocket that never connects by itself; the test opens it and sends frames. */
class FakeSocket {
  static readonly OPEN = 1;
  static readonly opened: FakeSocket[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  readonly sent: string[] = [];
  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
  }
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  receive(message: object): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
}

const flag = (input: FlagInput): Flag => flagSchema.parse({ clientSide: true, version: 1, ...input });
const boolFlag = (key: string, extra: Partial<FlagInput> = {}): Flag =>
  flag({
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'on' },
    ...extra,
  });

const FLAGS = [
  boolFlag('new-checkout', {
    rules: [
      { id: 'beta', clauses: [{ attribute: 'key', op: 'in', values: ['alice'] }], serve: { variant: 'on' } },
    ],
    fallthrough: { variant: 'off' },
  }),
  boolFlag('disabled', { enabled: false }),
  flag({
    key: 'theme',
    variants: [
      { key: 'light', value: 'light' },
      { key: 'dark', value: 'dark' },
    ],
    offVariant: 'light',
    enabled: true,
    fallthrough: { variant: 'dark' },
  }),
];

const original = (globalThis as { WebSocket?: unknown }).WebSocket;
beforeAll(() => {
  (globalThis as { WebSocket?: unknown }).WebSocket = FakeSocket;
});
afterAll(async () => {
  await OpenFeature.close();
  (globalThis as { WebSocket?: unknown }).WebSocket = original;
});
afterEach(() => {
  FakeSocket.opened.length = 0;
});

let domains = 0;
async function openFeature(provider: VigilWebProvider, context: EvaluationContext): Promise<Client> {
  const domain = `web-provider-${++domains}`;
  await OpenFeature.setProviderAndWait(domain, provider, context);
  return OpenFeature.getClient(domain);
}

function provider(): VigilWebProvider {
  return new VigilWebProvider({
    url: 'http://flags.test',
    clientKey: 'client-key',
    storage: false,
    metrics: false,
    bootstrap: { revision: 1, flags: FLAGS, segments: [] },
  });
}

function nextEvent(client: Client, type: ProviderEvents): Promise<EventDetails | undefined> {
  return new Promise((resolve) => {
    const handler = (details?: EventDetails) => {
      client.removeHandler(type, handler);
      resolve(details);
    };
    client.addHandler(type, handler);
  });
}

describe('VigilWebProvider', () => {
  it("evaluates for OpenFeature's context and re-identifies when it changes", async () => {
    const p = provider();
    const client = await openFeature(p, { targetingKey: 'alice' });
    expect(client.providerStatus).toBe(ProviderStatus.READY);
    expect(client.metadata.providerMetadata.name).toBe('vigil');
    expect(p.client.user).toEqual({ key: 'alice' });
    expect(client.getBooleanDetails('new-checkout', false)).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'TARGETING_MATCH',
      flagMetadata: { version: '1', ruleId: 'beta' },
    });

    const configChanged: unknown[] = [];
    client.addHandler(ProviderEvents.ConfigurationChanged, (d) => configChanged.push(d));
    const contextChanged = nextEvent(client, ProviderEvents.ContextChanged);
    await OpenFeature.setContext(client.metadata.domain!, { targetingKey: 'bob' });
    await contextChanged;
    expect(client.getBooleanDetails('new-checkout', true)).toMatchObject({ value: false, reason: 'DEFAULT' });
    // Switching users is a context change, not a configuration change.
    expect(configChanged).toEqual([]);
  });

  it('maps reasons and errors as the server provider does', async () => {
    const client = await openFeature(provider(), { targetingKey: 'carol' });
    expect(client.getStringDetails('theme', 'light')).toMatchObject({ value: 'dark', reason: 'STATIC' });
    expect(client.getBooleanDetails('disabled', true)).toMatchObject({ value: true, reason: 'DISABLED' });
    expect(client.getStringDetails('nope', 'x')).toMatchObject({
      value: 'x',
      reason: 'ERROR',
      errorCode: ErrorCode.FLAG_NOT_FOUND,
    });
    expect(client.getNumberDetails('theme', 3)).toMatchObject({
      value: 3,
      reason: 'ERROR',
      errorCode: ErrorCode.TYPE_MISMATCH,
    });
  });

  it('emits ConfigurationChanged with the flags whose value changed for the user', async () => {
    const client = await openFeature(provider(), { targetingKey: 'alice' });
    const socket = FakeSocket.opened.at(-1)!;
    socket.open();
    const changed = nextEvent(client, ProviderEvents.ConfigurationChanged);
    // The client said hello without a revision (nothing cached): the server answers with a snapshot.
    const [, ...others] = FLAGS;
    socket.receive({
      type: 'snapshot',
      revision: 2,
      flags: [boolFlag('new-checkout', { version: 2, killed: true }), ...others],
      segments: [],
    });
    expect((await changed)?.flagsChanged).toEqual(['new-checkout']);
    expect(client.getBooleanDetails('new-checkout', false)).toMatchObject({
      value: false,
      reason: 'DISABLED',
      flagMetadata: { killed: true, version: '2' },
    });
  });
});
