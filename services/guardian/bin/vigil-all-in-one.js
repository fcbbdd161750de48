#!/usr/bin/env node
// `vigil-all-in-one`: runs the built flag server + guardian process (dist/, made by `pnpm build`: what
// an installed package holds). In a source checkout that has not been built it runs src/ through tsx,
// as `pnpm start` does, so that the bin works, and `pnpm install` can link it, before any build.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const built = new URL('../dist/all-in-one.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  // The workspace's packages resolve one another to their sources through this export condition.
  register(
    'data:text/javascript,export const resolve = (s, c, next) => next(s, { ...c, conditions: [...c.conditions, "@vigil/source"] });',
  );
  (await import('tsx/esm/api')).register();
  await import(new URL('../src/all-in-one.ts', import.meta.url).href);
}
