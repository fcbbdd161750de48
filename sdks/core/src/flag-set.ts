import { type Flag, MAX_PREREQUISITE_DEPTH, type Segment, type VariantValue } from '@vigil/proto';
import { bucketValue } from './attributes.js';
import { allMatch, type SegmentLookup } from './clauses.js';
import { type CompiledFlag, type CompiledSegment, type CompiledServe, Compiler, kindOf } from './compile.js';
import type { Context, EvaluationDetail, EvaluationErrorCode, Reason } from './types.js';

/** A whole environment as the server sends it (snapshot message or `/v1/flags`). */
export interface FlagSnapshot {
  revision: number;
  flags: readonly Flag[];
  segments: readonly Segment[];
}

/** What changed since a revision (patch message). */
export interface FlagPatch extends FlagSnapshot {
  deleted: { flags: readonly string[]; segments: readonly string[] };
}

/** Keys whose evaluation may have changed, reported by `load` and `applyPatch`. */
export interface ChangedKeys {
  flags: string[];
  segments: string[];
}

// Reasons as small integers so the hot path stores a number, not a string.
const STATIC = 0;
const DEFAULT = 1;
const TARGETING_MATCH = 2;
const SPLIT = 3;
const DISABLED = 4;
const PREREQUISITE_FAILED = 5;
const KEY_MISSING = 6;
const FAILED = 7;
const REASONS: readonly Reason[] = [
  'STATIC',
  'DEFAULT',
  'TARGETING_MATCH',
  'SPLIT',
  'DISABLED',
  'PREREQUISITE_FAILED',
  'ERROR',
  'ERROR',
];

/** Prerequisite chains deeper than this fail (the server refuses them; this guards the rest). */
const MAX_DEPTH = MAX_PREREQUISITE_DEPTH;

const EMPTY_CONTEXT: Context = Object.freeze({});

/**
 * An environment's flags and segments, compiled, evaluated in-process. Evaluation is synchronous,
 * never throws and allocates nothing on `isEnabled`'s path; `detail` builds one result object.
 */
export class FlagSet implements SegmentLookup {
  private flags = new Map<string, CompiledFlag>();
  private segments = new Map<string, CompiledSegment>();
  private current = 0;
  // Outcome of the last `evaluateIndex`, read right after it (evaluation is synchronous).
  private reason = STATIC;
  private ruleIndex = -1;
  private killedHit = false;
  // Set when a prerequisite chain reaches MAX_DEPTH; it then fails every flag on the chain, up to the root.
  private tooDeep = false;
  // Prerequisite outcomes within one top-level evaluation (the context is the same throughout).
  private readonly memo = new Map<CompiledFlag, number>();

  /** The revision of the environment this set holds. */
  get revision(): number {
    return this.current;
  }

  /** Replaces everything with a snapshot; returns the keys that were added, changed or removed. */
  load(snapshot: FlagSnapshot): ChangedKeys {
    const flags = new Map<string, CompiledFlag>();
    const segments = new Map<string, CompiledSegment>();
    const changed: ChangedKeys = { flags: [], segments: [] };
    const compiler = new Compiler();
    for (const flag of snapshot.flags) {
      const old = this.flags.get(flag.key);
      flags.set(flag.key, old && old.version === flag.version ? old : compiler.compileFlag(flag));
      if (!old || old.version !== flag.version) changed.flags.push(flag.key);
    }
    for (const key of this.flags.keys()) if (!flags.has(key)) changed.flags.push(key);
    for (const segment of snapshot.segments) {
      const old = this.segments.get(segment.key);
      segments.set(
        segment.key,
        old && old.version === segment.version ? old : compiler.compileSegment(segment),
      );
      if (!old || old.version !== segment.version) changed.segments.push(segment.key);
    }
    for (const key of this.segments.keys()) if (!segments.has(key)) changed.segments.push(key);
    this.flags = flags;
    this.segments = segments;
    this.current = snapshot.revision;
    return changed;
  }

  /**
   * Applies a patch. Anything not newer than what the set holds is ignored: a patch whose revision is
   * not past the set's, and any flag or segment whose version is not past the one held.
   */
  applyPatch(patch: FlagPatch): ChangedKeys {
    const changed: ChangedKeys = { flags: [], segments: [] };
    if (patch.revision <= this.current) return changed;
    const compiler = new Compiler();
    for (const flag of patch.flags) {
      const old = this.flags.get(flag.key);
      if (old && old.version >= flag.version) continue;
      this.flags.set(flag.key, compiler.compileFlag(flag));
      changed.flags.push(flag.key);
    }
    for (const key of patch.deleted.flags) if (this.flags.delete(key)) changed.flags.push(key);
    for (const segment of patch.segments) {
      const old = this.segments.get(segment.key);
      if (old && old.version >= segment.version) continue;
      this.segments.set(segment.key, compiler.compileSegment(segment));
      changed.segments.push(segment.key);
    }
    for (const key of patch.deleted.segments) if (this.segments.delete(key)) changed.segments.push(key);
    this.current = patch.revision;
    return changed;
  }

  /** True when the set holds a flag with this key. */
  has(key: string): boolean {
    return this.flags.has(key);
  }

  /** The keys of every flag held. */
  keys(): string[] {
    return [...this.flags.keys()];
  }

  /** The version (revision of last change) of a flag, or undefined. */
  versionOf(key: string): number | undefined {
    return this.flags.get(key)?.version;
  }

  /** The variant keys of a flag, in order, or undefined. */
  variantsOf(key: string): readonly string[] | undefined {
    return this.flags.get(key)?.variants.keys;
  }

  /** Whether a boolean flag is on for the context; `defaultValue` when unknown or not boolean. */
  isEnabled(key: string, context: unknown, defaultValue = false): boolean {
    const flag = this.flags.get(key);
    if (flag === undefined || flag.variants.kind !== 'boolean') return defaultValue;
    return flag.variants.values[this.served(flag, context)] as boolean;
  }

  /** The served variant's key, or undefined for an unknown flag. */
  variant(key: string, context: unknown): string | undefined {
    const flag = this.flags.get(key);
    if (flag === undefined) return undefined;
    return flag.variants.keys[this.served(flag, context)];
  }

  /** The served value when its type matches `defaultValue`'s, else `defaultValue`. */
  value<T extends VariantValue>(key: string, context: unknown, defaultValue: T): T {
    const flag = this.flags.get(key);
    if (flag === undefined || flag.variants.kind !== kindOf(defaultValue)) return defaultValue;
    return flag.variants.values[this.served(flag, context)] as T;
  }

  /**
   * The full outcome, with OpenFeature reasons. With a `defaultValue`, a flag whose values are of
   * another type returns the default with `TYPE_MISMATCH`; an unknown flag returns it with `FLAG_NOT_FOUND`.
   */
  detail<T extends VariantValue>(key: string, context: unknown, defaultValue?: T): EvaluationDetail<T> {
    const flag = this.flags.get(key);
    if (flag === undefined) return failure(defaultValue as T, 'FLAG_NOT_FOUND', `flag "${key}" not found`);
    const kind = flag.variants.kind;
    if (defaultValue !== undefined && kind !== kindOf(defaultValue)) {
      return failure(defaultValue, 'TYPE_MISMATCH', `flag "${key}" is ${kind}, not ${kindOf(defaultValue)}`);
    }
    const index = this.served(flag, context);
    const result: EvaluationDetail<T> = {
      value: flag.variants.values[index] as T,
      variant: flag.variants.keys[index]!,
      reason: REASONS[this.reason]!,
      flagVersion: flag.version,
    };
    if (this.reason === KEY_MISSING) result.errorCode = 'TARGETING_KEY_MISSING';
    if (this.reason === FAILED) {
      result.errorCode = 'GENERAL';
      result.detail = 'the context could not be read';
    }
    if (this.killedHit) result.detail = 'KILLED';
    if (this.ruleIndex >= 0) result.ruleId = flag.rules[this.ruleIndex]!.id;
    return result;
  }

  /** Every flag's detail for one context (server-side evaluation, debugging). */
  detailAll(context: unknown, keys?: readonly string[]): Record<string, EvaluationDetail> {
    const out: Record<string, EvaluationDetail> = {};
    for (const key of keys ?? this.flags.keys()) out[key] = this.detail(key, context);
    return out;
  }

  /** `SegmentLookup`: whether a context (whose key attribute is `keyValue`) is in a segment. */
  segmentContains(segmentKey: string, ctx: Context, keyValue: unknown): boolean {
    const segment = this.segments.get(segmentKey);
    if (segment === undefined) return false;
    if (typeof keyValue === 'string') {
      if (segment.included.has(keyValue)) return true;
      if (segment.excluded.has(keyValue)) return false;
    }
    const rules = segment.rules;
    for (let i = 0; i < rules.length; i++) if (allMatch(rules[i]!, ctx, this)) return true;
    return false;
  }

  /**
   * The index of the variant served to `context`. A context that throws when read (a getter, a
   * Proxy) gets the off variant with `ERROR`/`GENERAL`: evaluation never throws into the caller.
   */
  private served(flag: CompiledFlag, context: unknown): number {
    try {
      return this.evaluateIndex(flag, asContext(context), 0);
    } catch {
      this.reason = FAILED;
      this.ruleIndex = -1;
      this.killedHit = false;
      return flag.offIndex;
    }
  }

  /** The index of the variant served; sets `reason`, `ruleIndex` and `killedHit`. */
  private evaluateIndex(flag: CompiledFlag, ctx: Context, depth: number): number {
    this.ruleIndex = -1;
    this.killedHit = flag.killed;
    if (!flag.live) {
      this.reason = DISABLED;
      return flag.offIndex;
    }
    if (flag.prerequisites.length > 0) {
      if (depth === 0) {
        this.tooDeep = false;
        this.memo.clear();
      }
      const passed = this.prerequisitesPass(flag, ctx, depth);
      // evaluating the prerequisites overwrote the outcome fields; they describe this flag again from here
      this.ruleIndex = -1;
      this.killedHit = false;
      if (!passed) {
        this.reason = PREREQUISITE_FAILED;
        return flag.offIndex;
      }
    }
    const rules = flag.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (allMatch(rule.clauses, ctx, this)) {
        this.ruleIndex = i;
        this.reason = rule.serve.variant >= 0 ? TARGETING_MATCH : SPLIT;
        return this.serve(flag, rule.serve, ctx);
      }
    }
    const fallthrough = flag.fallthrough;
    this.reason = fallthrough.variant < 0 ? SPLIT : rules.length > 0 ? DEFAULT : STATIC;
    return this.serve(flag, fallthrough, ctx);
  }

  private prerequisitesPass(flag: CompiledFlag, ctx: Context, depth: number): boolean {
    if (depth >= MAX_DEPTH) {
      this.tooDeep = true;
      return false;
    }
    for (const p of flag.prerequisites) {
      const required = this.flags.get(p.flag);
      if (required === undefined || !required.live) return false;
      // a flag required along several paths (a diamond) is evaluated once per top-level evaluation
      let index = this.memo.get(required);
      if (index === undefined) {
        index = this.evaluateIndex(required, ctx, depth + 1);
        this.memo.set(required, index);
      }
      // a chain that hit the limit fails all the way up; else a cycle's outcome hangs on MAX_DEPTH's parity
      if (this.tooDeep || required.variants.keys[index] !== p.variant) return false;
    }
    return true;
  }

  /** Runs a serve: a fixed variant, or the exposure check then the weighted split. */
  private serve(flag: CompiledFlag, serve: CompiledServe, ctx: Context): number {
    if (serve.variant >= 0) return serve.variant;
    const value = bucketValue(
      serve.bucketByName !== undefined ? ctx[serve.bucketByName] : serve.bucketBy(ctx),
    );
    if (value === undefined) {
      this.reason = KEY_MISSING;
      return flag.offIndex;
    }
    if (serve.exposure < 100_000 && flag.exposureBucketer!.bucket(value) >= serve.exposure)
      return flag.offIndex;
    const bucket = flag.bucketer!.bucket(value);
    const cumulative = serve.cumulative;
    for (let i = 0; i < cumulative.length; i++) if (bucket < cumulative[i]!) return serve.variants[i]!;
    return flag.offIndex;
  }
}

function asContext(context: unknown): Context {
  return typeof context === 'object' && context !== null ? (context as Context) : EMPTY_CONTEXT;
}

function failure<T>(value: T, errorCode: EvaluationErrorCode, message: string): EvaluationDetail<T> {
  return { value, reason: 'ERROR', errorCode, detail: message };
}
