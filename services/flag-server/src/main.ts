#!/usr/bin/env node
import { startServer } from './run.js';

startServer().catch((error: unknown) => {
  process.stderr.write(
    `vigil-server: failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
