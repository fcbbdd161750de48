import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { incidentSchema } from '@vigil/proto';
import { z } from 'zod';

// Stand-ins for the services, on 127.0.0.1, that check each request against the fields the services
// document (schemas below, written from their API references, not from our code), fail the first
// requests on demand, and de-duplicate the way the services do, counting raw attempts as well.

/** What a receiver does to one request instead of answering normally. */
export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  /** Destroys the connection without answering. */
  | { kind: 'reset' }
  /** Processes the request, then never answers (the client times out). */
  | { kind: 'hang' };

export const fail500: Fault = { kind: 'status', status: 500, body: '{"status":"error"}' };
export const fail429 = (seconds: number): Fault => ({
  kind: 'status',
  status: 429,
  retryAfter: String(seconds),
});
export const reset: Fault = { kind: 'reset' };
export const hang: Fault = { kind: 'hang' };

export interface RawRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Reply {
  status: number;
  body?: unknown;
}

/** A local HTTP server with a fault script and a request log. */
export class Receiver {
  readonly attempts: RawRequest[] = [];
  /** Requests that broke the service's documented contract, with the reason. */
  readonly rejected: { request: RawRequest; reason: string }[] = [];
  faults: Fault[] = [];
  private server: Server | undefined;
  private readonly hung = new Set<ServerResponse>();

  constructor(private readonly handle: (request: RawRequest) => Reply) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const request: RawRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        this.attempts.push(request);
        const fault = this.faults.shift();
        if (fault?.kind === 'reset') {
          req.socket.destroy();
          return;
        }
        if (fault?.kind === 'status') {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (fault.retryAfter) headers['retry-after'] = fault.retryAfter;
          res.writeHead(fault.status, headers).end(fault.body ?? '');
          return;
        }
        const reply = this.reply(request);
        if (fault?.kind === 'hang') {
          this.hung.add(res);
          return;
        }
        const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {});
        res
          .writeHead(reply.status, {
            'content-type': typeof reply.body === 'string' ? 'text/plain' : 'application/json',
          })
          .end(body);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async close(): Promise<void> {
    for (const res of this.hung) res.destroy();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private reply(request: RawRequest): Reply {
    try {
      return this.handle(request);
    } catch (error) {
      const reason = error instanceof z.ZodError ? z.prettifyError(error) : String(error);
      this.rejected.push({ request, reason });
      return { status: 400, body: { error: reason } };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PagerDuty Events API v2 (PagerDuty/api-schema reference/events-v2/openapiv3.json;
// developer.pagerduty.com/docs/events-api-v2/trigger-events): routing_key is a 32-character
// integration key; dedup_key ≤ 255; payload.summary ≤ 1024; severity is one of four values.

const pdLink = z.strictObject({ href: z.url(), text: z.string().optional() });
export const pagerDutyTriggerSchema = z.strictObject({
  routing_key: z.string().length(32),
  event_action: z.literal('trigger'),
  dedup_key: z.string().min(1).max(255),
  payload: z.strictObject({
    summary: z.string().min(1).max(1024),
    source: z.string().min(1),
    severity: z.enum(['critical', 'error', 'warning', 'info']),
    timestamp: z.iso.datetime({ offset: true }).optional(),
    component: z.string().optional(),
    group: z.string().optional(),
    class: z.string().optional(),
    custom_details: z.record(z.string(), z.unknown()).optional(),
  }),
  client: z.string().optional(),
  client_url: z.url().optional(),
  links: z.array(pdLink).optional(),
  images: z
    .array(z.strictObject({ src: z.url(), href: z.url().optional(), alt: z.string().optional() }))
    .optional(),
});
export const pagerDutyUpdateSchema = z.strictObject({
  routing_key: z.string().length(32),
  event_action: z.enum(['acknowledge', 'resolve']),
  dedup_key: z.string().min(1).max(255),
});
export const pagerDutyEventSchema = z.union([pagerDutyTriggerSchema, pagerDutyUpdateSchema]);

export interface PagerDutyAlert {
  dedupKey: string;
  status: 'triggered' | 'acknowledged' | 'resolved';
  severity: string;
  summaries: string[];
  /** Accepted events, in order. */
  actions: string[];
}

/** PagerDuty's enqueue endpoint: one alert per dedup_key; acknowledge/resolve of an unknown key are dropped. */
export function pagerDutyReceiver(routingKey: string) {
  const alerts = new Map<string, PagerDutyAlert>();
  const dropped: z.infer<typeof pagerDutyUpdateSchema>[] = [];
  const receiver = new Receiver((request) => {
    if (request.method !== 'POST' || request.path !== '/v2/enqueue') return { status: 404 };
    const event = pagerDutyEventSchema.parse(JSON.parse(request.body));
    if (event.routing_key !== routingKey) return { status: 400, body: { status: 'invalid event' } };
    const alert = alerts.get(event.dedup_key);
    if (event.event_action === 'trigger') {
      if (!alert || alert.status === 'resolved') {
        alerts.set(event.dedup_key, {
          dedupKey: event.dedup_key,
          status: 'triggered',
          severity: event.payload.severity,
          summaries: [event.payload.summary],
          actions: ['trigger'],
        });
      } else {
        alert.summaries.push(event.payload.summary);
        alert.severity = event.payload.severity;
        alert.actions.push('trigger');
      }
    } else if (!alert || alert.status === 'resolved') {
      dropped.push(event);
    } else {
      alert.status = event.event_action === 'acknowledge' ? 'acknowledged' : 'resolved';
      alert.actions.push(event.event_action);
    }
    return {
      status: 202,
      body: { status: 'success', message: 'Event processed', dedup_key: event.dedup_key },
    };
  });
  return { receiver, alerts, dropped };
}

// ---------------------------------------------------------------------------------------------
// incident.io Incidents V2 (docs.incident.io/api-reference/incidents-v2/create and /edit):
// create requires idempotency_key, severity_id and visibility; mode ∈ standard|retrospective|test|
// tutorial; edit takes { incident: {...fields to change}, notify_incident_channel } (both required).

export const incidentIoCreateSchema = z.strictObject({
  idempotency_key: z.string().min(1),
  severity_id: z.string().min(1),
  visibility: z.enum(['public', 'private']),
  mode: z.enum(['standard', 'retrospective', 'test', 'tutorial']).optional(),
  name: z.string().min(1).optional(),
  summary: z.string().optional(),
  incident_type_id: z.string().min(1).optional(),
  incident_status_id: z.string().min(1).optional(),
  custom_field_entries: z.array(z.unknown()).optional(),
  incident_role_assignments: z.array(z.unknown()).optional(),
  incident_timestamp_values: z.array(z.unknown()).optional(),
  slack_channel_name_override: z.string().optional(),
  slack_team_id: z.string().optional(),
});
export const incidentIoEditSchema = z.strictObject({
  incident: z.strictObject({
    name: z.string().min(1).optional(),
    summary: z.string().optional(),
    severity_id: z.string().min(1).optional(),
    incident_status_id: z.string().min(1).optional(),
    call_url: z.string().optional(),
    custom_field_entries: z.array(z.unknown()).optional(),
    incident_role_assignments: z.array(z.unknown()).optional(),
    incident_timestamp_values: z.array(z.unknown()).optional(),
    slack_channel_name_override: z.string().optional(),
  }),
  notify_incident_channel: z.boolean(),
});

export interface IncidentIoIncident {
  id: string;
  idempotencyKey: string;
  name: string | undefined;
  summary: string | undefined;
  severityId: string;
  statusId: string | undefined;
  edits: z.infer<typeof incidentIoEditSchema>[];
}

/** incident.io's incidents API: creates are de-duplicated by idempotency_key (the first incident is returned). */
export function incidentIoReceiver(apiKey: string) {
  const incidents = new Map<string, IncidentIoIncident>();
  let creates = 0;
  const receiver = new Receiver((request) => {
    if (request.headers.authorization !== `Bearer ${apiKey}`) {
      return { status: 401, body: { type: 'authentication_error', status: 401 } };
    }
    if (request.method === 'POST' && request.path === '/v2/incidents') {
      creates++;
      const body = incidentIoCreateSchema.parse(JSON.parse(request.body));
      let incident = [...incidents.values()].find((i) => i.idempotencyKey === body.idempotency_key);
      if (!incident) {
        incident = {
          id: `01HIO${String(incidents.size + 1).padStart(4, '0')}`,
          idempotencyKey: body.idempotency_key,
          name: body.name,
          summary: body.summary,
          severityId: body.severity_id,
          statusId: body.incident_status_id,
          edits: [],
        };
        incidents.set(incident.id, incident);
      }
      return {
        status: 201,
        body: { incident: { id: incident.id, reference: `INC-${incidents.size}`, name: incident.name } },
      };
    }
    const edit = /^\/v2\/incidents\/([^/]+)\/actions\/edit$/.exec(request.path);
    if (request.method === 'POST' && edit) {
      const incident = incidents.get(decodeURIComponent(edit[1]!));
      if (!incident) return { status: 404, body: { type: 'not_found', status: 404 } };
      const body = incidentIoEditSchema.parse(JSON.parse(request.body));
      incident.edits.push(body);
      if (body.incident.summary !== undefined) incident.summary = body.incident.summary;
      if (body.incident.severity_id) incident.severityId = body.incident.severity_id;
      if (body.incident.incident_status_id) incident.statusId = body.incident.incident_status_id;
      return { status: 200, body: { incident: { id: incident.id } } };
    }
    return { status: 404 };
  });
  return { receiver, incidents, creates: () => creates };
}

// ---------------------------------------------------------------------------------------------
// Slack incoming webhook with Block Kit (docs.slack.dev/messaging/sending-messages-using-incoming-
// webhooks; docs.slack.dev/reference/block-kit/blocks): `text` + ≤ 50 blocks; header plain_text
// ≤ 150; section text ≤ 3000 and ≤ 10 fields of ≤ 2000; context 1..10 elements; actions 1..25
// elements; button text ≤ 75, url ≤ 3000, action_id ≤ 255; block_id ≤ 255 and unique in a message.

const plainText = (max: number) =>
  z.strictObject({
    type: z.literal('plain_text'),
    text: z.string().min(1).max(max),
    emoji: z.boolean().optional(),
  });
const mrkdwnText = (max: number) =>
  z.strictObject({
    type: z.literal('mrkdwn'),
    text: z.string().min(1).max(max),
    verbatim: z.boolean().optional(),
  });
const textObject = (max: number) => z.union([plainText(max), mrkdwnText(max)]);
const blockId = z.string().min(1).max(255).optional();
export const slackBlockSchema = z.union([
  z.strictObject({ type: z.literal('header'), block_id: blockId, text: plainText(150) }),
  z
    .strictObject({
      type: z.literal('section'),
      block_id: blockId,
      text: textObject(3000).optional(),
      fields: z.array(textObject(2000)).min(1).max(10).optional(),
      accessory: z.unknown().optional(),
    })
    .refine((s) => s.text !== undefined || s.fields !== undefined, 'a section needs text or fields'),
  z.strictObject({
    type: z.literal('context'),
    block_id: blockId,
    elements: z.array(textObject(3000)).min(1).max(10),
  }),
  z.strictObject({
    type: z.literal('actions'),
    block_id: blockId,
    elements: z
      .array(
        z.strictObject({
          type: z.literal('button'),
          text: plainText(75),
          action_id: z.string().min(1).max(255).optional(),
          url: z.url().max(3000).optional(),
          value: z.string().max(2000).optional(),
          style: z.enum(['primary', 'danger']).optional(),
        }),
      )
      .min(1)
      .max(25),
  }),
  z.strictObject({ type: z.literal('divider'), block_id: blockId }),
]);
export const slackMessageSchema = z
  .strictObject({ text: z.string().min(1), blocks: z.array(slackBlockSchema).min(1).max(50) })
  .refine((m) => {
    const ids = m.blocks.map((b) => b.block_id).filter((id) => id !== undefined);
    return new Set(ids).size === ids.length;
  }, 'block_id must be unique within a message');

export type SlackPosted = z.infer<typeof slackMessageSchema>;

/**
 * Every mrkdwn string of a posted message, where Slack parses markup (the top-level `text` is mrkdwn
 * too, and is what notifications show); plain_text objects are never parsed.
 */
export function slackMrkdwnTexts(message: SlackPosted): string[] {
  const texts = [message.text];
  const add = (t: { type: string; text: string } | undefined) => {
    if (t?.type === 'mrkdwn') texts.push(t.text);
  };
  for (const block of message.blocks) {
    if (block.type === 'section') {
      add(block.text);
      for (const field of block.fields ?? []) add(field);
    } else if (block.type === 'context') {
      for (const element of block.elements) add(element);
    }
  }
  return texts;
}

/**
 * What Slack's mrkdwn (docs.slack.dev/messaging/formatting-message-text) turns into something else
 * than text: control sequences in angle brackets — `<!channel>`, `<!here>`, `<@U…>`, `<#C…>`,
 * `<!subteam^…>`, `<!date^…>`, `<url|label>` links — and HTML entities other than the three escapes
 * (`&amp;`, `&lt;`, `&gt;`), and the text a reader sees once those three are decoded.
 */
export function slackMarkup(text: string): { controls: string[]; entities: string[]; shown: string } {
  const controls = [...text.matchAll(/<[^<>]*>/g)].map((m) => m[0]);
  const entities = [...text.matchAll(/&(?!amp;|lt;|gt;)[^\s;]*;?/g)].map((m) => m[0]);
  const shown = text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  return { controls, entities, shown };
}

/** A Slack incoming webhook: answers `ok`; messages are de-duplicated here by the header's block_id. */
export function slackReceiver(path = '/services/T0000/B0000/XXXXXXXXXXXX') {
  const messages = new Map<string, SlackPosted>();
  const receiver = new Receiver((request) => {
    if (request.method !== 'POST' || request.path !== path) return { status: 404, body: 'no_service' };
    const message = slackMessageSchema.parse(JSON.parse(request.body));
    const header = message.blocks.find((b) => b.type === 'header');
    if (!header?.block_id) throw new Error('the header block carries no block_id to de-duplicate on');
    if (!messages.has(header.block_id)) messages.set(header.block_id, message);
    return { status: 200, body: 'ok' };
  });
  return { receiver, messages, path };
}

// ---------------------------------------------------------------------------------------------
// Vigil's generic webhook, checked as a third-party receiver would: HMAC-SHA256 over
// `timestamp + "." + body` recomputed here, a recent timestamp, the delivery id in header and body.

export const webhookBodySchema = z.strictObject({
  type: z.enum(['incident.opened', 'incident.escalated', 'incident.acknowledged', 'incident.resolved']),
  id: z.string().min(1),
  incident: incidentSchema,
  deliveredAt: z.iso.datetime(),
});
export type WebhookReceived = z.infer<typeof webhookBodySchema>;

export function webhookReceiver(secret: string, clock: () => number) {
  const deliveries = new Map<string, WebhookReceived>();
  let duplicates = 0;
  const receiver = new Receiver((request) => {
    const timestamp = String(request.headers['x-vigil-timestamp'] ?? '');
    const signature = String(request.headers['x-vigil-signature'] ?? '');
    const delivery = String(request.headers['x-vigil-delivery'] ?? '');
    const expected = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest('hex')}`;
    const valid =
      signature.length === expected.length && timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
    if (!valid) throw new Error('bad signature');
    if (Math.abs(clock() / 1000 - Number(timestamp)) > 300) throw new Error('stale timestamp');
    const body = webhookBodySchema.parse(JSON.parse(request.body));
    if (!delivery || body.id !== delivery) throw new Error('X-Vigil-Delivery does not match the body id');
    if (request.headers['x-vigil-event'] !== body.type)
      throw new Error('X-Vigil-Event does not match the body type');
    if (deliveries.has(delivery)) duplicates++;
    else deliveries.set(delivery, body);
    return { status: 204 };
  });
  return { receiver, deliveries, duplicates: () => duplicates };
}
