import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { IncidentIoIntegration } from '../../src/notify/config.js';
import { incidentEvent } from '../../src/notify/events.js';
import { DeliveryError, parseRetryAfter, postJson } from '../../src/notify/http.js';
import { incidentIoCreateBody, incidentIoEditBody } from '../../src/notify/incident-io.js';
import { deliveryIdOf } from '../../src/notify/outbox.js';
import { pagerDutyEvent } from '../../src/notify/pagerduty.js';
import { slackMessage } from '../../src/notify/slack.js';
import {
  signWebhook,
  verifyWebhookSignature,
  webhookPayload,
  webhookPayloadSchema,
} from '../../src/notify/webhook.js';
import { exampleIncident, iso, lifecycle, T0 } from './fixtures.js';
import {
  incidentIoCreateSchema,
  incidentIoEditSchema,
  pagerDutyTriggerSchema,
  pagerDutyUpdateSchema,
  slackMessageSchema,
  webhookBodySchema,
} from './receivers.js';

const pd = { routingKey: '0123456789abcdef0123456789abcdef', source: 'vigil-guardian' };
const options = { publicUrl: 'https://vigil.example.com' };
const { opened, acknowledged, resolved } = lifecycle();
const events = [
  incidentEvent('opened', opened),
  incidentEvent('escalated', opened, { at: iso(T0 + 240_000), level: 2 }),
  incidentEvent('acknowledged', acknowledged),
  incidentEvent('resolved', resolved),
];

describe('PagerDuty Events API v2 payloads', () => {
  it('maps sev1 to critical, sev2 to error and sev3 to warning', () => {
    const severities = (['sev1', 'sev2', 'sev3'] as const).map((severity) => {
      const body = pagerDutyTriggerSchema.parse(
        pagerDutyEvent(incidentEvent('opened', exampleIncident({ severity })), pd, options),
      );
      return body.payload.severity;
    });
    expect(severities).toEqual(['critical', 'error', 'warning']);
  });

  it('triggers with the documented payload fields and links back to Vigil', () => {
    const body = pagerDutyTriggerSchema.parse(pagerDutyEvent(events[0]!, pd, options));
    expect(body).toMatchObject({
      routing_key: pd.routingKey,
      event_action: 'trigger',
      dedup_key: 'vigil-inc_01HZX4',
      payload: {
        source: 'vigil-guardian',
        severity: 'critical',
        timestamp: opened.detectedAt,
        component: 'checkout.new-flow',
        group: 'production',
        class: 'flag-regression',
        custom_details: expect.objectContaining({
          incident_id: 'inc_01HZX4',
          flag_version: 17,
          control_variant: 'off',
        }),
      },
      client: 'Vigil',
      client_url: 'https://vigil.example.com',
      links: [
        { href: 'https://vigil.example.com/api/v1/incidents/inc_01HZX4', text: 'Vigil incident' },
        {
          href: 'https://vigil.example.com/api/v1/incidents/inc_01HZX4/postmortem',
          text: 'Postmortem draft',
        },
      ],
    });
    expect(body.payload.summary).toBe('[SEV1] checkout.new-flow: error rate 5.00% vs 0.50% in control');
  });

  it('re-triggers on escalation, then acknowledges and resolves the same dedup_key with nothing else', () => {
    const [, escalated, ack, resolve] = events.map((event) => pagerDutyEvent(event, pd, options));
    expect(pagerDutyTriggerSchema.parse(escalated).payload.summary).toMatch(
      /^\[SEV1\] not acknowledged, escalated: /,
    );
    expect(pagerDutyUpdateSchema.parse(ack)).toEqual({
      routing_key: pd.routingKey,
      event_action: 'acknowledge',
      dedup_key: 'vigil-inc_01HZX4',
    });
    expect(pagerDutyUpdateSchema.parse(resolve)).toEqual({
      routing_key: pd.routingKey,
      event_action: 'resolve',
      dedup_key: 'vigil-inc_01HZX4',
    });
  });

  it('keeps summaries within 1024 characters and dedup keys within 255', () => {
    const long = exampleIncident({ id: 'x'.repeat(400), title: 'y'.repeat(3000) });
    const body = pagerDutyTriggerSchema.parse(pagerDutyEvent(incidentEvent('opened', long), pd));
    expect(body.payload.summary).toHaveLength(1024);
    expect(body.dedup_key.length).toBeLessThanOrEqual(255);
    expect(pagerDutyEvent(incidentEvent('resolved', { ...long, resolvedAt: iso(T0) }), pd).dedup_key).toBe(
      body.dedup_key,
    );
  });
});

describe('incident.io Incidents V2 payloads', () => {
  const settings: Pick<
    IncidentIoIntegration,
    'severityIds' | 'visibility' | 'mode' | 'incidentTypeId' | 'statusIds' | 'notifyIncidentChannel'
  > = {
    severityIds: { sev1: 'S1', sev2: 'S2', sev3: 'S3' },
    visibility: 'private',
    mode: 'test',
    incidentTypeId: 'TYPE',
    statusIds: { acknowledged: 'FIXING', resolved: 'MONITORING' },
    notifyIncidentChannel: false,
  };

  it('creates with the required idempotency_key, severity_id and visibility', () => {
    const body = incidentIoCreateSchema.parse(incidentIoCreateBody(events[0]!, settings, options));
    expect(body).toMatchObject({
      idempotency_key: 'vigil-inc_01HZX4',
      name: opened.title,
      severity_id: 'S1',
      visibility: 'private',
      mode: 'test',
      incident_type_id: 'TYPE',
    });
    expect(body.summary).toContain(
      '`on`: 5.00% errors (600 of 12,000) vs 0.50% in control `off`, p99 850 ms',
    );
    expect(body.summary).toContain('https://vigil.example.com/api/v1/incidents/inc_01HZX4/postmortem');
    const sev3 = incidentIoCreateBody(
      incidentEvent('opened', exampleIncident({ severity: 'sev3' })),
      settings,
    );
    expect(sev3.severity_id).toBe('S3');
    expect(sev3.idempotency_key).toBe(body.idempotency_key);
  });

  it('edits with the configured status on acknowledgement and resolution', () => {
    const [escalated, ack, resolve] = events
      .slice(1)
      .map((e) => incidentIoEditSchema.parse(incidentIoEditBody(e, settings)));
    expect(escalated?.incident.incident_status_id).toBeUndefined();
    expect(escalated?.incident.summary).toContain('Vigil: escalated (level 2)');
    expect(ack?.incident).toMatchObject({ incident_status_id: 'FIXING', severity_id: 'S1' });
    expect(resolve?.incident.incident_status_id).toBe('MONITORING');
    expect(resolve?.incident.summary).toContain(`Vigil: resolved by carol at ${resolved.resolvedAt}.`);
    expect(resolve?.notify_incident_channel).toBe(false);
    const noStatus = incidentIoEditBody(events[3]!, { ...settings, statusIds: {} });
    expect(noStatus.incident).not.toHaveProperty('incident_status_id');
  });
});

describe('Slack messages', () => {
  it('are well-formed Block Kit for every event', () => {
    for (const event of events) {
      const message = slackMessageSchema.parse(slackMessage(event, deliveryIdOf('slack', event), options));
      expect(message.blocks.map((b) => b.type)).toEqual([
        'header',
        'section',
        'section',
        'context',
        'actions',
      ]);
    }
  });

  it('escape mrkdwn, respect the header limit and omit buttons without a public URL', () => {
    const nasty = exampleIncident({
      title: `<!channel> ${'long '.repeat(60)}`,
      summary: 'Fails for <script>alert(1)</script> & friends',
    });
    const event = incidentEvent('opened', nasty);
    const message = slackMessageSchema.parse(slackMessage(event, deliveryIdOf('slack', event)));
    const [header, section] = message.blocks;
    expect(header?.type === 'header' && header.text.text.length).toBe(150);
    expect(section?.type === 'section' && section.text?.text).toBe(
      'Fails for &lt;script&gt;alert(1)&lt;/script&gt; &amp; friends',
    );
    expect(message.blocks.some((b) => b.type === 'actions')).toBe(false);
  });

  it('carry a block_id that is stable per delivery and differs between events', () => {
    const ids = events.map((event) => {
      const first = slackMessage(event, deliveryIdOf('slack', event), options).blocks[0]?.block_id;
      const again = slackMessage(event, deliveryIdOf('slack', event), options).blocks[0]?.block_id;
      expect(again).toBe(first);
      return first;
    });
    expect(new Set(ids).size).toBe(4);
  });
});

describe('generic webhook signatures', () => {
  const secret = 'whsec-0123456789abcdef';
  const body = JSON.stringify(webhookPayload(events[0]!, 'webhook:inc_01HZX4:opened', T0));
  const timestamp = String(Math.floor(T0 / 1000));
  const signature = signWebhook(secret, timestamp, body);

  it('verify for the right secret, body and a recent timestamp', () => {
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature({ secret, body, timestamp, signature, now: T0 + 60_000 })).toBe(true);
    expect(verifyWebhookSignature({ secret, body: Buffer.from(body), timestamp, signature, now: T0 })).toBe(
      true,
    );
    expect(
      verifyWebhookSignature({ secret: ['old-secret-value', secret], body, timestamp, signature, now: T0 }),
    ).toBe(true);
  });

  it('fail for a tampered body, another secret, an old or future timestamp, or missing headers', () => {
    const check = (overrides: Partial<Parameters<typeof verifyWebhookSignature>[0]>) =>
      verifyWebhookSignature({ secret, body, timestamp, signature, now: T0, ...overrides });
    expect(check({ body: body.replace('sev1', 'sev3') })).toBe(false);
    expect(check({ secret: 'another-secret-0123' })).toBe(false);
    expect(check({ now: T0 + 301_000 })).toBe(false);
    expect(check({ now: T0 - 301_000 })).toBe(false);
    expect(check({ timestamp: String(Number(timestamp) + 1) })).toBe(false);
    expect(check({ signature: undefined })).toBe(false);
    expect(check({ timestamp: undefined })).toBe(false);
    expect(check({ signature: 'sha256=zz' })).toBe(false);
    expect(check({ signature: signature.replace('sha256=', 'sha1=') })).toBe(false);
  });

  it('bodies carry the event type, the delivery id and the incident as the proto defines it', () => {
    for (const event of events) {
      const payload = webhookBodySchema.parse(webhookPayload(event, deliveryIdOf('webhook', event), T0));
      expect(payload.type).toBe(`incident.${event.type}`);
      expect(webhookPayloadSchema.parse(payload)).toEqual(payload);
    }
  });
});

describe('HTTP delivery', () => {
  it('reads Retry-After as seconds or an HTTP date, bounded to an hour', () => {
    expect(parseRetryAfter('7', T0)).toBe(7000);
    expect(parseRetryAfter(new Date(T0 + 30_000).toUTCString(), T0)).toBe(30_000);
    expect(parseRetryAfter(new Date(T0 - 30_000).toUTCString(), T0)).toBe(0);
    expect(parseRetryAfter('86400', T0)).toBe(3_600_000);
    expect(parseRetryAfter('soon', T0)).toBeUndefined();
    expect(parseRetryAfter(null, T0)).toBeUndefined();
  });

  it('classifies answers: 5xx, 408 and 429 are retryable, other 4xx and redirects are not', async () => {
    const statuses = [500, 503, 408, 429, 400, 401, 404, 410, 422, 301, 307];
    let i = 0;
    const server = createServer((_req, res) => {
      const status = statuses[i++] ?? 200;
      res
        .writeHead(status, status >= 300 && status < 400 ? { location: 'http://127.0.0.1:1/' } : {})
        .end('nope');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const outcomes: [number | undefined, boolean][] = [];
      for (const _ of statuses) {
        const error = await postJson(url, '{}', { timeoutMs: 1000, now: T0 }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DeliveryError);
        outcomes.push([(error as DeliveryError).status, (error as DeliveryError).retryable]);
      }
      expect(outcomes).toEqual([
        [500, true],
        [503, true],
        [408, true],
        [429, true],
        [400, false],
        [401, false],
        [404, false],
        [410, false],
        [422, false],
        [301, false],
        [307, false],
      ]);
      await expect(postJson(url, '{}', { timeoutMs: 1000, now: T0 })).resolves.toMatchObject({ status: 200 });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('never puts the URL in an error (a Slack webhook URL is a secret)', async () => {
    const error = (await postJson('http://127.0.0.1:1/services/T0/B0/SECRETPART', '{}', {
      timeoutMs: 1000,
      now: T0,
    }).catch((e: unknown) => e)) as DeliveryError;
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/^network error: /);
    expect(error.message).not.toContain('SECRETPART');
  });
});
