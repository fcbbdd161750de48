import { FlagSet } from '@vigil/core';
import { BENCH_FLAG, FLAG_KEY, type FlagSpec, type User, vigilFlag } from './fixture.js';
import type { Path, Sdk } from './sdk.js';

function loadFlags(flags: readonly FlagSpec[]): FlagSet {
  const set = new FlagSet();
  set.load({ revision: 1, flags: flags.map((f) => vigilFlag(f)), segments: [] });
  return set;
}

/** Vigil's evaluator: flags compiled once by `FlagSet.load`, evaluated by `isEnabled`. */
export const vigil: Sdk = {
  name: '@vigil/core',
  async: false,
  async open(users) {
    const set = loadFlags([BENCH_FLAG]);
    // Vigil's context is the plain object the application already has; copied so no SDK shares objects.
    const toContext = (u: User): User => ({ key: u.key, country: u.country });
    const contexts: Record<Path, User[]> = {
      hash: users.hash.map(toContext),
      short: users.short.map(toContext),
    };
    const loop = (list: User[]): number => {
      let on = 0;
      for (let i = 0; i < list.length; i++) if (set.isEnabled(FLAG_KEY, list[i], false)) on++;
      return on;
    };
    return { sweep: (path) => loop(contexts[path]), close: () => {} };
  },
  async loadMany(flags) {
    const set = loadFlags(flags);
    return {
      probe: (key, u) => set.isEnabled(key, { key: u.key, country: u.country }, false),
      close: () => {},
    };
  },
};
