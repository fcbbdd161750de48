import { type Incident, timelineEntrySchema } from '@vigil/proto';
import { Registry } from 'prom-client';
import { resolveNotifyConfig } from '../../src/notify/config.js';
import { createNotifiers, type Notifier } from '../../src/notify/notifier.js';
import {
  type Delivery,
  type DeliveryFailure,
  type DeliveryRetry,
  NotificationOutbox,
  type OutboxOptions,
  type OutboxStore,
} from '../../src/notify/outbox.js';
import { notificationFailedTimelineEntry, notificationTimelineEntry } from '../../src/notify/timeline.js';
import { T0 } from './fixtures.js';
import { incidentIoReceiver, pagerDutyReceiver, slackReceiver, webhookReceiver } from './receivers.js';

export const ROUTING_KEY = '0123456789abcdef0123456789abcdef';
export const API_KEY = 'iio-test-api-key';
export const SECRET = 'whsec-test-0123456789abcdef';
export const PUBLIC_URL = 'https://vigil.example.com';

/** Four local services, a controllable clock, and the notifiers configured against them. */
export async function startWorld() {
  const clock = { t: T0 };
  const pd = pagerDutyReceiver(ROUTING_KEY);
  const iio = incidentIoReceiver(API_KEY);
  const slack = slackReceiver();
  const hook = webhookReceiver(SECRET, () => clock.t);
  await Promise.all([
    pd.receiver.start(),
    iio.receiver.start(),
    slack.receiver.start(),
    hook.receiver.start(),
  ]);
  const config = resolveNotifyConfig(
    {
      publicUrl: PUBLIC_URL,
      integrations: [
        { name: 'pagerduty', type: 'pagerduty', baseUrl: pd.receiver.url, timeoutMs: 300 },
        {
          name: 'incident-io',
          type: 'incident-io',
          baseUrl: iio.receiver.url,
          severityIds: { sev1: 'SEV1-ID', sev2: 'SEV2-ID', sev3: 'SEV3-ID' },
          statusIds: { acknowledged: 'STATUS-FIXING', resolved: 'STATUS-MONITORING' },
          timeoutMs: 300,
        },
        { name: 'slack', type: 'slack', timeoutMs: 300 },
        { name: 'webhook', type: 'webhook', url: `${hook.receiver.url}/hooks/vigil`, timeoutMs: 300 },
      ],
    },
    {
      VIGIL_PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
      VIGIL_INCIDENT_IO_API_KEY: API_KEY,
      VIGIL_SLACK_WEBHOOK_URL: `${slack.receiver.url}${slack.path}`,
      VIGIL_WEBHOOK_SECRET: SECRET,
    },
  );
  const notifiers = createNotifiers(config);
  const receivers = [pd.receiver, iio.receiver, slack.receiver, hook.receiver];
  return {
    clock,
    pd,
    iio,
    slack,
    hook,
    notifiers,
    receivers,
    close: () => Promise.all(receivers.map((r) => r.close())),
  };
}

export type World = Awaited<ReturnType<typeof startWorld>>;

/**
 * An outbox on the world's clock with a fixed jitter (0.5), whose callbacks keep what they saw and
 * append timeline entries to `incidents` as the orchestration would.
 */
export function makeOutbox(
  world: World,
  store: OutboxStore,
  options: Partial<OutboxOptions> & { notifiers?: Notifier[] } = {},
) {
  const seen = {
    delivered: [] as Delivery[],
    failed: [] as DeliveryFailure[],
    retries: [] as DeliveryRetry[],
    incidents: new Map<string, Incident>(),
  };
  const append = (incidentId: string, entry: ReturnType<typeof notificationTimelineEntry>) => {
    timelineEntrySchema.parse(entry);
    const incident = seen.incidents.get(incidentId);
    if (incident) seen.incidents.set(incidentId, { ...incident, timeline: [...incident.timeline, entry] });
  };
  const registry = options.registry ?? new Registry();
  const outbox = new NotificationOutbox({
    store,
    notifiers: world.notifiers,
    registry,
    now: () => world.clock.t,
    random: () => 0.5,
    onDelivered: (delivery) => {
      seen.delivered.push(delivery);
      append(delivery.incidentId, notificationTimelineEntry(delivery));
    },
    onFailed: (failure) => {
      seen.failed.push(failure);
      append(failure.incidentId, notificationFailedTimelineEntry(failure));
    },
    onRetry: (retry) => {
      seen.retries.push(retry);
    },
    ...options,
  });
  return { outbox, seen, registry };
}

/** Runs passes, moving the clock to the next due item whenever a pass finds nothing to do, until nothing is pending. */
export async function drain(outbox: NotificationOutbox, clock: { t: number }, maxPasses = 100) {
  for (let pass = 0; pass < maxPasses; pass++) {
    const pending = await outbox.pending(1000);
    if (pending.length === 0) return pass;
    const report = await outbox.deliverDue(clock.t);
    if (report.delivered + report.retried + report.failed > 0) continue;
    const next = pending.map((item) => item.notBefore).filter((t) => t > clock.t);
    if (next.length === 0) throw new Error('the outbox is stuck: items are due but nothing is attempted');
    clock.t = Math.min(...next);
  }
  throw new Error(`the outbox still had pending items after ${maxPasses} passes`);
}

/** The value of a counter for one integration. */
export async function counterValue(registry: Registry, name: string, integration: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return Number.NaN;
  const { values } = await metric.get();
  return values.find((v) => v.labels.integration === integration)?.value ?? 0;
}
