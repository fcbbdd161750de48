import type { FlagSpec, User } from './fixture.js';

/** `hash`: the rule matches and the rollout hashes the user; `short`: the rule's clause fails first. */
export type Path = 'hash' | 'short';
export const PATHS: readonly Path[] = ['hash', 'short'];

/** One SDK with the benchmark flag loaded and the users already in its context shape. */
export interface Harness {
  /**
   * Evaluates the flag once for every user of the path and returns how many were served `true`.
   * Each SDK writes its own loop so every call site stays monomorphic.
   */
  sweep(path: Path): number | Promise<number>;
  close(): Promise<void> | void;
}

/** Something holding many flags in memory until closed. */
export interface Loaded {
  /** Evaluates the flag with this key for a targeted user, to show the load really happened. */
  probe(key: string, user: User): boolean | Promise<boolean>;
  close(): Promise<void> | void;
}

/** How the benchmark drives one SDK. */
export interface Sdk {
  readonly name: string;
  /** Whether an evaluation returns a promise (it is then awaited inside the timed loop). */
  readonly async: boolean;
  open(users: Readonly<Record<Path, readonly User[]>>): Promise<Harness>;
  /** Loads these flags, as a client receiving that many flags would. */
  loadMany(flags: readonly FlagSpec[]): Promise<Loaded>;
}
