#!/usr/bin/env node
// `vigil`: runs the built CLI (dist/, made by `pnpm build`: what an installed package holds). In a
// source checkout that has not been built it runs src/ through tsx, as `pnpm vigil` does, so that the
// bin works, and `pnpm install` can link it, before any build.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const built = new URL('../dist/main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  // The workspace's packages resolve one another to their sources through this export condition.
  register(
    'data:text/javascript,export const resolve = (s, c, next) => next(s, { ...c, conditions: [...c.conditions, "@vigil/source"] });',
  );
  (await import('tsx/esm/api')).register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
