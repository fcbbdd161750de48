import { z } from 'zod';
import { flagSchema, segmentSchema } from './flag.js';
import { keySchema } from './keys.js';

/** Client → server, first message on a stream: who it is and the revision it already holds. */
export const helloMessageSchema = z.strictObject({
  type: z.literal('hello'),
  sdk: z.string().min(1).max(128),
  revision: z.int().min(0).optional(),
});

/** Server → client: the whole environment as the key may see it. */
export const snapshotMessageSchema = z.strictObject({
  type: z.literal('snapshot'),
  revision: z.int().min(0),
  flags: z.array(flagSchema),
  segments: z.array(segmentSchema),
});

/** Server → client: what changed since the client's revision (flags/segments upserted, keys deleted). */
export const patchMessageSchema = z.strictObject({
  type: z.literal('patch'),
  revision: z.int().min(0),
  flags: z.array(flagSchema),
  segments: z.array(segmentSchema),
  deleted: z.strictObject({ flags: z.array(keySchema), segments: z.array(keySchema) }),
});

/** Server → client before it closes the stream. */
export const errorMessageSchema = z.strictObject({
  type: z.literal('error'),
  code: z.string(),
  message: z.string(),
});

/** Heartbeats, either way; the other side answers a ping with a pong. */
export const pingMessageSchema = z.strictObject({ type: z.literal('ping'), at: z.number().optional() });
export const pongMessageSchema = z.strictObject({ type: z.literal('pong'), at: z.number().optional() });

export const serverMessageSchema = z.discriminatedUnion('type', [
  snapshotMessageSchema,
  patchMessageSchema,
  errorMessageSchema,
  pingMessageSchema,
  pongMessageSchema,
]);
export const clientMessageSchema = z.discriminatedUnion('type', [
  helloMessageSchema,
  pingMessageSchema,
  pongMessageSchema,
]);

export type HelloMessage = z.infer<typeof helloMessageSchema>;
export type SnapshotMessage = z.infer<typeof snapshotMessageSchema>;
export type PatchMessage = z.infer<typeof patchMessageSchema>;
export type ErrorMessage = z.infer<typeof errorMessageSchema>;
export type ServerMessage = z.infer<typeof serverMessageSchema>;
export type ClientMessage = z.infer<typeof clientMessageSchema>;

/** WebSocket close codes the server uses. */
export const CLOSE_CODES = {
  badKey: 4401,
  forbidden: 4403,
  protocol: 4400,
  tooSlow: 4408,
  shuttingDown: 4503,
} as const;
