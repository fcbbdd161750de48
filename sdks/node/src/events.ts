import type { ChangedKeys } from '@vigil/core';
import type { VigilSdkError } from './errors.js';

/** Where the flags being served came from. */
export type FlagSource = 'bootstrap' | 'stream' | 'poll';

/** The client's events and their arguments (delivered by `@vigil/core`'s never-throwing emitter). */
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
