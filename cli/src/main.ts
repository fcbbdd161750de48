#!/usr/bin/env node
import { runCli } from './cli.js';

// `vigil … | head` closes stdout early; that is the reader's choice, not an error to report.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

// process.exitCode rather than process.exit(): a large --json document is flushed before the exit.
process.exitCode = await runCli(process.argv, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  environ: process.env,
  now: Date.now,
});
