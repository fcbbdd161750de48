import { signWebhook, WEBHOOK_HEADERS } from '@vigil/guardian';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotificationReceiver, type ReceivedNotification } from '../src/receiver.js';

const SECRET = 'demo-receiver-secret-0123456789';

const incident = {
  id: 'inc_1',
  env: 'demo',
  flag: 'checkout-v2',
  flagVersion: 4,
  severity: 'sev2',
  status: 'open',
  title: 'checkout-v2 regressed',
  summary: 'on regressed',
  killed: true,
  cohorts: [],
  detectedAt: '2026-12-04T10:00:00.000Z',
  timeline: [],
};

describe("the demo's notification receiver", () => {
  const heard: ReceivedNotification[] = [];
  const receiver = new NotificationReceiver(SECRET, (n) => heard.push(n));

  beforeAll(async () => {
    await receiver.start();
  });
  afterAll(() => receiver.close());

  const postWebhook = (delivery: string, secret = SECRET) => {
    const body = JSON.stringify({
      type: 'incident.opened',
      id: delivery,
      incident,
      deliveredAt: new Date().toISOString(),
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    return fetch(receiver.webhookUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [WEBHOOK_HEADERS.signature]: signWebhook(secret, timestamp, body),
        [WEBHOOK_HEADERS.timestamp]: timestamp,
        [WEBHOOK_HEADERS.delivery]: delivery,
        [WEBHOOK_HEADERS.event]: 'incident.opened',
      },
      body,
    });
  };

  it('accepts a signed webhook once per delivery id, counting retries as deliveries', async () => {
    expect((await postWebhook('d-1')).status).toBe(200);
    expect((await postWebhook('d-1')).status).toBe(200);
    const webhooks = receiver.notifications.filter((n) => n.channel === 'webhook');
    expect(webhooks).toMatchObject([{ key: 'd-1', title: 'incident.opened', deliveries: 2 }]);
    expect(heard.filter((n) => n.channel === 'webhook')).toHaveLength(1);
  });

  it('refuses a webhook signed with another secret, and records nothing', async () => {
    const response = await postWebhook('d-2', 'another-secret-0123456789abcdef');
    expect(response.status).toBe(401);
    expect(receiver.notifications.some((n) => n.key === 'd-2')).toBe(false);
    expect(receiver.refused).toContain('webhook: bad or missing signature');
  });

  it('takes Slack messages with text and blocks, and refuses others as Slack does', async () => {
    const post = (body: unknown) =>
      fetch(receiver.slackUrl, { method: 'POST', body: JSON.stringify(body) }).then((r) => r.status);
    const message = { text: 'Incident opened', blocks: [{ type: 'header', block_id: 'vigil-abc' }] };
    expect(await post(message)).toBe(200);
    expect(await post(message)).toBe(200);
    expect(await post({ blocks: [] })).toBe(400);
    expect(receiver.notifications.filter((n) => n.channel === 'slack')).toMatchObject([
      { key: 'vigil-abc', title: 'Incident opened', deliveries: 2 },
    ]);
  });
});
