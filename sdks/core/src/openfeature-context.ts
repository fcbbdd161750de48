import type { EvaluationDetail, EvaluationErrorCode } from './types.js';

/**
 * An OpenFeature evaluation context as a Vigil context: `targetingKey` becomes `key` (and wins over a
 * `key` attribute); `Date`s become ISO strings, which `before`/`after` read. Shared by the server and
 * web OpenFeature providers.
 */
export function fromOpenFeatureContext(context: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(context)) {
    if (name !== 'targetingKey') out[name] = plain(context[name]);
  }
  if (context.targetingKey !== undefined) out.key = context.targetingKey;
  return out;
}

function plain(value: unknown): unknown {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(value)) out[name] = plain((value as Record<string, unknown>)[name]);
    return out;
  }
  return value;
}

/**
 * Vigil's default OpenFeature flag metadata for an evaluation: `version` (the flag's version as a
 * string — the key OpenFeature's telemetry reads for `feature_flag.version`), `ruleId` when a rule
 * decided, and `killed` for a killed flag. Shared by the server and web providers.
 */
export function openFeatureMetadata(detail: EvaluationDetail): Record<string, string | boolean> {
  const metadata: Record<string, string | boolean> = {};
  if (detail.flagVersion !== undefined) metadata.version = String(detail.flagVersion);
  if (detail.ruleId !== undefined) metadata.ruleId = detail.ruleId;
  if (detail.detail === 'KILLED') metadata.killed = true;
  return metadata;
}

/** An evaluation as OpenFeature resolution details, with the error code in the caller's type. */
export interface OpenFeatureResolution<T, C, M> {
  value: T;
  variant?: string;
  reason: string;
  errorCode?: C;
  errorMessage?: string;
  flagMetadata: M;
}

/**
 * The resolution while the client holds no flags yet (none from the server, the cache or a bootstrap):
 * the caller's default with OpenFeature's `PROVIDER_NOT_READY` (`errorCode`, in the caller's type), not
 * `FLAG_NOT_FOUND` — the flag may well exist on the server. Shared by the server and web providers.
 */
export function openFeatureNotReady<T, C>(
  defaultValue: T,
  errorCode: C,
): OpenFeatureResolution<T, C, Record<string, never>> {
  return {
    value: defaultValue,
    reason: 'ERROR',
    errorCode,
    errorMessage: 'no flags from the flag server yet',
    flagMetadata: {},
  };
}

/**
 * An evaluation as OpenFeature resolves it, shared by the server and web providers: every error
 * (`TARGETING_KEY_MISSING` included) returns the caller's default with reason `ERROR`; a disabled or
 * killed flag returns the default too when `disabledDefault` (as OpenFeature's conformance suite
 * expects), else the `offVariant`, with reason `DISABLED` either way; `PREREQUISITE_FAILED` stays
 * Vigil's own reason (OpenFeature reasons are open strings). `errorCodes` is OpenFeature's `ErrorCode`
 * enum, whose members are named as Vigil's codes.
 */
export function openFeatureResolution<T, C, M>(
  detail: EvaluationDetail,
  defaultValue: T,
  disabledDefault: boolean,
  flagMetadata: M,
  errorCodes: Readonly<Record<EvaluationErrorCode, C>>,
): OpenFeatureResolution<T, C, M> {
  if (detail.errorCode !== undefined) {
    return {
      value: defaultValue,
      reason: 'ERROR',
      errorCode: errorCodes[detail.errorCode],
      errorMessage: detail.detail ?? detail.errorCode,
      flagMetadata,
    };
  }
  if (detail.reason === 'DISABLED' && disabledDefault) {
    return { value: defaultValue, reason: 'DISABLED', flagMetadata };
  }
  return { value: detail.value as T, variant: detail.variant, reason: detail.reason, flagMetadata };
}
