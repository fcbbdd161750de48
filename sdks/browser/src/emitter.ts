import type { VigilSdkError } from './errors.js';

/** Where the flags being served came from. */
export type FlagSource = 'bootstrap' | 'cache' | 'stream' | 'poll';

/** The client's events and their arguments. */
export interface ClientEvents {
  /** Flags are there for the first time (bootstrap, localStorage cache, stream or poll). */
  ready: [source: FlagSource];
  /** What the current user is served changed (a flag update or `identify`): the flag keys affected. */
  change: [keys: string[]];
  /** Something went wrong; the client carries on unless the code is `VIGIL_SDK_UNAUTHORIZED`/`FORBIDDEN`. */
  error: [error: VigilSdkError];
}

export type EventName = keyof ClientEvents;
export type Listener<E extends EventName> = (...args: ClientEvents[E]) => void;

/** A small typed emitter that never throws: a listener that throws is reported without stopping the others. */
export class Emitter {
  private readonly listeners = new Map<EventName, Set<unknown>>();

  constructor(private readonly onListenerError: (event: EventName, error: unknown) => void) {}

  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<E extends EventName>(event: E, listener: Listener<E>): void {
    this.listeners.get(event)?.delete(listener);
  }

  emit<E extends EventName>(event: E, ...args: ClientEvents[E]): void {
    const set = this.listeners.get(event) as Set<Listener<E>> | undefined;
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
    this.listeners.clear();
  }
}
