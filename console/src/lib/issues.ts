import type { FieldIssue } from './api.js';

// The server's 400 details name fields by path (`rules[0].clauses[1].values`); the editor shows each
// issue on the field it names, and any it has no field for in the summary.

/** Issues about `path` itself or anything inside it (`values` also takes `values[2]`). */
export function issuesAt(issues: readonly FieldIssue[], path: string): FieldIssue[] {
  return issues.filter(
    (i) => i.field === path || i.field.startsWith(`${path}.`) || i.field.startsWith(`${path}[`),
  );
}

/** Issues no rendered field claimed: those whose path is under none of `shown`. */
export function unclaimed(issues: readonly FieldIssue[], shown: ReadonlySet<string>): FieldIssue[] {
  return issues.filter((i) => {
    for (const p of shown)
      if (i.field === p || i.field.startsWith(`${p}.`) || i.field.startsWith(`${p}[`)) return false;
    return true;
  });
}

/** A path as the server writes it, made of keys and indexes. */
export function fieldPath(...parts: (string | number)[]): string {
  let out = '';
  for (const p of parts) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}
