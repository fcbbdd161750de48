import { performance } from 'node:perf_hooks';
import type { Context, EvaluationDetail, Widen } from '@vigil/core';
import type { VariantValue } from '@vigil/proto';
import type { ServedCohort } from './metrics.js';

export type { Widen } from '@vigil/core';

/** How a request ended; `latencyMs` defaults to the time since the scope was created. */
export interface Outcome {
  error: boolean;
  latencyMs?: number;
}

/** What a scope needs from its client. */
export interface ScopeHost {
  evaluate<T extends VariantValue>(flag: string, context: Context, defaultValue?: T): EvaluationDetail<T>;
  record(cohorts: readonly ServedCohort[], error: boolean, latencyMs: number): void;
  /** Reports a context function that threw. */
  contextFailed(error: unknown): void;
}

const EMPTY: Context = Object.freeze({});

/**
 * One request's evaluator: the client's methods with the context bound, remembering each cohort
 * (flag, variant, version) it served so that `recordOutcome` can count the request's outcome against
 * every one of them. Made per request (`client.scope(context)`, or `request.flags` from the helpers);
 * never throws.
 */
export class Scope {
  private resolved?: Context;
  private readonly served: ServedCohort[] = [];
  private recorded = false;
  private readonly startedAt = performance.now();

  constructor(
    private readonly host: ScopeHost,
    /** The context, or a function giving it at the first evaluation (e.g. after authentication). */
    private readonly source: Context | (() => Context),
  ) {}

  /** The evaluation context (resolved on first use). */
  get context(): Context {
    if (this.resolved === undefined) {
      if (typeof this.source === 'function') {
        try {
          this.resolved = this.source() ?? EMPTY;
        } catch (error) {
          this.host.contextFailed(error);
          this.resolved = EMPTY;
        }
      } else this.resolved = this.source;
    }
    return this.resolved;
  }

  /** Whether a boolean flag is on; `defaultValue` for an unknown or non-boolean flag. */
  isEnabled(flag: string, defaultValue = false): boolean {
    return this.detail(flag, defaultValue).value;
  }

  /** The served variant's key, or undefined for an unknown flag. */
  variant(flag: string): string | undefined {
    return this.detail(flag).variant;
  }

  /** The served value when its type matches `defaultValue`'s, else `defaultValue`. */
  value<T extends VariantValue>(flag: string, defaultValue: T): Widen<T> {
    return this.detail(flag, defaultValue).value;
  }

  /** The full evaluation outcome (value, variant, reason). */
  detail<T extends VariantValue>(flag: string, defaultValue?: T): EvaluationDetail<Widen<T>> {
    const detail = this.host.evaluate(flag, this.context, defaultValue as Widen<T> | undefined);
    if (detail.variant !== undefined && detail.flagVersion !== undefined)
      this.remember(flag, detail.variant, detail.flagVersion);
    return detail;
  }

  /** The cohorts served so far. */
  cohorts(): readonly ServedCohort[] {
    return this.served;
  }

  /**
   * Counts the request's outcome against every cohort served. Only the first call counts (a response
   * can end in more than one way); returns whether this one did.
   */
  recordOutcome(outcome: Outcome): boolean {
    if (this.recorded) return false;
    this.recorded = true;
    if (this.served.length === 0) return true;
    const latency = outcome.latencyMs ?? performance.now() - this.startedAt;
    this.host.record(this.served, outcome.error === true, latency);
    return true;
  }

  private remember(flag: string, variant: string, version: number): void {
    for (const c of this.served)
      if (c.flag === flag && c.variant === variant && c.version === version) return;
    this.served.push({ flag, variant, version });
  }
}
