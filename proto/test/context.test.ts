import { describe, expect, it } from 'vitest';
import { contextSchema, MAX_CONTEXT_JSON_LENGTH } from '../src/index.js';

describe('the context limit, one rule for every evaluator', () => {
  it('puts no limit on the key: a key over 1,024 characters is a valid context', () => {
    expect(contextSchema.safeParse({ key: 'k'.repeat(1025) }).success).toBe(true);
    expect(contextSchema.safeParse({ key: 'k'.repeat(60_000), plan: 'pro' }).success).toBe(true);
  });

  it('refuses only a context over MAX_CONTEXT_JSON_LENGTH characters of JSON, naming no field but the context', () => {
    const filler = (length: number) => ({
      key: 'u',
      pad: 'x'.repeat(length - JSON.stringify({ key: 'u', pad: '' }).length),
    });
    expect(JSON.stringify(filler(MAX_CONTEXT_JSON_LENGTH)).length).toBe(MAX_CONTEXT_JSON_LENGTH);
    expect(contextSchema.safeParse(filler(MAX_CONTEXT_JSON_LENGTH)).success).toBe(true);
    const over = contextSchema.safeParse(filler(MAX_CONTEXT_JSON_LENGTH + 1));
    expect(over.success).toBe(false);
    expect(over.error?.issues.map((i) => i.path)).toEqual([[]]);
  });
});
