import type { ChangedKeys } from '@vigil/core';
import type { VigilSdkError } from './errors.js';

/** Where the flags being served came from. */
export type FlagSource = 'bootstrap' | 'stream' | 'poll';

/** The client's events and their arguments. */
export interface ClientEvents {
  /** Flags are loaded for the first time (from bootstrap, stream or poll). */
  ready: [source: FlagSource];
  /** Flags changed; `keys` are the flags whose evaluation may differ, `changed` adds segments. */
  change: [keys: string[], changed: ChangedKeys];
  /** Something went wrong; the client carries on unless the code is `VIGIL_SDK_UNAUTHORIZED`/`FORBIDDEN`. */
  error: [error: VigilSdkError];
  /** The live connection was lost: flags are the last known ones until the client is in sync again. */
  stale: [];
}

export type EventName = keyof ClientEvents;
export type Listener<E extends EventName> = (...args: ClientEvents[E]) => void;

/**
 * A small typed emitter that never throws: unlike Node's EventEmitter, an `error` with no listener is
 * not thrown (it would crash the process from a timer), and a listener that throws is reported to
 * `onListenerError` without stopping the others.
 */
export class Emitter {
  private readonly listeners: { [E in EventName]?: Set<Listener<E>> } = {};

  constructor(private readonly onListenerError: (event: EventName, error: unknown) => void) {}

  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    let set = this.listeners[event] as Set<Listener<E>> | undefined;
    if (!set) {
      set = new Set();
      (this.listeners as Record<string, Set<Listener<E>>>)[event] = set;
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<E extends EventName>(event: E, listener: Listener<E>): void {
    (this.listeners[event] as Set<Listener<E>> | undefined)?.delete(listener);
  }

  /** Number of listeners for an event. */
  count(event: EventName): number {
    return this.listeners[event]?.size ?? 0;
  }

  emit<E extends EventName>(event: E, ...args: ClientEvents[E]): void {
    const set = this.listeners[event] as Set<Listener<E>> | undefined;
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
  }

  clear(): void {
    for (const key of Object.keys(this.listeners)) delete this.listeners[key as EventName];
  }
}
