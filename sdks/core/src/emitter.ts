/**
 * A small typed emitter that never throws: unlike Node's EventEmitter, an `error` with no listener is
 * not thrown (it would crash the process from a timer), and a listener that throws is reported to
 * `onListenerError` without stopping the others. `Events` maps each event name to its arguments.
 */
export class Emitter<Events extends { [E in keyof Events]: unknown[] }> {
  private readonly listeners = new Map<keyof Events, Set<unknown>>();

  constructor(private readonly onListenerError: (event: keyof Events, error: unknown) => void) {}

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** Removes a listener. */
  off<E extends keyof Events>(event: E, listener: (...args: Events[E]) => void): void {
    this.listeners.get(event)?.delete(listener);
  }

  /** Calls every listener of `event`, in the order they were added, each guarded. */
  emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    const set = this.listeners.get(event) as Set<(...args: Events[E]) => void> | undefined;
    if (!set) return;
    // A copy: a listener may remove itself (or others) while the event is delivered.
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.listeners.clear();
  }
}
