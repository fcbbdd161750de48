import { RE2JS } from 're2js';

/** Longest regex source accepted by the `matches` operator. */
export const MAX_REGEX_LENGTH = 256;

/** A compiled `matches` pattern: `test` finds the pattern anywhere in the string, like `RegExp#test`. */
export interface MatchPattern {
  test(input: string): boolean;
}

/**
 * Compiles a `matches` pattern with RE2 (re2js, the same engine in Node and the browser), whose
 * matching time is linear in the input's length whatever the pattern: no pattern can freeze an
 * evaluator. RE2 syntax, no flags (write `(?i)` for case-insensitive). Throws, with the reason as
 * the message, for a pattern longer than {@link MAX_REGEX_LENGTH} or one RE2 refuses (a
 * backreference, a lookaround, an invalid pattern).
 */
export function compileMatchPattern(pattern: string): MatchPattern {
  if (pattern.length > MAX_REGEX_LENGTH) throw new Error(`regex longer than ${MAX_REGEX_LENGTH} characters`);
  try {
    return RE2JS.compile(pattern);
  } catch (error) {
    const reason = (error as Error).message.replace(/^error parsing regexp: /, '');
    throw new Error(`invalid regex (RE2 syntax): ${reason}`);
  }
}
