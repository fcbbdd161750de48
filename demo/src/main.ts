#!/usr/bin/env node
// `pnpm demo`: a guarded progressive rollout that goes wrong, end to end, against a real Vigil.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { durationMs, durationSchema } from '@vigil/proto';
import pc from 'picocolors';
import { AdminApi } from './api.js';
import { clock, Progress } from './progress.js';
import { NotificationReceiver } from './receiver.js';
import { runScenario, type ScenarioResult } from './scenario.js';
import { canStartVigil, startVigil, type VigilProcess } from './vigil-process.js';

const USAGE = `Usage: pnpm demo [options]

Starts Vigil (flag server + guardian, as \`pnpm start\` does, on a throwaway embedded store) unless
--url names a running one, then: creates a guarded flag with a progressive schedule, runs a checkout
app on the Node SDK under simulated traffic, makes the new checkout fail, and follows the guardian as
it kills the flag, opens the incident, notifies (a local webhook and Slack receiver) and drafts the
postmortem.

Options:
  --url <url>             drive this Vigil instead (env VIGIL_URL; needs VIGIL_TOKEN, an admin token)
  --sdk-url <url>         where the app's SDK streams flags from (default: --url)
  --env <env>             environment to use (default: demo)
  --flag <key>            flag key (default: checkout-v2)
  --rate <n>              checkout requests a second (default: 300)
  --hold <duration>       each step's healthy hold, e.g. 15s (default: 15s)
  --fault-rate <0..1>     share of new-checkout requests that fail once the fault is in (default: 0.25)
  --receiver-host <host>  where the notification receiver listens (default: 127.0.0.1)
  --receiver-port <port>  its port (default: a free one); with --url, point the guardian's
                          VIGIL_WEBHOOK_URL at http://<host>:<port>/webhook and share VIGIL_WEBHOOK_SECRET
  --keep                  leave the demo's own Vigil running afterwards, to explore it
  -h, --help              this text`;

/** A bad command line: exit 2 with the usage. */
class UsageError extends Error {}

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      'sdk-url': { type: 'string' },
      env: { type: 'string', default: 'demo' },
      flag: { type: 'string', default: 'checkout-v2' },
      rate: { type: 'string', default: '300' },
      hold: { type: 'string', default: '15s' },
      'fault-rate': { type: 'string', default: '0.25' },
      'receiver-host': { type: 'string', default: '127.0.0.1' },
      'receiver-port': { type: 'string', default: '0' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const number = (name: string, value: string, min: number, max: number) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new UsageError(`--${name} must be a number from ${min} to ${max}, not "${value}"`);
    return n;
  };
  const hold = durationSchema.safeParse(/^\d+$/.test(values.hold) ? Number(values.hold) : values.hold);
  if (!hold.success)
    throw new UsageError(`--hold must be a duration such as 15s or 1m, not "${values.hold}"`);
  const holdMs = durationMs(hold.data);
  if (holdMs < 3000) throw new UsageError('--hold must be at least 3s: the guardian needs samples to judge');
  const url = values.url ?? process.env.VIGIL_URL;
  return {
    help: values.help,
    url,
    sdkUrl: values['sdk-url'],
    env: values.env,
    flag: values.flag,
    rate: number('rate', values.rate, 50, 5000),
    holdMs,
    faultRate: number('fault-rate', values['fault-rate'], 0.02, 1),
    receiverHost: values['receiver-host'],
    receiverPort: number('receiver-port', values['receiver-port'], 0, 65_535),
    keep: values.keep,
  };
}

function printSummary(result: ScenarioResult, startedAt: number, savedAs: string): void {
  const { incident, notifications } = result;
  const out: string[] = [
    '',
    pc.bold(`Incident ${incident.id}`) + `  ${incident.severity}, ${incident.status}`,
  ];
  out.push(`  ${incident.summary}`, '', pc.bold('Timeline'));
  for (const entry of incident.timeline)
    out.push(
      `  ${clock(startedAt, Date.parse(entry.at)).padStart(5)}  ${entry.kind.padEnd(12)} ${entry.message}`,
    );
  if (notifications.length > 0) {
    out.push(
      '',
      pc.bold("Notifications at the demo's receiver") + pc.dim(' (deduplicated on their own keys)'),
    );
    for (const n of notifications)
      out.push(
        `  ${n.channel.padEnd(8)} ${n.title.split('\n')[0]}  ${pc.dim(`${n.deliveries} deliver${n.deliveries === 1 ? 'y' : 'ies'}${n.channel === 'webhook' ? ', HMAC signature verified' : ''}`)}`,
      );
  }
  out.push('', pc.bold('Postmortem draft') + pc.dim(` (saved to ${savedAs})`), '', result.postmortem);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  let opts: ReturnType<typeof options>;
  try {
    opts = options();
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error;
    process.stderr.write(`pnpm demo: ${error.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const token = process.env.VIGIL_TOKEN;
  if (opts.url && !token) {
    process.stderr.write('pnpm demo: --url needs VIGIL_TOKEN, an admin token of that Vigil\n');
    process.exit(2);
  }
  if (!opts.url && !canStartVigil()) {
    process.stderr.write(
      'pnpm demo: this install has no Vigil sources to start; pass --url and VIGIL_TOKEN\n',
    );
    process.exit(2);
  }

  const progress = new Progress(`Vigil demo: ${opts.flag} rolls out under the guardian's watch`);
  const secret = process.env.VIGIL_WEBHOOK_SECRET || randomBytes(24).toString('hex');
  const receiver = new NotificationReceiver(secret, (n) =>
    progress.event(
      `${pc.magenta(n.channel === 'webhook' ? 'webhook received' : 'slack received')} ${n.title.split('\n')[0]}`,
    ),
  );
  await receiver.start(opts.receiverPort, opts.receiverHost);

  let own: VigilProcess | undefined;
  const cleanUp = async (keepVigil: boolean) => {
    await receiver.close();
    if (own && !keepVigil) await own.stop();
  };
  process.once('SIGINT', () => {
    void cleanUp(false).then(() => process.exit(130));
  });

  try {
    if (!opts.url) {
      process.stdout.write('Starting Vigil (flag server + guardian, embedded store)…\n');
      own = await startVigil({ webhookUrl: receiver.webhookUrl, slackUrl: receiver.slackUrl, secret });
    }
    const url = opts.url ?? (own as VigilProcess).url;
    const api = new AdminApi(url.replace(/\/+$/, ''), own?.adminToken ?? (token as string), opts.env);
    progress.start();
    progress.event(
      `Vigil at ${url}${own ? ' (started by the demo, webhook + Slack pointed at its receiver)' : ''}`,
    );
    // The console shows the same run live: the rollout's steps and the kill appear there within a second.
    progress.event(
      `console: ${url.replace(/\/+$/, '')}/flags/${encodeURIComponent(opts.env)}  (sign in with ${own ? `the token ${own.adminToken}` : 'your VIGIL_TOKEN'})`,
    );
    const result = await runScenario({
      api,
      sdkUrl: opts.sdkUrl ?? url,
      flag: opts.flag,
      rate: opts.rate,
      holdMs: opts.holdMs,
      faultAfterMs: Math.min(5000, opts.holdMs / 2),
      faultRate: opts.faultRate,
      timeoutMs: 8 * opts.holdMs + 120_000,
      progress,
      // With someone else's Vigil, its guardian notifies the receiver only if configured to.
      ...(own
        ? { receiver: { receiver, channels: ['webhook', 'slack'] } }
        : process.env.VIGIL_WEBHOOK_SECRET
          ? { receiver: { receiver, channels: ['webhook'] } }
          : {}),
    });
    progress.stop();

    // pnpm runs the script in demo/; INIT_CWD is where the user typed `pnpm demo`.
    const cwd = process.env.INIT_CWD ?? process.cwd();
    const file = join(cwd, '.vigil', 'demo', `postmortem-${result.incident.id}.md`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, result.postmortem);
    printSummary(result, progress.startedAt, relative(cwd, file));

    if (own && opts.keep) {
      process.stdout.write(
        `\nVigil keeps running at ${url} (Ctrl-C stops it). Explore it:\n` +
          `  export VIGIL_URL=${url} VIGIL_TOKEN=${own.adminToken} VIGIL_ENV=${opts.env}\n` +
          `  pnpm vigil flags list\n  pnpm vigil incidents list\n  pnpm vigil revive ${opts.flag} --reason "fixed"\n`,
      );
      await new Promise(() => {});
    }
    process.stdout.write(
      pc.green(`\nDone: the guardian killed ${opts.flag} and opened ${result.incident.id}.\n`),
    );
    await cleanUp(false);
  } catch (error) {
    progress.stop();
    process.stderr.write(
      `\n${pc.red('demo failed:')} ${error instanceof Error ? error.message : String(error)}\n` +
        (own ? `\nVigil's output:\n${own.output()}\n` : ''),
    );
    await cleanUp(false);
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `pnpm demo: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
