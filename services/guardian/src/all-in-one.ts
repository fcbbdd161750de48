#!/usr/bin/env node
// `pnpm start`: the flag server and the guardian in one process. On the embedded store (the default)
// this is how the guardian runs at all: SDK metrics reach it through the store's in-process bus.
import { startServer } from '@vigil/server';
import { createGuardian } from './guardian.js';
import { GuardianSettingsError, loadGuardianConfig } from './settings.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadGuardianConfig>;
  try {
    config = loadGuardianConfig();
  } catch (error) {
    if (!(error instanceof GuardianSettingsError)) throw error;
    process.stderr.write(`vigil: ${error.message}\n`);
    process.exit(2);
  }
  const server = await startServer('vigil');
  const guardian = createGuardian({
    store: server.store,
    config,
    logger: server.logger.child({ component: 'guardian' }),
    registry: server.app.vigil.metrics.registry,
  });
  await guardian.start();
  server.onStop(() => guardian.stop());
  process.stdout.write(
    `Guardian running in this process: it watches guarded flags' cohorts and kills regressions.\n` +
      `Try it: REST under ${server.url}/api/v1, OpenAPI at ${server.url}/openapi.json, metrics at ${server.url}/metrics\n` +
      `console: ${server.url}/  (sign in with an admin, ops or read token)\n\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`vigil: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
