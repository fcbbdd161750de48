import type { Context } from './types.js';

/** Reads one attribute of a context; undefined when absent or not a plain value. */
export type AttributeGetter = (ctx: Context) => unknown;

// Paths through these would reach Object.prototype rather than the caller's data.
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

const absent: AttributeGetter = () => undefined;

function plain(value: unknown): unknown {
  return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
}

/** The property name when `path` is a single safe top-level attribute, else undefined. */
export function topLevelName(path: string): string | undefined {
  return path.includes('.') || FORBIDDEN.has(path) || path === '' ? undefined : path;
}

/** Compiles a dot path (`device.os.version`) into a getter; a one-part path is a single property read. */
export function attributeGetter(path: string): AttributeGetter {
  const parts = path.split('.');
  if (parts.some((part) => FORBIDDEN.has(part) || part === '')) return absent;
  if (parts.length === 1) {
    const name = parts[0]!;
    return (ctx) => plain(ctx[name]);
  }
  return (ctx) => {
    let value: unknown = ctx;
    for (let i = 0; i < parts.length; i++) {
      if (typeof value !== 'object' || value === null) return undefined;
      value = (value as Record<string, unknown>)[parts[i]!];
    }
    return plain(value);
  };
}

/** A string form of a bucketing attribute: strings as they are, finite numbers in decimal, else undefined. */
export function bucketValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}
