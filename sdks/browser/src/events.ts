import type { VigilSdkError } from './errors.js';

/** Where the flags being served came from. */
export type FlagSource = 'bootstrap' | 'cache' | 'stream' | 'poll';

/** The client's events and their arguments (delivered by `@vigil/core`'s never-throwing emitter). */
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
