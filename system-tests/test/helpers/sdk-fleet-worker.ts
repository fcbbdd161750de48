import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type Context, createClient, type VigilClient } from '@vigil/node';
import type { ClientReport, FleetReply, FleetRequest, FleetSettings } from './sdk-fleet.js';

// A fleet of real @vigil/node clients in one process, driven by the test over IPC (see sdk-fleet.ts).
// It records each client's stream losses, resyncs and revisions with epoch-ms timestamps.

/** What happened to one client. */
interface Life {
  lostAt: number[];
  syncedAt: number[];
  revisions: [at: number, revision: number][];
  errors: string[];
  warnings: number;
}

interface Member {
  id: number;
  client: VigilClient;
  life: Life;
}

const settings = JSON.parse(process.env.VIGIL_FLEET ?? '{}') as FleetSettings;
const members: Member[] = [];
/** Clients that lost their stream and have not streamed again yet: checked every few ms. */
const recovering = new Set<Member>();
const MAX_ERRORS = 5;
const BATCH = 100;

/** Adds `count` clients, a batch at a time (as app instances come up), and resolves once all are ready. */
async function add(count: number): Promise<number> {
  const started = Date.now();
  for (let done = 0; done < count; done += BATCH) {
    const batch = spawnClients(Math.min(BATCH, count - done));
    const ready = await Promise.all(batch.map((m) => m.client.waitForReady(settings.readyTimeoutMs)));
    const missing = ready.filter((r) => !r).length;
    if (missing > 0) throw new Error(`${missing} of ${batch.length} clients were not ready in time`);
  }
  return Date.now() - started;
}

function spawnClients(count: number): Member[] {
  const created: Member[] = [];
  for (let i = 0; i < count; i++) {
    const life: Life = { lostAt: [], syncedAt: [], revisions: [], errors: [], warnings: 0 };
    const note = (error: string) => {
      if (life.errors.length < MAX_ERRORS) life.errors.push(error);
    };
    const client = createClient({
      ...(settings.url === undefined ? {} : { url: settings.url }),
      ...(settings.urls === undefined ? {} : { urls: settings.urls }),
      sdkKey: settings.sdkKey,
      metrics: false,
      // Counted, not printed: a thousand clients losing a replica would flood the test's output.
      logger: {
        warn: () => {
          life.warnings += 1;
        },
        error: (obj, msg) => note(msg ?? JSON.stringify(obj)),
      },
    });
    const member: Member = { id: members.length, client, life };
    client.on('stale', () => {
      life.lostAt.push(Date.now());
      recovering.add(member);
    });
    client.on('change', () => life.revisions.push([Date.now(), client.revision]));
    client.on('ready', () => life.revisions.push([Date.now(), client.revision]));
    client.on('error', (error) => note(`${error.code}: ${error.message}`));
    members.push(member);
    created.push(member);
  }
  return created;
}

// How late this process ran its callbacks: a busy loop delays every client's timers and sockets alike.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

/** Records when each recovering client streams again (run on a timer, and before every report). */
function sweep(): void {
  for (const member of recovering) {
    if (member.client.stats().state === 'streaming') {
      member.life.syncedAt.push(Date.now());
      recovering.delete(member);
    }
  }
}
const watch = setInterval(sweep, 20);

function report(
  member: Member,
  evaluate: { flags: string[]; contexts: Context[] } | undefined,
): ClientReport {
  const stats = member.client.stats();
  const out: ClientReport = {
    id: member.id,
    ready: stats.ready,
    state: stats.state,
    stale: stats.stale,
    polling: stats.polling,
    revision: stats.revision,
    connects: stats.connects,
    streamFailures: stats.streamFailures,
    server: stats.server,
    snapshots: stats.snapshots,
    patches: stats.patches,
    ...member.life,
  };
  if (evaluate) {
    out.variants = evaluate.contexts.map((context) =>
      evaluate.flags.map((flag) => member.client.variant(flag, context) ?? null),
    );
  }
  return out;
}

async function handle(request: FleetRequest): Promise<FleetReply> {
  switch (request.type) {
    case 'add':
      return { id: request.id, ok: true, readyMs: await add(request.count), size: members.length };
    case 'report':
      sweep();
      return { id: request.id, ok: true, clients: members.map((m) => report(m, request.evaluate)) };
    case 'loop-delay': {
      const loopDelayMs = { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
      loopDelay.reset();
      return { id: request.id, ok: true, loopDelayMs };
    }
    case 'close':
      clearInterval(watch);
      await Promise.all(members.map((m) => m.client.close()));
      return { id: request.id, ok: true };
  }
}

process.on('message', (message: FleetRequest) => {
  handle(message).then(
    (reply) => process.send!(reply),
    (error: unknown) =>
      process.send!({
        id: message.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      }),
  );
});
// The test going away (even by SIGKILL) closes the channel: leave with it rather than linger.
process.on('disconnect', () => process.exit(0));
