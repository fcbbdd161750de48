import { createClient, type VigilClient } from '@vigil/node';
import type { Flag, FlagHealth, FlagInput, Incident, ScheduleStep } from '@vigil/proto';
import pc from 'picocolors';
import type { AdminApi } from './api.js';
import { startCheckoutApp } from './checkout-app.js';
import type { Progress } from './progress.js';
import type { NotificationReceiver, ReceivedNotification } from './receiver.js';
import { Traffic } from './traffic.js';

export interface ScenarioOptions {
  api: AdminApi;
  /** Where the app's SDK streams flags from (another replica than `api`'s, in the compose demo). */
  sdkUrl: string;
  flag: string;
  /** Checkout requests a second from the simulated users. */
  rate: number;
  /** Each step's hold, in ms. */
  holdMs: number;
  /** How long after the schedule reaches its second step the new checkout starts failing. */
  faultAfterMs: number;
  /** Share of new-checkout requests that fail once the fault is in. */
  faultRate: number;
  /** The whole scenario gives up after this long. */
  timeoutMs: number;
  progress: Progress;
  /** The demo's own receiver and the channels the guardian notifies it on; else the incident's timeline tells. */
  receiver?: { receiver: NotificationReceiver; channels: ReceivedNotification['channel'][] };
}

export interface ScenarioResult {
  flag: Flag;
  incident: Incident;
  postmortem: string;
  /** From the fault going in to the guardian's kill. */
  killedAfterFaultMs: number;
  notifications: ReceivedNotification[];
}

/** The demo's rollout: 5% → 20% → 50% → 100%, each step held `holdMs`. */
export function demoSteps(holdMs: number): ScheduleStep[] {
  const hold = `${Math.round(holdMs)}ms`;
  return [
    { percent: 5, hold },
    { percent: 20, hold },
    { percent: 50, hold },
    { percent: 100, hold: 0 },
  ];
}

/** The demo's flag: off for everyone until the schedule raises it, guarded with auto-kill (sev2). */
export function demoFlag(key: string): FlagInput {
  return {
    key,
    description: 'The new one-call checkout (Vigil demo)',
    tags: ['demo', 'checkout'],
    owner: 'payments',
    variants: [
      { key: 'on', value: true, description: 'new checkout' },
      { key: 'off', value: false, description: 'old checkout' },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'off' },
    guard: { severity: 'sev2', autoKill: true },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Polls `check` every 250 ms until it returns a value, or throws naming `what` after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

function treatment(health: FlagHealth | undefined) {
  return health?.cohorts.find((c) => c.variant !== health.controlVariant);
}

/**
 * The demo's scenario, against a running Vigil: create a guarded flag, start a checkout app on the
 * Node SDK under simulated traffic, put the flag on a progressive schedule, make the new checkout fail
 * once the rollout is under way, and follow the guardian as it kills the flag and opens the incident.
 */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const { api, progress, flag: key } = options;
  const startedAt = Date.now();

  const existing = await api.getFlag(key);
  if (existing?.killed) await api.revive(key, 'demo: starting over');
  await api.putFlag(demoFlag(key), 'demo: the new checkout, off until its rollout');
  progress.event(`created flag ${pc.bold(key)} in ${api.env}: guarded (sev2, auto-kill), off for everyone`);

  const sdkKey = await api.createSdkKey(`demo-checkout-app-${Date.now()}`);
  const client: VigilClient = createClient({
    url: options.sdkUrl,
    sdkKey,
    logger: { warn: () => {}, error: () => {} },
  });
  const app = await startCheckoutApp({ client, flag: key });
  const traffic = new Traffic(app.url, options.rate);
  try {
    if (!(await client.waitForReady(10_000)))
      throw new Error(`the app's SDK could not reach ${options.sdkUrl}`);
    progress.event(`checkout app up on the Node SDK (${app.url}), streaming flags from ${options.sdkUrl}`);
    traffic.start();
    progress.event(`${options.rate} simulated users a second are checking out`);

    const steps = demoSteps(options.holdMs);
    await api.putSchedule(key, 'on', steps);
    progress.event(
      `scheduled ${steps.map((s) => `${s.percent}%`).join(' → ')}, ${Math.round(options.holdMs / 1000)} s healthy hold per step`,
    );

    let flag = (await api.getFlag(key)) as Flag;
    let health: FlagHealth | undefined;
    let step = -1;
    let faultAt: number | undefined;
    const deadline = startedAt + options.timeoutMs;
    while (!flag.killed) {
      if (Date.now() > deadline) throw new Error('timed out before the guardian killed the flag');
      await sleep(250);
      const before = health;
      [flag, health] = await Promise.all([
        api.getFlag(key) as Promise<Flag>,
        api.health(key).catch(() => health),
      ]);
      const schedule = flag.schedule;
      if (schedule && schedule.stepIndex !== step && !flag.killed) {
        // The verdict before the step changed: the figures of the hold that just passed.
        const was = treatment(before);
        step = schedule.stepIndex;
        const percent = schedule.steps[step]?.percent;
        progress.event(
          step === 0
            ? `guardian started the rollout: ${percent}% of users get the new checkout`
            : `guardian raised the rollout to ${percent}% after a healthy hold${was ? ` (new checkout: ${was.requests} requests, ${pct(was.errorRate)} errors)` : ''}`,
        );
        if (schedule.status === 'completed')
          throw new Error('the schedule completed before the fault went in; raise --hold or --fault-rate');
      }
      if (faultAt === undefined && step >= 1 && flag.schedule?.stepStartedAt) {
        const stepStarted = Date.parse(flag.schedule.stepStartedAt);
        if (Date.now() - stepStarted >= options.faultAfterMs) {
          app.faults.v2ErrorRate = options.faultRate;
          faultAt = Date.now();
          progress.event(
            pc.red(
              `fault injected: the new checkout's payment call now fails ${pct(options.faultRate)} of requests`,
            ),
          );
        }
      }
      progress.status({
        flag,
        ...(health ? { health } : {}),
        traffic: traffic.window(),
        faultInjected: !!faultAt,
      });
    }

    const killedAt = Date.parse(flag.killedAt ?? '') || Date.now();
    const killedAfterFaultMs = killedAt - (faultAt ?? killedAt);
    progress.event(
      pc.red(
        pc.bold(
          `${flag.killedBy} killed ${key} ${(killedAfterFaultMs / 1000).toFixed(1)} s after the fault began: ${flag.killReason}`,
        ),
      ),
    );

    const incident = await until('the incident', 20_000, async () =>
      (await api.incidents()).find((i) => i.flag === key && Date.parse(i.detectedAt) >= startedAt),
    );
    progress.event(`incident ${pc.bold(incident.id)} opened (${incident.severity}): ${incident.title}`);

    // The app's SDK heard of the kill over its stream: every user gets the old checkout again.
    await until("the app's SDK to serve off", 10_000, async () =>
      Array.from({ length: 200 }, (_, i) => client.variant(key, { key: `user-${i}` })).every(
        (v) => v === 'off',
      )
        ? true
        : undefined,
    );
    progress.event(`the app's SDK serves "off" to every user; errors are back to the baseline`);

    const notifications = await awaitNotifications(options, incident);
    // A few more seconds of traffic, for the display to show the cohorts after the kill.
    for (let i = 0; i < 6; i++) {
      await sleep(500);
      flag = (await api.getFlag(key)) ?? flag;
      health = await api.health(key).catch(() => health);
      progress.status({
        flag,
        ...(health ? { health } : {}),
        traffic: traffic.window(3000),
        faultInjected: true,
      });
    }
    const postmortem = await api.postmortem(incident.id);
    const final = (await api.incidents()).find((i) => i.id === incident.id) ?? incident;
    return { flag, incident: final, postmortem, killedAfterFaultMs, notifications };
  } finally {
    traffic.stop();
    await app.close();
    await client.close();
  }
}

/** Waits for the notifications of the incident's opening: at the receiver, or in the incident's timeline. */
async function awaitNotifications(
  options: ScenarioOptions,
  incident: Incident,
): Promise<ReceivedNotification[]> {
  const { progress, api } = options;
  if (options.receiver) {
    const { receiver, channels } = options.receiver;
    await until(`the notifications (${channels.join(', ')})`, 30_000, async () =>
      channels.every((channel) => receiver.notifications.some((n) => n.channel === channel))
        ? true
        : undefined,
    );
    return receiver.notifications;
  }
  const notified = await until('the incident timeline', 15_000, async () => {
    const current = (await api.incidents()).find((i) => i.id === incident.id);
    const entries = current?.timeline.filter((e) => e.kind === 'notification') ?? [];
    return entries.length > 0 ? entries : undefined;
  }).catch(() => []);
  if (notified.length === 0)
    progress.event(pc.yellow('no integration is configured on this Vigil, so nobody was notified'));
  for (const entry of notified) progress.event(`notified: ${entry.message}`);
  return [];
}
