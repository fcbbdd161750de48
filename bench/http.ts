/**
 * HTTP throughput of the flag server, with autocannon: the SDK polling endpoint `GET /v1/flags`
 * (full snapshot, and the `If-None-Match` → 304 path) and two admin write routes (flag upsert,
 * kill/revive), against a server in its own process holding 50 flags — on the embedded store, and
 * with `--redis` also on a private redis-server.
 *
 * Last, the polling scenarios run against bare node:http (bench/http-floor.ts) for comparison.
 *
 *   pnpm bench:http [--duration 10] [--connections 100] [--write-connections 50] [--redis] [--skip-floor]
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import {
  benchFlag,
  call,
  type FlagServer,
  fmt,
  loadFlags,
  loadLine,
  machineLine,
  met,
  sdkKey,
  spawnNode,
  startFlagServer,
  startRedis,
} from './server.js';

const TARGET_POLL_RPS = 20_000;
const FLAGS = 50;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '100' },
    'write-connections': { type: 'string', default: '50' },
    redis: { type: 'boolean', default: false },
    'skip-floor': { type: 'boolean', default: false },
  },
});
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const WRITE_CONNECTIONS = Number(args['write-connections']);

interface Scenario {
  name: string;
  kind: 'poll' | 'write';
  pipelining: number;
  connections: number;
  /** The status class every answer should have. */
  expect: '2xx' | '3xx';
  options: (server: FlagServer, key: string, revision: number) => Partial<autocannon.Options>;
}

const flagPath = (i: number) => `/api/v1/envs/production/flags/bench-${String(i).padStart(3, '0')}`;

let writes = 0;
const SCENARIOS: Scenario[] = [
  ...[1, 10].map(
    (pipelining): Scenario => ({
      name: 'GET /v1/flags (200, full snapshot)',
      kind: 'poll',
      pipelining,
      connections: CONNECTIONS,
      expect: '2xx',
      options: (server, key) => ({
        url: `${server.url}/v1/flags`,
        headers: { authorization: `Bearer ${key}` },
      }),
    }),
  ),
  ...[1, 10].map(
    (pipelining): Scenario => ({
      name: 'GET /v1/flags If-None-Match (304)',
      kind: 'poll',
      pipelining,
      connections: CONNECTIONS,
      expect: '3xx',
      options: (server, key, revision) => ({
        url: `${server.url}/v1/flags`,
        headers: { authorization: `Bearer ${key}`, 'if-none-match': `"${revision}"` },
      }),
    }),
  ),
  {
    name: 'PUT /api/v1/envs/production/flags/{key} (upsert)',
    kind: 'write',
    pipelining: 1,
    connections: WRITE_CONNECTIONS,
    expect: '2xx',
    options: (server) => ({
      requests: [
        {
          method: 'PUT',
          headers: { authorization: `Bearer ${server.admin}`, 'content-type': 'application/json' },
          // Each request a real change: the next flag of the 50, with a new description.
          setupRequest: (request) => {
            const n = writes++;
            const body = JSON.stringify(benchFlag(n % FLAGS, `write ${n}`));
            return { ...request, path: flagPath(n % FLAGS), body };
          },
        },
      ],
    }),
  },
  {
    name: 'POST .../flags/{key}/kill then /revive',
    kind: 'write',
    pipelining: 1,
    connections: WRITE_CONNECTIONS,
    expect: '2xx',
    options: (server) => {
      const headers = { authorization: `Bearer ${server.admin}`, 'content-type': 'application/json' };
      const body = JSON.stringify({ reason: 'benchmark' });
      return {
        requests: [
          {
            method: 'POST',
            headers,
            body,
            // Each loop of a connection kills one flag and revives it; the context lives one loop.
            setupRequest: (request, context: { flag?: number }) => {
              context.flag = writes++ % FLAGS;
              return { ...request, path: `${flagPath(context.flag)}/kill` };
            },
          },
          {
            method: 'POST',
            headers,
            body,
            setupRequest: (request, context: { flag?: number }) => ({
              ...request,
              path: `${flagPath(context.flag ?? 0)}/revive`,
            }),
          },
        ],
      };
    },
  },
];

/** CPU seconds a process has used (user + system), from /proc; NaN where there is none. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command; in clock ticks (100/s).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

interface Row {
  store: string;
  scenario: Scenario;
  result: autocannon.Result;
  serverCpu: number;
  clientCpu: number;
  revisions: number;
}

/** What the scenarios run against: a flag server, or the bare floor server. */
interface Target {
  label: string;
  server: FlagServer;
  key: string;
  /** The revision `If-None-Match` should name now. */
  revision(): Promise<number>;
}

async function runScenarios(target: Target, scenarios: Scenario[]): Promise<Row[]> {
  const { server, key } = target;
  const rows: Row[] = [];
  // Warm the server up (JIT, connection pools) before anything is timed.
  await autocannon({
    url: `${server.url}/v1/flags`,
    headers: { authorization: `Bearer ${key}` },
    connections: 10,
    duration: 2,
  });
  for (const scenario of scenarios) {
    const revision = await target.revision();
    const serverBefore = cpuSeconds(server.child.pid!);
    const clientBefore = process.cpuUsage();
    const result = await autocannon({
      url: server.url,
      connections: scenario.connections,
      pipelining: scenario.pipelining,
      duration: DURATION,
      ...scenario.options(server, key, revision),
    });
    const elapsed = result.duration;
    const client = process.cpuUsage(clientBefore);
    rows.push({
      store: target.label,
      scenario,
      result,
      serverCpu: (cpuSeconds(server.child.pid!) - serverBefore) / elapsed,
      clientCpu: (client.user + client.system) / 1e6 / elapsed,
      revisions: (await target.revision()) - revision,
    });
    printRow(rows.at(-1)!);
  }
  return rows;
}

/** Runs every scenario against a flag server on one store; returns the rows and the snapshot's size. */
async function runStore(store: 'embedded' | 'redis'): Promise<{ rows: Row[]; snapshotBytes: number }> {
  const redis = store === 'redis' ? await startRedis() : undefined;
  if (store === 'redis' && !redis) {
    console.log('\n(no redis-server installed: skipping the Redis runs)');
    return { rows: [], snapshotBytes: 0 };
  }
  const server = await startFlagServer(redis ? { redisUrl: redis.url } : {});
  try {
    await loadFlags(server, FLAGS);
    const key = await sdkKey(server);
    const response = await fetch(`${server.url}/v1/flags`, { headers: { authorization: `Bearer ${key}` } });
    const snapshotBytes = (await response.arrayBuffer()).byteLength;
    console.log(
      `\n${store} store: ${FLAGS} flags, snapshot body ${fmt(snapshotBytes)} bytes; server pid ${server.child.pid}`,
    );
    const revision = async () =>
      (await call<{ revision: number }>(server.url, key, 'GET', '/v1/flags')).revision;
    return { rows: await runScenarios({ label: store, server, key, revision }, SCENARIOS), snapshotBytes };
  } finally {
    await server.stop();
    await redis?.stop();
  }
}

/** The polling scenarios against bare node:http (bench/http-floor.ts) serving a body of the same size. */
async function runFloor(bodyBytes: number): Promise<Row[]> {
  const child = spawnNode(['--import', 'tsx', 'http-floor.ts', String(bodyBytes)], {});
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d.toString();
  });
  const exited = once(child, 'exit');
  try {
    const deadline = Date.now() + 30_000;
    const listening = () => /listening on (http:\/\/\S+)/.exec(out)?.[1];
    while (!listening()) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`floor server did not start: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const url = listening()!;
    console.log(
      `\nfloor: bare node:http, no framework, fixed ${fmt(bodyBytes)}-byte body; server pid ${child.pid}`,
    );
    const server: FlagServer = { url, streamUrl: '', admin: '', child, stop: async () => {} };
    const polls = SCENARIOS.filter((s) => s.kind === 'poll');
    return await runScenarios({ label: 'floor', server, key: 'none', revision: async () => 1 }, polls);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

function header(): void {
  console.log(
    `  ${pad('scenario', 52)} ${lpad('conns', 5)} ${lpad('pipe', 4)} ${lpad('req/s', 9)} ${lpad('p50 ms', 7)} ${lpad('p99 ms', 7)} ` +
      `${lpad('answers', 10)} ${lpad('other', 6)} ${lpad('errors', 6)} ${lpad('server', 6)} ${lpad('client', 6)} ${lpad('req/CPU-s', 9)}  writes`,
  );
}

function printRow({ scenario, result, serverCpu, clientCpu, revisions }: Row): void {
  const expected = result[scenario.expect];
  const other = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx'] - expected;
  const pct = (x: number) => (Number.isNaN(x) ? '-' : `${Math.round(x * 100)}%`);
  console.log(
    `  ${pad(scenario.name, 52)} ${lpad(String(scenario.connections), 5)} ${lpad(String(scenario.pipelining), 4)} ` +
      `${lpad(fmt(result.requests.mean), 9)} ${lpad(String(result.latency.p50), 7)} ${lpad(String(result.latency.p99), 7)} ` +
      `${lpad(`${fmt(expected)} ${scenario.expect}`, 10)} ${lpad(fmt(other), 6)} ${lpad(fmt(result.errors + result.timeouts), 6)} ` +
      `${lpad(pct(serverCpu), 6)} ${lpad(pct(clientCpu), 6)} ${lpad(fmt(result.requests.mean / serverCpu), 9)}  ` +
      `${scenario.kind === 'write' ? fmt(revisions) : '-'}`,
  );
}

async function main(): Promise<void> {
  console.log(machineLine('Vigil HTTP benchmark (autocannon)'));
  console.log(
    `Each scenario runs ${DURATION} s against a server process on 127.0.0.1; autocannon runs in this process.\n` +
      'Columns: mean req/s; latency p50/p99; answers of the expected class; other statuses; errors+timeouts;\n' +
      'CPU of the server process and of this (load-generating) process, 100% = one core; requests per\n' +
      'second of server CPU (what one core given to the server alone would answer; other load on the\n' +
      'machine lowers req/s but hardly this); revisions written.\n' +
      "Last, the same polling scenarios against bare node:http: the machine's own ceiling, for comparison.",
  );
  header();
  const embedded = await runStore('embedded');
  const rows = [...embedded.rows];
  if (args.redis) rows.push(...(await runStore('redis')).rows);
  const floor = args['skip-floor'] ? [] : await runFloor(embedded.snapshotBytes);

  console.log('\nTargets (reported, not enforced):');
  for (const row of rows) {
    if (row.scenario.kind !== 'poll') continue;
    const rps = row.result.requests.mean;
    const label = `${row.store}: ${row.scenario.name}, pipelining ${row.scenario.pipelining}`;
    const bare = floor.find((f) => f.scenario === row.scenario);
    const perCpu = (r: Row) => fmt(r.result.requests.mean / r.serverCpu);
    const note =
      `  per server CPU-s ${perCpu(row)}` +
      (bare === undefined
        ? ''
        : `; bare node:http ${fmt(bare.result.requests.mean)}, per CPU-s ${perCpu(bare)}`);
    console.log(
      `  >= ${fmt(TARGET_POLL_RPS)} req/s  ${pad(label, 62)} ${lpad(fmt(rps), 9)}  ${pad(met(rps >= TARGET_POLL_RPS), 6)}${note}`,
    );
  }
  console.log(`\n${loadLine()}`);
  const failed = [...rows, ...floor].filter(
    (r) => r.result.errors + r.result.timeouts > 0 || r.result[r.scenario.expect] === 0,
  );
  if (failed.length > 0) {
    console.log(`\n${failed.length} scenario(s) had errors or no expected answers`);
    process.exitCode = 1;
  }
}

await main();
