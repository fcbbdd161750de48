import type { Flag, Rule, Segment, Serve, Variant, VariantValue } from '@vigil/proto';
import { type AttributeGetter, attributeGetter, topLevelName } from './attributes.js';
import { Bucketer } from './bucketing.js';
import { type CompiledClause, compileClause } from './clauses.js';

/** The type family of a flag's values, for OpenFeature-style typed evaluation. */
export type ValueKind = 'boolean' | 'string' | 'number' | 'object';

/** A flag's variants: keys and values by index, and the family of its values. */
export interface VariantTable {
  readonly keys: readonly string[];
  readonly values: readonly VariantValue[];
  readonly kind: ValueKind;
}

/**
 * A serve ready to run: a fixed variant, or a rollout with its cumulative weights. It holds nothing
 * derived from the salt (the flag's bucketers do), so equal serves are shared between flags.
 */
export interface CompiledServe {
  /** Fixed variant index, or -1 for a rollout. */
  readonly variant: number;
  readonly bucketBy: AttributeGetter;
  /** `bucketBy` when it is a top-level property, read directly on the hot path. */
  readonly bucketByName: string | undefined;
  /** Share of contexts taking part (thousandths of a percent); the rest sit out with the off variant. */
  readonly exposure: number;
  /** Running sums of the weights, and the variant index each range serves. */
  readonly cumulative: readonly number[];
  readonly variants: readonly number[];
}

export interface CompiledRule {
  readonly id: string;
  readonly clauses: readonly CompiledClause[];
  readonly serve: CompiledServe;
}

export interface CompiledPrerequisite {
  readonly flag: string;
  readonly variant: string;
}

/**
 * A flag compiled once on arrival, so evaluation does no parsing, salt hashing or lookup by name.
 * It keeps only what evaluation reads (not the source flag), and shares its variants, rules and
 * serves with other flags that have equal ones, to stay small with thousands of flags.
 */
export interface CompiledFlag {
  readonly key: string;
  readonly version: number;
  readonly variants: VariantTable;
  readonly offIndex: number;
  /** Serving normally: enabled and not killed. */
  readonly live: boolean;
  readonly killed: boolean;
  readonly prerequisites: readonly CompiledPrerequisite[];
  readonly rules: readonly CompiledRule[];
  readonly fallthrough: CompiledServe;
  /** `salt + ":"` prepared for the split hash; undefined when no serve is a rollout. */
  readonly bucketer: Bucketer | undefined;
  /** `salt + ":exposure:"` prepared; undefined when no rollout limits exposure. */
  readonly exposureBucketer: Bucketer | undefined;
}

export interface CompiledSegment {
  readonly version: number;
  readonly included: ReadonlySet<string>;
  readonly excluded: ReadonlySet<string>;
  readonly rules: readonly (readonly CompiledClause[])[];
}

/** The value family of a variant value: arrays and objects are both `object`. */
export function kindOf(value: unknown): ValueKind | undefined {
  switch (typeof value) {
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    case 'number':
      return 'number';
    case 'object':
      return value === null ? undefined : 'object';
    default:
      return undefined;
  }
}

const keyGetter = attributeGetter('key');
const NONE: readonly never[] = Object.freeze([]);

/**
 * Compiles flags and segments. Never throws: configuration the server would have refused (an
 * unknown variant, a bad regex) compiles to its safest meaning (the off variant, a clause that
 * never matches). Equal variant lists, rule lists and serves met by one compiler are compiled once
 * and shared; use one compiler per batch (a snapshot or a patch) so its table lives no longer.
 */
export class Compiler {
  private readonly shared = new Map<string, VariantTable | readonly CompiledRule[] | CompiledServe>();

  compileFlag(flag: Flag): CompiledFlag {
    const variants = this.variantTable(flag.variants, flag.offVariant);
    const offIndex = Math.max(0, variants.keys.indexOf(flag.offVariant));
    const context = `${variants.keys.join('\u0000')}\u0001${offIndex}`;
    const rules = flag.rules.length === 0 ? NONE : this.rules(flag.rules, variants, offIndex, context);
    const fallthrough = this.serve(flag.fallthrough, variants, offIndex, context);
    const salt = flag.salt ?? flag.key;
    let rollout = fallthrough.variant < 0;
    let exposure = fallthrough.exposure < 100_000;
    for (const rule of rules) {
      rollout ||= rule.serve.variant < 0;
      exposure ||= rule.serve.exposure < 100_000;
    }
    return {
      key: flag.key,
      version: flag.version,
      variants,
      offIndex,
      live: flag.enabled && !flag.killed,
      killed: flag.killed,
      prerequisites: flag.prerequisites.length === 0 ? NONE : flag.prerequisites.map((p) => ({ ...p })),
      rules,
      fallthrough,
      bucketer: rollout ? new Bucketer(salt) : undefined,
      exposureBucketer: exposure ? new Bucketer(`${salt}:exposure`) : undefined,
    };
  }

  /** Compiles a segment: key lists become sets, rules become compiled clauses. */
  compileSegment(segment: Segment): CompiledSegment {
    return {
      version: segment.version,
      included: new Set(segment.included),
      excluded: new Set(segment.excluded),
      rules: segment.rules.map((rule) => rule.filter((c) => c.op !== 'inSegment').map(compileClause)),
    };
  }

  private share<T extends VariantTable | readonly CompiledRule[] | CompiledServe>(
    key: string,
    build: () => T,
  ): T {
    const found = this.shared.get(key);
    if (found !== undefined) return found as T;
    const built = build();
    this.shared.set(key, built);
    return built;
  }

  private variantTable(variants: readonly Variant[], offVariant: string): VariantTable {
    return this.share(`v${JSON.stringify(variants)}\u0001${offVariant}`, () => {
      const off = variants.find((v) => v.key === offVariant) ?? variants[0];
      return {
        keys: variants.map((v) => v.key),
        values: variants.map((v) => v.value),
        kind: kindOf(off?.value) ?? 'object',
      };
    });
  }

  private rules(
    rules: readonly Rule[],
    variants: VariantTable,
    offIndex: number,
    context: string,
  ): readonly CompiledRule[] {
    return this.share(`r${context}\u0001${JSON.stringify(rules)}`, () =>
      rules.map((rule) => ({
        id: rule.id,
        clauses: rule.clauses.map(compileClause),
        serve: this.serve(rule.serve, variants, offIndex, context),
      })),
    );
  }

  private serve(serve: Serve, variants: VariantTable, offIndex: number, context: string): CompiledServe {
    return this.share(`s${context}\u0001${JSON.stringify(serve)}`, () => {
      const indexOf = (variant: string) => {
        const index = variants.keys.indexOf(variant);
        return index < 0 ? offIndex : index;
      };
      if ('variant' in serve) {
        return {
          variant: indexOf(serve.variant),
          bucketBy: keyGetter,
          bucketByName: 'key',
          exposure: 100_000,
          cumulative: NONE,
          variants: NONE,
        };
      }
      const { bucketBy, exposure, weights } = serve.rollout;
      let sum = 0;
      return {
        variant: -1,
        bucketBy: bucketBy ? attributeGetter(bucketBy) : keyGetter,
        bucketByName: topLevelName(bucketBy ?? 'key'),
        exposure: exposure ?? 100_000,
        cumulative: weights.map((w) => (sum += w.weight)),
        variants: weights.map((w) => indexOf(w.variant)),
      };
    });
  }
}
