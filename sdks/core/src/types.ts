import type { VariantValue } from '@vigil/proto';

/** Why a value was served; the names follow OpenFeature's resolution reasons. */
export type Reason =
  | 'STATIC'
  | 'DEFAULT'
  | 'TARGETING_MATCH'
  | 'SPLIT'
  | 'DISABLED'
  | 'PREREQUISITE_FAILED'
  | 'ERROR';

/** Set with reason `ERROR`; the names follow OpenFeature's error codes. */
export type EvaluationErrorCode = 'FLAG_NOT_FOUND' | 'TYPE_MISMATCH' | 'TARGETING_KEY_MISSING' | 'GENERAL';

/** The full outcome of one evaluation. */
export interface EvaluationDetail<T = VariantValue> {
  /** The served variant's value, or the caller's default on `FLAG_NOT_FOUND`/`TYPE_MISMATCH`. */
  value: T;
  /** The served variant's key; absent when the caller's default was returned. */
  variant?: string;
  reason: Reason;
  errorCode?: EvaluationErrorCode;
  /** Extra precision on the reason, e.g. `KILLED` for a killed flag. */
  detail?: string;
  /** The id of the rule that decided, for `TARGETING_MATCH`/`SPLIT` from a rule. */
  ruleId?: string;
  /** The flag's version (its last change's revision). */
  flagVersion?: number;
}

/** Any object; attributes are read by dot path. Evaluation accepts anything and never throws. */
export type Context = Readonly<Record<string, unknown>>;

/** A literal default widened to its type: `value(flag, ctx, 'blue')` is a `string`, not `'blue'`. */
export type Widen<T> = T extends boolean
  ? boolean
  : T extends string
    ? string
    : T extends number
      ? number
      : T;
