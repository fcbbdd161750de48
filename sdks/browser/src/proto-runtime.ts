/**
 * What the bundles need of `@vigil/proto` at run time — a few limits, `parseTime` and the `matches`
 * compiler (RE2, so the page matches exactly as the server and the Node SDK do) — without the zod
 * schemas that `@vigil/proto`'s entry point builds on import (zod would triple the bundle). tsup maps
 * `@vigil/proto` here; types still come from `@vigil/proto`, and a test checks these values equal its own.
 */
export { compileMatchPattern, MAX_REGEX_LENGTH } from '../../../proto/src/regex.js';
export { parseTime } from '../../../proto/src/time.js';

/** `WEIGHT_TOTAL` of `@vigil/proto`: rollout weights sum to this (thousandths of a percent). */
export const WEIGHT_TOTAL = 100_000;
/** `MAX_PREREQUISITE_DEPTH` of `@vigil/proto`. */
export const MAX_PREREQUISITE_DEPTH = 16;
/** `CLOSE_CODES` of `@vigil/proto`: WebSocket close codes the server uses. */
export const CLOSE_CODES = {
  badKey: 4401,
  forbidden: 4403,
  protocol: 4400,
  tooSlow: 4408,
  shuttingDown: 4503,
} as const;
