// Structural diffs of JSON values, for the editor's "review before save" and the audit's before/after.

/** One difference, at a path written the way the server's 400 details name fields (`rules[0].id`). */
export interface Change {
  path: string;
  kind: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Appends a key or an index to a path as the server writes field paths. */
export function joinPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const plain = /^[A-Za-z_$][\w$]*$/.test(key);
  if (!plain) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Deep equality of JSON values (object key order does not matter, array order does). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * Every difference from `before` to `after`, deepest first-level paths first in document order.
 * Objects are compared key by key (an `undefined` property counts as absent). Arrays of objects
 * that carry an identity (`id`, `key`, or `variant`) are matched by it, so moving or inserting a rule
 * reports that rule, not every rule after it; other arrays are compared index by index, and a
 * primitive array that changed is reported whole.
 */
export function diff(before: unknown, after: unknown, path = ''): Change[] {
  if (jsonEqual(before, after)) return [];
  if (isObject(before) && isObject(after)) {
    const changes: Change[] = [];
    const keys = [...Object.keys(before)];
    for (const k of Object.keys(after)) if (!keys.includes(k)) keys.push(k);
    for (const k of keys) {
      const b = before[k];
      const a = after[k];
      const p = joinPath(path, k);
      if (b === undefined && a !== undefined) changes.push({ path: p, kind: 'added', after: a });
      else if (b !== undefined && a === undefined) changes.push({ path: p, kind: 'removed', before: b });
      else changes.push(...diff(b, a, p));
    }
    return changes;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const id = identityOf(before, after);
    if (id)
      return diffById(before as Record<string, unknown>[], after as Record<string, unknown>[], id, path);
    if (before.every((x) => !isObject(x) && !Array.isArray(x)) && after.every((x) => !isObject(x))) {
      return [{ path, kind: 'changed', before, after }];
    }
    const changes: Change[] = [];
    const n = Math.max(before.length, after.length);
    for (let i = 0; i < n; i++) {
      const p = joinPath(path, i);
      if (i >= before.length) changes.push({ path: p, kind: 'added', after: after[i] });
      else if (i >= after.length) changes.push({ path: p, kind: 'removed', before: before[i] });
      else changes.push(...diff(before[i], after[i], p));
    }
    return changes;
  }
  return [{ path, kind: 'changed', before, after }];
}

const IDENTITIES = ['id', 'key', 'variant', 'flag'] as const;

/** The property that identifies every element of both arrays uniquely, if there is one. */
function identityOf(before: unknown[], after: unknown[]): string | undefined {
  const all = [...before, ...after];
  if (all.length === 0 || !all.every(isObject)) return undefined;
  for (const id of IDENTITIES) {
    const unique = (list: unknown[]) => {
      const seen = new Set<unknown>();
      for (const x of list) {
        const v = (x as Record<string, unknown>)[id];
        if (typeof v !== 'string' || seen.has(v)) return false;
        seen.add(v);
      }
      return true;
    };
    if (unique(before) && unique(after)) return id;
  }
  return undefined;
}

function diffById(
  before: Record<string, unknown>[],
  after: Record<string, unknown>[],
  id: string,
  path: string,
): Change[] {
  const changes: Change[] = [];
  const oldIndex = new Map(before.map((x, i) => [x[id] as string, i]));
  const newIds = new Set(after.map((x) => x[id] as string));
  before.forEach((x, i) => {
    if (!newIds.has(x[id] as string)) changes.push({ path: joinPath(path, i), kind: 'removed', before: x });
  });
  after.forEach((x, i) => {
    const j = oldIndex.get(x[id] as string);
    const p = joinPath(path, i);
    if (j === undefined) changes.push({ path: p, kind: 'added', after: x });
    else changes.push(...diff(before[j], x, p));
  });
  const kept = after.map((x) => x[id] as string).filter((k) => oldIndex.has(k));
  const keptBefore = before.map((x) => x[id] as string).filter((k) => newIds.has(k));
  if (kept.join('\u0000') !== keptBefore.join('\u0000')) {
    changes.push({ path, kind: 'changed', before: keptBefore, after: kept });
  }
  return changes;
}

/** A line of a unified text diff. */
export interface DiffLine {
  kind: 'same' | 'added' | 'removed';
  text: string;
}

/**
 * A line diff of two texts (longest common subsequence), for the before/after of a whole document.
 * Quadratic in lines, so callers keep it to documents of a few thousand lines.
 */
export function lineDiff(before: string, after: string): DiffLine[] {
  const a = before.split('\n');
  const b = after.split('\n');
  // Trim the common head and tail first: most edits touch a few lines of a long document.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++;
  const am = a.slice(head, a.length - tail);
  const bm = b.slice(head, b.length - tail);
  const n = am.length;
  const m = bm.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = am[i] === bm[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = a.slice(0, head).map((text) => ({ kind: 'same', text }));
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (am[i] === bm[j]) {
      out.push({ kind: 'same', text: am[i]! });
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push({ kind: 'removed', text: am[i++]! });
    else out.push({ kind: 'added', text: bm[j++]! });
  }
  while (i < n) out.push({ kind: 'removed', text: am[i++]! });
  while (j < m) out.push({ kind: 'added', text: bm[j++]! });
  for (const text of a.slice(a.length - tail)) out.push({ kind: 'same', text });
  return out;
}

/** JSON with sorted object keys, so two documents diff by content rather than by key order. */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) ?? 'undefined';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) if (value[k] !== undefined) out[k] = sortKeys(value[k]);
    return out;
  }
  return value;
}
