import { startTcpProxy, type TcpProxy } from '../../../services/flag-server/test/helpers/tcp-proxy.js';
import {
  incidentIoReceiver,
  pagerDutyReceiver,
  type Receiver,
  slackReceiver,
  webhookReceiver,
} from '../../../services/guardian/test/notify/receivers.js';

// The guardian package's stand-ins for incident.io, PagerDuty, Slack and a webhook consumer (they
// check each request against the fields those services document and de-duplicate as they do), each
// behind a TCP relay that can take it off the network.

export const ROUTING_KEY = 'fa17e0c0ffee4242fa17e0c0ffee4242';
export const INCIDENT_IO_API_KEY = 'iio-system-test-key';
export const WEBHOOK_SECRET = 'whsec-system-test-0123456789abcdef';

/** The four receivers, their relays, and how to point a guardian at them. */
export interface NotifyReceivers {
  pd: ReturnType<typeof pagerDutyReceiver>;
  iio: ReturnType<typeof incidentIoReceiver>;
  slack: ReturnType<typeof slackReceiver>;
  hook: ReturnType<typeof webhookReceiver>;
  /** By integration name. */
  receivers: Record<'pagerduty' | 'incident-io' | 'slack' | 'webhook', Receiver>;
  /** The relay in front of each receiver: `cut()` makes it unreachable, `restore()` brings it back. */
  proxies: TcpProxy[];
  /** The guardian config's `notify` section. */
  notify: Record<string, unknown>;
  /** The integrations' secrets, as env vars of the guardian process. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** Starts the receivers and their relays on 127.0.0.1. */
export async function startNotifyReceivers(): Promise<NotifyReceivers> {
  const pd = pagerDutyReceiver(ROUTING_KEY);
  const iio = incidentIoReceiver(INCIDENT_IO_API_KEY);
  const slack = slackReceiver();
  const hook = webhookReceiver(WEBHOOK_SECRET, Date.now);
  const receivers = {
    pagerduty: pd.receiver,
    'incident-io': iio.receiver,
    slack: slack.receiver,
    webhook: hook.receiver,
  };
  await Promise.all(Object.values(receivers).map((r) => r.start()));
  const proxies: TcpProxy[] = [];
  const via = async (receiver: Receiver) => {
    const proxy = await startTcpProxy(Number(new URL(receiver.url).port));
    proxies.push(proxy);
    return `http://127.0.0.1:${proxy.port}`;
  };
  const [pdUrl, iioUrl, slackUrl, hookUrl] = await Promise.all([
    via(pd.receiver),
    via(iio.receiver),
    via(slack.receiver),
    via(hook.receiver),
  ]);
  // A guardian killed mid-request never answers its receivers; the timeout only bounds live retries.
  const timeoutMs = 5000;
  return {
    pd,
    iio,
    slack,
    hook,
    receivers,
    proxies,
    notify: {
      publicUrl: 'https://vigil.example.com',
      integrations: [
        { name: 'webhook', type: 'webhook', url: `${hookUrl}/hooks/vigil`, timeoutMs },
        { name: 'pagerduty', type: 'pagerduty', baseUrl: pdUrl, timeoutMs },
        {
          name: 'incident-io',
          type: 'incident-io',
          baseUrl: iioUrl,
          severityIds: { sev1: 'SEV1-ID', sev2: 'SEV2-ID', sev3: 'SEV3-ID' },
          timeoutMs,
        },
        { name: 'slack', type: 'slack', timeoutMs },
      ],
    },
    env: {
      VIGIL_WEBHOOK_SECRET: WEBHOOK_SECRET,
      VIGIL_PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
      VIGIL_INCIDENT_IO_API_KEY: INCIDENT_IO_API_KEY,
      VIGIL_SLACK_WEBHOOK_URL: `${slackUrl}${slack.path}`,
    },
    async close() {
      await Promise.allSettled(proxies.map((p) => p.close()));
      await Promise.allSettled(Object.values(receivers).map((r) => r.close()));
    },
  };
}
