import {
  ErrorCode,
  type EvaluationContext,
  type FlagMetadata,
  GeneralError,
  type JsonValue,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  ProviderFatalError,
  type ResolutionDetails,
} from '@openfeature/web-sdk';
import type { EvaluationDetail } from '@vigil/core';
import {
  fromOpenFeatureContext,
  openFeatureMetadata,
  openFeatureNotReady,
  openFeatureResolution,
} from '@vigil/core';
import type { VariantValue } from '@vigil/proto';
import { type ClientOptions, createClient, type VigilClient } from './client.js';
import { describe, isVigilSdkError } from './errors.js';

/** How the web provider behaves; every field is optional. */
export interface VigilWebProviderOptions {
  /**
   * How long `initialize` waits for flags (default 10 s); past it the provider is in `ERROR` until they
   * come, and evaluations return the caller's defaults with `PROVIDER_NOT_READY`.
   */
  readyTimeoutMs?: number;
  /**
   * What a disabled or killed flag resolves to, with reason `DISABLED` either way: the caller's default
   * (`'default'`, as OpenFeature expects) or the flag's `offVariant` (`'offVariant'`, as Vigil's own API).
   */
  disabledValue?: 'default' | 'offVariant';
  /** The flag metadata returned with each resolution; `version`, `ruleId` and `killed` when absent. */
  flagMetadata?: (flagKey: string, detail: EvaluationDetail) => FlagMetadata;
}

/** The browser client's options, the user coming from OpenFeature's context instead. */
export type VigilWebClientOptions = Omit<ClientOptions, 'context'> & { context?: ClientOptions['context'] };

const vigilFlagMetadata = (_flagKey: string, detail: EvaluationDetail): FlagMetadata =>
  openFeatureMetadata(detail);

function isClient(value: VigilClient | VigilWebClientOptions): value is VigilClient {
  return (
    typeof (value as VigilClient).identify === 'function' && typeof (value as VigilClient).on === 'function'
  );
}

/**
 * An OpenFeature web provider (for `@openfeature/web-sdk`, static context) over Vigil's browser client:
 * OpenFeature's context is the user (`identify`), and evaluations are synchronous reads of the flags the
 * client evaluated for them. Give it a client (left open by `onClose`) or the client's options (the
 * provider creates the client and closes it on `onClose`).
 */
export class VigilWebProvider implements Provider {
  readonly metadata = { name: 'vigil' } as const;
  readonly runsOn = 'client';
  readonly events = new OpenFeatureEventEmitter();
  readonly client: VigilClient;

  private readonly ownsClient: boolean;
  private readonly readyTimeoutMs: number;
  private readonly disabledDefault: boolean;
  private readonly flagMetadata: (flagKey: string, detail: EvaluationDetail) => FlagMetadata;
  private readonly unsubscribe: (() => void)[] = [];
  private initialized = false;
  private initFailed = false;
  /** Set while `identify` runs: its `change` is a context change, which the SDK announces itself. */
  private identifying = false;

  constructor(client: VigilClient | VigilWebClientOptions, options: VigilWebProviderOptions = {}) {
    this.ownsClient = !isClient(client);
    this.client = isClient(client) ? client : createClient({ ...client, context: client.context ?? {} });
    this.readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
    this.disabledDefault = (options.disabledValue ?? 'default') === 'default';
    this.flagMetadata = options.flagMetadata ?? vigilFlagMetadata;

    this.unsubscribe.push(
      this.client.on('change', (keys) => {
        if (!this.identifying) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: keys });
      }),
      this.client.on('ready', () => {
        if (!this.initFailed) return;
        this.initFailed = false;
        this.initialized = true;
        this.events.emit(ProviderEvents.Ready, { message: 'flags loaded' });
      }),
      this.client.on('error', (error) => {
        if (!this.initialized) return;
        if (
          isVigilSdkError(error, 'VIGIL_SDK_UNAUTHORIZED') ||
          isVigilSdkError(error, 'VIGIL_SDK_FORBIDDEN')
        ) {
          // ERROR, not FATAL: the flags held keep being served rather than every caller's default.
          this.events.emit(ProviderEvents.Error, { message: error.message });
        }
      }),
    );
  }

  /** Identifies OpenFeature's context (when it has one) and waits for flags; a refused key is fatal. */
  async initialize(context?: EvaluationContext): Promise<void> {
    if (context && Object.keys(context).length > 0) this.identify(context);
    let ready: boolean;
    try {
      ready = await this.client.waitForReady(this.readyTimeoutMs);
    } catch (error) {
      throw new ProviderFatalError(describe(error), { cause: error });
    }
    if (!ready) {
      this.initFailed = true;
      throw new GeneralError(
        `no flags within ${this.readyTimeoutMs} ms; the provider turns ready when they arrive`,
      );
    }
    this.initialized = true;
  }

  /** The user changed: re-evaluates every flag for them, synchronously (no network round trip). */
  onContextChange(_oldContext: EvaluationContext, newContext: EvaluationContext): void {
    this.identify(newContext);
  }

  /** Stops listening to the client, and closes it when the provider created it. */
  async onClose(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    if (this.ownsClient) this.client.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): ResolutionDetails<boolean> {
    return this.resolve(flagKey, defaultValue, false);
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string): ResolutionDetails<string> {
    return this.resolve(flagKey, defaultValue, '');
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number): ResolutionDetails<number> {
    return this.resolve(flagKey, defaultValue, 0);
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
    return this.resolve(flagKey, defaultValue, {});
  }

  private identify(context: EvaluationContext): void {
    this.identifying = true;
    try {
      this.client.identify(fromOpenFeatureContext(context));
    } finally {
      this.identifying = false;
    }
  }

  /** One evaluation for the identified user; `kind` is a value of the type asked for (see the server provider). */
  private resolve<T>(flagKey: string, defaultValue: T, kind: VariantValue): ResolutionDetails<T> {
    if (!this.client.ready) return openFeatureNotReady(defaultValue, ErrorCode.PROVIDER_NOT_READY);
    const detail = this.client.detail(flagKey, kind) as EvaluationDetail;
    return openFeatureResolution(
      detail,
      defaultValue,
      this.disabledDefault,
      this.flagMetadata(flagKey, detail),
      ErrorCode,
    );
  }
}
