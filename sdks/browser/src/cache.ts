import type { FlagSnapshot } from '@vigil/core';
import { snapshotIssue } from '@vigil/core';

/** Bumped when the cached shape changes, so an old entry is ignored rather than misread. */
const FORMAT = 1;

/**
 * The last known flags in `localStorage` (or any `Storage`), one entry per server URL and client key,
 * so that a reload evaluates with them before the stream connects. Every access is guarded: storage
 * can be disabled, full, or throw in private modes, and none of that may reach the application.
 */
export class FlagCache {
  private readonly name: string;

  constructor(
    private readonly storage: Storage | undefined,
    url: string,
    clientKey: string,
  ) {
    this.name = `vigil:${FORMAT}:${url}:${clientKey}`;
  }

  /** The cached snapshot, or undefined when there is none (or it is unreadable). */
  read(): FlagSnapshot | undefined {
    try {
      const text = this.storage?.getItem(this.name);
      if (!text) return undefined;
      const data: unknown = JSON.parse(text);
      return snapshotIssue(data) === undefined ? (data as FlagSnapshot) : undefined;
    } catch {
      return undefined;
    }
  }

  write(snapshot: FlagSnapshot): void {
    try {
      this.storage?.setItem(this.name, JSON.stringify(snapshot));
    } catch {
      // Quota or privacy mode: the cache is an optimisation, the flags in memory still serve.
    }
  }

  clear(): void {
    try {
      this.storage?.removeItem(this.name);
    } catch {
      // as above
    }
  }
}

/** `window.localStorage`, or undefined where reading it throws (sandboxed iframes, disabled storage). */
export function defaultStorage(): Storage | undefined {
  try {
    return typeof localStorage === 'undefined' ? undefined : localStorage;
  } catch {
    return undefined;
  }
}
