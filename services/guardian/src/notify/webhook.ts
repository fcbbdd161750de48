import { createHmac, timingSafeEqual } from 'node:crypto';
import { incidentSchema } from '@vigil/proto';
import { z } from 'zod';
import type { WebhookIntegration } from './config.js';
import type { INCIDENT_EVENT_TYPES, IncidentEvent } from './events.js';
import { postJson } from './http.js';
import type { Notifier, NotifierOptions } from './notifier.js';
import { wantsEvent } from './notifier.js';

/** The request headers of a Vigil webhook delivery (lower-case, as Node reads them). */
export const WEBHOOK_HEADERS = {
  /** `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` */
  signature: 'x-vigil-signature',
  /** Unix seconds when the request was signed. */
  timestamp: 'x-vigil-timestamp',
  /** The delivery id: the same on every retry of one event; dedup on it. */
  delivery: 'x-vigil-delivery',
  /** The body's `type`, for routing without parsing. */
  event: 'x-vigil-event',
} as const;

/** The body's `type` for each incident event. */
export const WEBHOOK_EVENT_TYPES = [
  'incident.opened',
  'incident.escalated',
  'incident.acknowledged',
  'incident.resolved',
] as const satisfies readonly `incident.${(typeof INCIDENT_EVENT_TYPES)[number]}`[];

/** The JSON body of a Vigil webhook delivery. */
export const webhookPayloadSchema = z.strictObject({
  type: z.enum(WEBHOOK_EVENT_TYPES),
  /** The delivery id, as in `X-Vigil-Delivery`. */
  id: z.string().min(1),
  incident: incidentSchema,
  deliveredAt: z.iso.datetime(),
});
export type WebhookPayload = z.infer<typeof webhookPayloadSchema>;

/** The body for one attempt at delivering `event`. */
export function webhookPayload(event: IncidentEvent, deliveryId: string, now: number): WebhookPayload {
  return {
    type: `incident.${event.type}`,
    id: deliveryId,
    incident: event.incident,
    deliveredAt: new Date(now).toISOString(),
  };
}

/** `sha256=<hex>` over `timestamp + "." + body`, the value of `X-Vigil-Signature`. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface VerifyWebhookInput {
  /** The shared secret, or several while rotating it. */
  secret: string | string[];
  /** The raw request body, exactly as received (not re-serialised JSON). */
  body: string | Buffer;
  /** `X-Vigil-Timestamp` */
  timestamp: string | undefined;
  /** `X-Vigil-Signature` */
  signature: string | undefined;
  /** Epoch ms to judge the timestamp's age by (default: now). */
  now?: number;
  /** How old or how far ahead a timestamp may be, in seconds (default 300), against replays. */
  toleranceSeconds?: number;
}

/**
 * Whether a webhook request was signed by Vigil with the secret and recently: a receiver should
 * refuse the request (401) when this is false, then dedup on `X-Vigil-Delivery`.
 */
export function verifyWebhookSignature(input: VerifyWebhookInput): boolean {
  const { timestamp, signature } = input;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp) || !signature.startsWith('sha256='))
    return false;
  const ageSeconds = Math.abs((input.now ?? Date.now()) / 1000 - Number(timestamp));
  if (ageSeconds > (input.toleranceSeconds ?? 300)) return false;
  const given = Buffer.from(signature.slice('sha256='.length), 'hex');
  const body = typeof input.body === 'string' ? input.body : input.body.toString('utf8');
  const secrets = Array.isArray(input.secret) ? input.secret : [input.secret];
  return secrets.some((secret) => {
    const expected = Buffer.from(signWebhook(secret, timestamp, body).slice('sha256='.length), 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** POSTs signed incident events to a URL of your own. */
export function createWebhookNotifier(
  integration: WebhookIntegration,
  _options: NotifierOptions = {},
): Notifier {
  return {
    name: integration.name,
    type: 'webhook',
    wants: (event) => wantsEvent(integration, event),
    key: (_event, deliveryId) => deliveryId,
    async send(event, context) {
      const body = JSON.stringify(webhookPayload(event, context.deliveryId, context.now));
      const timestamp = String(Math.floor(context.now / 1000));
      const response = await postJson(integration.url, body, {
        headers: {
          ...integration.headers,
          [WEBHOOK_HEADERS.signature]: signWebhook(integration.secret, timestamp, body),
          [WEBHOOK_HEADERS.timestamp]: timestamp,
          [WEBHOOK_HEADERS.delivery]: context.deliveryId,
          [WEBHOOK_HEADERS.event]: `incident.${event.type}`,
        },
        timeoutMs: integration.timeoutMs,
        now: context.now,
      });
      return { status: response.status };
    },
  };
}
