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
} from '@openfeature/server-sdk';
import {
  type EvaluationDetail,
  fromOpenFeatureContext,
  openFeatureMetadata,
  openFeatureNotReady,
  openFeatureResolution,
} from '@vigil/core';
import type { VariantValue } from '@vigil/proto';
import { createClient, type VigilClient } from './client.js';
import { describe, isVigilSdkError } from './errors.js';
import type { ClientOptions } from './options.js';

/** How the provider behaves; every field is optional. */
export interface VigilProviderOptions {
  /**
   * How long `initialize` waits for flags (default 10 s). Past it the provider is in `ERROR` (evaluations
   * return the caller's defaults with `PROVIDER_NOT_READY`) and turns `READY` when flags arrive.
   */
  readyTimeoutMs?: number;
  /**
   * What a disabled or killed flag resolves to, with reason `DISABLED` either way: `'default'` (the
   * default) returns the caller's default value, as OpenFeature's conformance suite expects;
   * `'offVariant'` returns the flag's `offVariant`, as Vigil's own API does.
   */
  disabledValue?: 'default' | 'offVariant';
  /** The flag metadata returned with each resolution; `vigilFlagMetadata` when absent. */
  flagMetadata?: (flagKey: string, detail: EvaluationDetail) => FlagMetadata;
  /** How often a stale provider checks whether the client is in step again (default 1 s). */
  recoveryCheckMs?: number;
}

/**
 * Vigil's default flag metadata: `version` (the flag's version, as a string — the key OpenFeature's
 * telemetry reads for `feature_flag.version`), `ruleId` when a rule decided, and `killed` for a killed flag.
 */
export const vigilFlagMetadata = (_flagKey: string, detail: EvaluationDetail): FlagMetadata =>
  openFeatureMetadata(detail);

/** OpenFeature's context as a Vigil context (see `fromOpenFeatureContext`). */
export const toVigilContext = (context: EvaluationContext): Record<string, unknown> =>
  fromOpenFeatureContext(context);

function isClient(value: VigilClient | ClientOptions): value is VigilClient {
  return (
    typeof (value as VigilClient).detail === 'function' && typeof (value as VigilClient).on === 'function'
  );
}

/**
 * An OpenFeature server provider (for `@openfeature/server-sdk`) over a Vigil Node client: flags are
 * evaluated in process, synchronously, on the flags the client holds. Give it a client (the application
 * keeps owning it, so scopes and metrics keep working, and `onClose` leaves it open) or the client's
 * options (the provider creates the client and closes it on `onClose`).
 */
export class VigilProvider implements Provider {
  readonly metadata = { name: 'vigil' } as const;
  readonly runsOn = 'server';
  readonly events = new OpenFeatureEventEmitter();
  /** The Vigil client evaluations go to. */
  readonly client: VigilClient;

  private readonly ownsClient: boolean;
  private readonly readyTimeoutMs: number;
  private readonly disabledDefault: boolean;
  private readonly flagMetadata: (flagKey: string, detail: EvaluationDetail) => FlagMetadata;
  private readonly recoveryCheckMs: number;
  private readonly unsubscribe: (() => void)[] = [];
  /** `initialize` resolved: later failures are reported as events. */
  private initialized = false;
  /** `initialize` gave up waiting: the client's `ready` must be announced. */
  private initFailed = false;
  private recovery: NodeJS.Timeout | undefined;

  constructor(client: VigilClient | ClientOptions, options: VigilProviderOptions = {}) {
    this.ownsClient = !isClient(client);
    this.client = isClient(client) ? client : createClient(client);
    this.readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
    this.disabledDefault = (options.disabledValue ?? 'default') === 'default';
    this.flagMetadata = options.flagMetadata ?? vigilFlagMetadata;
    this.recoveryCheckMs = options.recoveryCheckMs ?? 1000;

    this.unsubscribe.push(
      this.client.on('change', (keys) =>
        this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: keys }),
      ),
      this.client.on('ready', () => {
        if (!this.initFailed) return;
        this.initFailed = false;
        this.initialized = true;
        this.events.emit(ProviderEvents.Ready, { message: 'flags loaded' });
      }),
      this.client.on('stale', () => {
        this.events.emit(ProviderEvents.Stale, {
          message: 'connection to the flag server lost; serving the last known flags',
        });
        this.watchRecovery();
      }),
      this.client.on('error', (error) => {
        // Only a refused key is final; other errors are retried by the client (and show as stale).
        if (!this.initialized) return;
        if (
          isVigilSdkError(error, 'VIGIL_SDK_UNAUTHORIZED') ||
          isVigilSdkError(error, 'VIGIL_SDK_FORBIDDEN')
        ) {
          // ERROR, not FATAL: the last known flags keep being served rather than every caller's default.
          this.events.emit(ProviderEvents.Error, { message: error.message });
        }
      }),
    );
  }

  /** Waits for the client's flags (at once with a bootstrap); a refused SDK key is fatal. */
  async initialize(): Promise<void> {
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

  /** Stops listening to the client, and closes it when the provider created it. */
  async onClose(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    this.stopRecovery();
    if (this.ownsClient) await this.client.close();
  }

  async resolveBooleanEvaluation(
    flagKey: string,
    defaultValue: boolean,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<boolean>> {
    return this.resolve(flagKey, defaultValue, false, context);
  }

  async resolveStringEvaluation(
    flagKey: string,
    defaultValue: string,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<string>> {
    return this.resolve(flagKey, defaultValue, '', context);
  }

  async resolveNumberEvaluation(
    flagKey: string,
    defaultValue: number,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<number>> {
    return this.resolve(flagKey, defaultValue, 0, context);
  }

  async resolveObjectEvaluation<T extends JsonValue>(
    flagKey: string,
    defaultValue: T,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<T>> {
    return this.resolve(flagKey, defaultValue, {}, context);
  }

  /**
   * One evaluation. `kind` is a value of the type asked for: Vigil checks the flag's type against it
   * (so a `null` or mistyped default cannot pass a check it should fail), while errors return `defaultValue`.
   */
  private resolve<T>(
    flagKey: string,
    defaultValue: T,
    kind: VariantValue,
    context: EvaluationContext,
  ): ResolutionDetails<T> {
    if (!this.client.ready) return openFeatureNotReady(defaultValue, ErrorCode.PROVIDER_NOT_READY);
    const detail = this.client.detail(flagKey, toVigilContext(context), kind) as EvaluationDetail;
    return openFeatureResolution(
      detail,
      defaultValue,
      this.disabledDefault,
      this.flagMetadata(flagKey, detail),
      ErrorCode,
    );
  }

  /** The client says when it goes stale but not when it is in step again, so a stale provider checks. */
  private watchRecovery(): void {
    if (this.recovery) return;
    this.recovery = setInterval(() => {
      if (this.client.stats().stale) return;
      this.stopRecovery();
      this.events.emit(ProviderEvents.Ready, { message: 'in step with the flag server again' });
    }, this.recoveryCheckMs);
    this.recovery.unref();
  }

  private stopRecovery(): void {
    clearInterval(this.recovery);
    this.recovery = undefined;
  }
}
