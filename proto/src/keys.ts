import { z } from 'zod';

/** Flag, segment and variant keys: a letter or digit, then up to 127 of `A-Za-z0-9._-`. */
export const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Environment names are keys too; they appear in URLs and Redis key names. */
export const keySchema = z.string().regex(KEY_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$');

/** An attribute path into the evaluation context, e.g. `country` or `device.os.version`. */
export const attributePathSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^.]+(\.[^.]+)*$/, 'must be a dot path with no empty segment');

export const environmentSchema = keySchema.describe('An environment, e.g. production or staging');
