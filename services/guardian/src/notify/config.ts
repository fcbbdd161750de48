import { SEVERITIES, severitySchema } from '@vigil/proto';
import { z } from 'zod';
import { INCIDENT_EVENT_TYPES } from './events.js';

type Env = Readonly<Record<string, string | undefined>>;

const envVarName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of an environment variable');
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** Settings every integration has. */
const common = {
  /** Names the integration in the outbox, metrics, logs and timeline; unique. */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must match ^[a-z0-9][a-z0-9_-]{0,62}$'),
  enabled: z.boolean().default(true),
  /** Which incident events it hears about. */
  events: z
    .array(z.enum(INCIDENT_EVENT_TYPES))
    .min(1)
    .default([...INCIDENT_EVENT_TYPES]),
  /** Which severities it hears about (e.g. page only for sev1 and sev2). */
  severities: z
    .array(severitySchema)
    .min(1)
    .default([...SEVERITIES]),
  /** Per-request timeout; a timed-out request is retried. */
  timeoutMs: z.int().min(100).max(120_000).default(10_000),
};

const pagerDutySchema = z.strictObject({
  ...common,
  type: z.literal('pagerduty'),
  /** `https://events.eu.pagerduty.com` for EU accounts. */
  baseUrl: httpUrl.default('https://events.pagerduty.com'),
  /** Env var holding the Events API v2 integration ("routing") key. */
  routingKeyEnv: envVarName.default('VIGIL_PAGERDUTY_ROUTING_KEY'),
  /** `payload.source`: where the problem is, as PagerDuty shows it. */
  source: z.string().min(1).max(255).default('vigil-guardian'),
});

const incidentIoSchema = z.strictObject({
  ...common,
  type: z.literal('incident-io'),
  baseUrl: httpUrl.default('https://api.incident.io'),
  /** Env var holding an API key allowed to create and edit incidents. */
  apiKeyEnv: envVarName.default('VIGIL_INCIDENT_IO_API_KEY'),
  /** Your organisation's severity ids (`GET /v1/severities`) for each Vigil severity. */
  severityIds: z.strictObject({ sev1: z.string().min(1), sev2: z.string().min(1), sev3: z.string().min(1) }),
  visibility: z.enum(['public', 'private']).default('public'),
  /** `test` creates incidents that page nobody and stay out of insights. */
  mode: z.enum(['standard', 'test', 'tutorial']).default('standard'),
  incidentTypeId: z.string().min(1).optional(),
  /**
   * Incident status ids to move to on acknowledgement and resolution. incident.io's API only moves an
   * incident between *active* statuses (closing happens in the app), so pick e.g. "Fixing" and
   * "Monitoring"; unset, those events only update the summary.
   */
  statusIds: z
    .strictObject({ acknowledged: z.string().min(1).optional(), resolved: z.string().min(1).optional() })
    .default({}),
  /** Announce updates in the incident's Slack channel. */
  notifyIncidentChannel: z.boolean().default(true),
});

const slackSchema = z.strictObject({
  ...common,
  type: z.literal('slack'),
  /** Env var holding the incoming webhook URL (the URL is the secret). */
  webhookUrlEnv: envVarName.default('VIGIL_SLACK_WEBHOOK_URL'),
});

const webhookSchema = z.strictObject({
  ...common,
  type: z.literal('webhook'),
  url: httpUrl,
  /** Env var holding the HMAC secret shared with the receiver. */
  secretEnv: envVarName.default('VIGIL_WEBHOOK_SECRET'),
  /** Extra request headers (not secret: they are logged with the config). */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), z.string()).default({}),
});

export const integrationConfigSchema = z.discriminatedUnion('type', [
  pagerDutySchema,
  incidentIoSchema,
  slackSchema,
  webhookSchema,
]);
export type IntegrationConfig = z.infer<typeof integrationConfigSchema>;
export type IntegrationConfigInput = z.input<typeof integrationConfigSchema>;
export type IntegrationType = IntegrationConfig['type'];

/** The `notify` section of the guardian's configuration. */
export const notifyConfigSchema = z
  .strictObject({
    /** Where people reach Vigil (`https://vigil.example.com`); links in notifications point there. */
    publicUrl: httpUrl.optional(),
    integrations: z.array(integrationConfigSchema).default([]),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.integrations.forEach((integration, index) => {
      if (seen.has(integration.name)) {
        ctx.addIssue({ code: 'custom', path: ['integrations', index, 'name'], message: 'is not unique' });
      }
      seen.add(integration.name);
    });
  });
export type NotifyConfigInput = z.input<typeof notifyConfigSchema>;

export type PagerDutyIntegration = z.infer<typeof pagerDutySchema> & { routingKey: string };
export type IncidentIoIntegration = z.infer<typeof incidentIoSchema> & { apiKey: string };
export type SlackIntegration = z.infer<typeof slackSchema> & { webhookUrl: string };
export type WebhookIntegration = z.infer<typeof webhookSchema> & { secret: string };
/** An enabled integration with its secret read from the environment. */
export type ResolvedIntegration =
  | PagerDutyIntegration
  | IncidentIoIntegration
  | SlackIntegration
  | WebhookIntegration;

export interface NotifyConfig {
  publicUrl?: string;
  integrations: ResolvedIntegration[];
}

/** A bad `notify` configuration; `issues` names every bad field (never a secret's value). */
export class NotifyConfigError extends Error {
  readonly issues: { field: string; message: string }[];

  constructor(issues: { field: string; message: string }[]) {
    super(`invalid notify configuration: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`);
    this.name = 'NotifyConfigError';
    this.issues = issues;
  }
}

/**
 * Validates the `notify` configuration and reads each enabled integration's secret from `env`.
 * Throws a `NotifyConfigError` naming every bad field and every missing or malformed secret.
 */
export function resolveNotifyConfig(input: unknown, env: Env = process.env): NotifyConfig {
  const parsed = notifyConfigSchema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new NotifyConfigError(
      parsed.error.issues.map((issue) => ({ field: fieldPath(issue.path), message: issue.message })),
    );
  }
  const issues: { field: string; message: string }[] = [];
  const integrations: ResolvedIntegration[] = [];
  parsed.data.integrations.forEach((integration, index) => {
    if (!integration.enabled) return;
    const field = `integrations[${index}] (${integration.name})`;
    const secret = (name: string, check?: (value: string) => string | undefined): string => {
      const value = env[name];
      if (value === undefined || value === '') {
        issues.push({ field, message: `environment variable ${name} is not set` });
        return '';
      }
      const problem = check?.(value);
      if (problem) issues.push({ field, message: `environment variable ${name} ${problem}` });
      return value;
    };
    switch (integration.type) {
      case 'pagerduty':
        integrations.push({
          ...integration,
          routingKey: secret(integration.routingKeyEnv, (v) =>
            v.length === 32 ? undefined : 'must hold a 32-character Events API v2 integration key',
          ),
        });
        break;
      case 'incident-io':
        integrations.push({ ...integration, apiKey: secret(integration.apiKeyEnv) });
        break;
      case 'slack':
        integrations.push({
          ...integration,
          webhookUrl: secret(integration.webhookUrlEnv, (v) =>
            httpUrl.safeParse(v).success ? undefined : 'must hold an http(s) URL',
          ),
        });
        break;
      case 'webhook':
        integrations.push({
          ...integration,
          secret: secret(integration.secretEnv, (v) =>
            v.length >= 16 ? undefined : 'must hold at least 16 characters',
          ),
        });
        break;
    }
  });
  if (issues.length > 0) throw new NotifyConfigError(issues);
  const config: NotifyConfig = { integrations };
  if (parsed.data.publicUrl) config.publicUrl = parsed.data.publicUrl.replace(/\/+$/, '');
  return config;
}

/**
 * The `notify` configuration for a deployment configured by env vars alone: one integration per
 * service whose secret is set —
 * `VIGIL_PAGERDUTY_ROUTING_KEY`; `VIGIL_INCIDENT_IO_API_KEY` with `VIGIL_INCIDENT_IO_SEVERITY_IDS`
 * (`sev1=<id>,sev2=<id>,sev3=<id>`); `VIGIL_SLACK_WEBHOOK_URL`; `VIGIL_WEBHOOK_URL` with
 * `VIGIL_WEBHOOK_SECRET` — and `VIGIL_PUBLIC_URL` for links.
 */
export function notifyConfigFromEnv(env: Env = process.env): NotifyConfigInput {
  const integrations: IntegrationConfigInput[] = [];
  if (env.VIGIL_PAGERDUTY_ROUTING_KEY) integrations.push({ name: 'pagerduty', type: 'pagerduty' });
  if (env.VIGIL_INCIDENT_IO_API_KEY) {
    const ids = Object.fromEntries(
      (env.VIGIL_INCIDENT_IO_SEVERITY_IDS ?? '')
        .split(',')
        .map((pair) => pair.split('=').map((part) => part.trim()))
        .filter((pair) => pair.length === 2 && pair[0] && pair[1]),
    ) as { sev1: string; sev2: string; sev3: string };
    integrations.push({ name: 'incident-io', type: 'incident-io', severityIds: ids });
  }
  if (env.VIGIL_SLACK_WEBHOOK_URL) integrations.push({ name: 'slack', type: 'slack' });
  if (env.VIGIL_WEBHOOK_URL)
    integrations.push({ name: 'webhook', type: 'webhook', url: env.VIGIL_WEBHOOK_URL });
  const config: NotifyConfigInput = { integrations };
  if (env.VIGIL_PUBLIC_URL) config.publicUrl = env.VIGIL_PUBLIC_URL;
  return config;
}

/** `integrations[0].severityIds.sev2` */
function fieldPath(path: PropertyKey[]): string {
  return (
    path
      .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
      .join('') || '(root)'
  );
}
