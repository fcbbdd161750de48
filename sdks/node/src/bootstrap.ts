import { readFileSync } from 'node:fs';
import type { FlagSnapshot } from '@vigil/core';
import { fieldPath, flagSchema, segmentSchema } from '@vigil/proto';
import { z } from 'zod';
import { describe, VigilSdkError } from './errors.js';
import type { BootstrapSnapshot } from './options.js';

/**
 * A snapshot as `GET /v1/flags` returns it (so `curl … > flags.json` makes a bootstrap file). Flags
 * written by hand may leave out defaulted fields; unknown top-level fields are ignored.
 */
export const snapshotBodySchema = z.object({
  revision: z.int().min(0).default(0),
  flags: z.array(flagSchema),
  segments: z.array(segmentSchema).default([]),
});

/** Reads and validates a bootstrap snapshot from an object or a JSON file; throws `VIGIL_SDK_BOOTSTRAP`. */
export function readBootstrap(source: string | BootstrapSnapshot): FlagSnapshot {
  let data: unknown = source;
  if (typeof source === 'string') {
    try {
      data = JSON.parse(readFileSync(source, 'utf8'));
    } catch (error) {
      throw new VigilSdkError('VIGIL_SDK_BOOTSTRAP', `cannot read ${source}: ${describe(error)}`, {
        cause: error,
      });
    }
  }
  const parsed = snapshotBodySchema.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      field: fieldPath(i.path) || '(snapshot)',
      message: i.message,
    }));
    const where = typeof source === 'string' ? source : 'bootstrap object';
    throw new VigilSdkError(
      'VIGIL_SDK_BOOTSTRAP',
      `${where} is not a snapshot: ${issues
        .slice(0, 5)
        .map((i) => `${i.field}: ${i.message}`)
        .join('; ')}${issues.length > 5 ? ` (and ${issues.length - 5} more)` : ''}`,
      { details: issues },
    );
  }
  return parsed.data;
}
