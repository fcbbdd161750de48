import { describe, expect, it } from 'vitest';
import { NotifyConfigError, notifyConfigFromEnv, resolveNotifyConfig } from '../../src/notify/config.js';
import { incidentEvent } from '../../src/notify/events.js';
import { createNotifiers } from '../../src/notify/notifier.js';
import { exampleIncident } from './fixtures.js';

const ROUTING_KEY = '0123456789abcdef0123456789abcdef';

function issuesOf(run: () => unknown): { field: string; message: string }[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(NotifyConfigError);
    return (error as NotifyConfigError).issues;
  }
  throw new Error('expected a NotifyConfigError');
}

describe('notify configuration', () => {
  it('reads each secret from the env var it names and fills in defaults', () => {
    const config = resolveNotifyConfig(
      {
        publicUrl: 'https://vigil.example.com/',
        integrations: [
          { name: 'pd-prod', type: 'pagerduty', routingKeyEnv: 'PD_KEY' },
          { name: 'alerts', type: 'slack' },
          { name: 'audit', type: 'webhook', url: 'https://hooks.example.com/vigil' },
        ],
      },
      {
        PD_KEY: ROUTING_KEY,
        VIGIL_SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/X',
        VIGIL_WEBHOOK_SECRET: 'a-long-enough-secret',
      },
    );
    expect(config.publicUrl).toBe('https://vigil.example.com');
    expect(config.integrations).toEqual([
      expect.objectContaining({
        name: 'pd-prod',
        routingKey: ROUTING_KEY,
        baseUrl: 'https://events.pagerduty.com',
        events: ['opened', 'escalated', 'acknowledged', 'resolved'],
        severities: ['sev1', 'sev2', 'sev3'],
        timeoutMs: 10_000,
      }),
      expect.objectContaining({ name: 'alerts', webhookUrl: 'https://hooks.slack.com/services/T/B/X' }),
      expect.objectContaining({ name: 'audit', secret: 'a-long-enough-secret', headers: {} }),
    ]);
  });

  it('names every missing or malformed secret without showing its value', () => {
    const issues = issuesOf(() =>
      resolveNotifyConfig(
        {
          integrations: [
            { name: 'pagerduty', type: 'pagerduty' },
            { name: 'incident-io', type: 'incident-io', severityIds: { sev1: 'a', sev2: 'b', sev3: 'c' } },
            { name: 'slack', type: 'slack' },
            { name: 'hook', type: 'webhook', url: 'https://example.com/h' },
          ],
        },
        {
          VIGIL_PAGERDUTY_ROUTING_KEY: 'short-key-q7',
          VIGIL_SLACK_WEBHOOK_URL: 'not a url T0/B0/ZZHIDDENZZ',
          VIGIL_WEBHOOK_SECRET: 'tinyq7',
        },
      ),
    );
    expect(issues).toEqual([
      {
        field: 'integrations[0] (pagerduty)',
        message:
          'environment variable VIGIL_PAGERDUTY_ROUTING_KEY must hold a 32-character Events API v2 integration key',
      },
      {
        field: 'integrations[1] (incident-io)',
        message: 'environment variable VIGIL_INCIDENT_IO_API_KEY is not set',
      },
      {
        field: 'integrations[2] (slack)',
        message: 'environment variable VIGIL_SLACK_WEBHOOK_URL must hold an http(s) URL',
      },
      {
        field: 'integrations[3] (hook)',
        message: 'environment variable VIGIL_WEBHOOK_SECRET must hold at least 16 characters',
      },
    ]);
    expect(JSON.stringify(issues)).not.toMatch(/short-key-q7|ZZHIDDENZZ|tinyq7/);
  });

  it('names bad fields by their path', () => {
    const issues = issuesOf(() =>
      resolveNotifyConfig({
        publicUrl: 'ftp://nope',
        integrations: [
          { name: 'a', type: 'incident-io', severityIds: { sev1: 'x', sev2: 'y' } },
          { name: 'a', type: 'slack', events: ['paged'] },
          { name: 'Bad Name', type: 'carrier-pigeon' },
          { name: 'w', type: 'webhook', url: 'https://x.example', secret: 'inline-secrets-are-refused' },
        ],
      }),
    );
    const fields = issues.map((i) => i.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'publicUrl',
        'integrations[0].severityIds.sev3',
        'integrations[1].events[0]',
        'integrations[2].type',
        'integrations[3]',
      ]),
    );
  });

  it('rejects two integrations with one name', () => {
    const issues = issuesOf(() =>
      resolveNotifyConfig(
        {
          integrations: [
            { name: 'hook', type: 'webhook', url: 'https://a.example' },
            { name: 'hook', type: 'webhook', url: 'https://b.example' },
          ],
        },
        { VIGIL_WEBHOOK_SECRET: 'a-long-enough-secret' },
      ),
    );
    expect(issues).toEqual([{ field: 'integrations[1].name', message: 'is not unique' }]);
  });

  it('needs no secret for a disabled integration', () => {
    const config = resolveNotifyConfig(
      { integrations: [{ name: 'pd', type: 'pagerduty', enabled: false }] },
      {},
    );
    expect(config.integrations).toEqual([]);
  });

  it('builds integrations from env vars alone', () => {
    const env = {
      VIGIL_PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
      VIGIL_INCIDENT_IO_API_KEY: 'key',
      VIGIL_INCIDENT_IO_SEVERITY_IDS: 'sev1=01A, sev2=01B,sev3=01C',
      VIGIL_SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/X',
      VIGIL_WEBHOOK_URL: 'https://hooks.example.com/vigil',
      VIGIL_WEBHOOK_SECRET: 'a-long-enough-secret',
      VIGIL_PUBLIC_URL: 'https://vigil.example.com',
    };
    const config = resolveNotifyConfig(notifyConfigFromEnv(env), env);
    expect(config.integrations.map((i) => [i.name, i.type])).toEqual([
      ['pagerduty', 'pagerduty'],
      ['incident-io', 'incident-io'],
      ['slack', 'slack'],
      ['webhook', 'webhook'],
    ]);
    expect(config.integrations[1]).toMatchObject({ severityIds: { sev1: '01A', sev2: '01B', sev3: '01C' } });
    expect(config.publicUrl).toBe('https://vigil.example.com');
    expect(resolveNotifyConfig(notifyConfigFromEnv({}), {}).integrations).toEqual([]);
  });

  it('filters events and severities per integration', () => {
    const [pager] = createNotifiers(
      resolveNotifyConfig(
        {
          integrations: [
            { name: 'pd', type: 'pagerduty', severities: ['sev1', 'sev2'], events: ['opened', 'resolved'] },
          ],
        },
        { VIGIL_PAGERDUTY_ROUTING_KEY: ROUTING_KEY },
      ),
    );
    expect(pager?.wants(incidentEvent('opened', exampleIncident({ severity: 'sev2' })))).toBe(true);
    expect(pager?.wants(incidentEvent('opened', exampleIncident({ severity: 'sev3' })))).toBe(false);
    expect(pager?.wants(incidentEvent('escalated', exampleIncident()))).toBe(false);
  });
});
