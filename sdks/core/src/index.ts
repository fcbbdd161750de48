export { attributeGetter, bucketValue } from './attributes.js';
export { Bucketer, bucketOf, bucketOfHash } from './bucketing.js';
export { type CompiledClause, clauseMatches, compileClause } from './clauses.js';
export { type CompiledFlag, Compiler, kindOf, type ValueKind, type VariantTable } from './compile.js';
export { type ChangedKeys, type FlagPatch, FlagSet, type FlagSnapshot } from './flag-set.js';
export { murmur3, murmur3Bytes, murmur3Continue, prefixState } from './murmur3.js';
export { compareSemver, parseSemver, type SemVer } from './semver.js';
export { LatencySketch } from './sketch.js';
export type { Context, EvaluationDetail, EvaluationErrorCode, Reason } from './types.js';
