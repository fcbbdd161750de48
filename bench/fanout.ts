/**
 * Fan-out: how long from a kill sent over REST until N WebSocket SDK streams have applied it, for
 * N = 1,000 and 10,000. The flag server runs in its own process (embedded store, 50 flags); the
 * streams are held by separate client processes (bench/fanout-clients.ts). Each round kills or
 * revives one flag over REST, one at a time, and waits until every stream has applied the patch.
 *
 *   pnpm bench:fanout [--clients 1000,10000] [--rounds 20] [--warmup 4] [--procs 2] [--skip-baseline]
 *
 * For comparison it then measures the floor the machine sets: the same N plain TCP connections, held
 * by the same client processes, each sent one patch-sized buffer per round by a bare TCP server
 * process (bench/fanout-tcp.ts) — no WebSocket framing, no JSON, no flag server. And, when a C
 * compiler is at hand, the kernel's own floor without Node (bench/fanout-floor.c): one write(2) per
 * connection from one thread and from one thread per core, one read(2) per arrival.
 *
 * Latency of one stream in one round = the moment it received the patch − the moment the REST
 * request was sent, both read from process.hrtime (CLOCK_MONOTONIC, shared by every process of a
 * machine), so no clock offset between the processes enters the figures.
 */
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FromClients, ToClients } from './fanout-clients.js';
import type { FromTcpServer, ToTcpServer } from './fanout-tcp.js';
import {
  call,
  type FlagServer,
  fileLimits,
  fmt,
  loadFlags,
  loadLine,
  machineLine,
  met,
  quantile,
  sdkKey,
  spawnNode,
  startFlagServer,
} from './server.js';

const TARGET = { clients: 10_000, p99Ms: 50 };
const FLAGS = 50;
const KILLED_FLAG = '/api/v1/envs/production/flags/bench-000';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000,10000' },
    rounds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '4' },
    procs: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '100' },
    'skip-baseline': { type: 'boolean', default: false },
  },
});
const SIZES = args.clients.split(',').map(Number);
const ROUNDS = Number(args.rounds);
const WARMUP = Number(args.warmup);
const PROCS = Number(args.procs);
const CONCURRENCY = Number(args.concurrency);
/** Open files a process needs beyond its sockets (stdio, IPC, the data directory, Node's own). */
const SPARE_FILES = 256;

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The client processes of one run, and what they reported. */
class Clients {
  private readonly procs: ChildProcess[] = [];
  private readonly rounds = new Map<number, number[][]>();
  private readyCount = 0;
  private failure: string | undefined;
  private wake: () => void = () => {};

  constructor(
    private readonly total: number,
    files: number | undefined,
  ) {
    for (let i = 0; i < PROCS; i++) {
      const child = spawnNode(['--import', 'tsx', 'fanout-clients.ts'], {
        ...(files === undefined ? {} : { files }),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child.on('message', (message: FromClients) => this.receive(message));
      child.once('exit', (code) => {
        if (code !== 0 && code !== null) this.fail(`client process exited with ${code}`);
      });
      this.procs.push(child);
    }
  }

  /** Opens the streams (split evenly over the processes); resolves with the time it took, in ms. */
  async open(mode: 'ws' | 'tcp', url: string, key = ''): Promise<number> {
    const started = monotonicMs();
    this.procs.forEach((child, i) => {
      const count = Math.floor(this.total / PROCS) + (i < this.total % PROCS ? 1 : 0);
      this.post(child, { type: 'start', mode, url, key, count, concurrency: CONCURRENCY });
    });
    await this.until(() => this.readyCount === this.procs.length, 300_000, 'streams to open');
    return monotonicMs() - started;
  }

  /** Every stream's receive time of `revision`, once all have it. */
  async received(revision: number, timeoutMs = 30_000): Promise<number[]> {
    await this.until(
      () => (this.rounds.get(revision)?.length ?? 0) === this.procs.length,
      timeoutMs,
      `revision ${revision}`,
    );
    const times = this.rounds.get(revision)!.flat();
    this.rounds.delete(revision);
    return times;
  }

  async close(): Promise<void> {
    const exited = this.procs.map((child) =>
      child.exitCode !== null
        ? Promise.resolve()
        : new Promise<void>((resolve) => child.once('exit', () => resolve())),
    );
    for (const child of this.procs) if (child.connected) this.post(child, { type: 'stop' });
    const timer = setTimeout(() => {
      for (const child of this.procs) child.kill('SIGKILL');
    }, 10_000);
    await Promise.all(exited);
    clearTimeout(timer);
  }

  private post(child: ChildProcess, message: ToClients): void {
    child.send(message);
  }

  private receive(message: FromClients): void {
    if (message.type === 'ready') this.readyCount++;
    else if (message.type === 'round') {
      const list = this.rounds.get(message.revision) ?? [];
      list.push(message.times);
      this.rounds.set(message.revision, list);
    } else this.fail(message.message);
    this.wake();
  }

  private fail(message: string): void {
    this.failure ??= message;
    this.wake();
  }

  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.failure) throw new Error(`client process failed: ${this.failure}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

interface Stats {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function stats(values: number[]): Stats {
  const sorted = Float64Array.from(values).sort();
  return {
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

const ms = (x: number) => fmt(x, 1).padStart(8);
const statsLine = (label: string, s: Stats) =>
  `  ${label.padEnd(44)} ${ms(s.p50)} ${ms(s.p90)} ${ms(s.p99)} ${ms(s.max)}`;

interface Result {
  clients: number;
  /** Per stream and round, by what the round did. */
  latencies: { kill: number[]; revive: number[]; write: number[] };
  /** Per round: until the last stream had the patch. */
  allApplied: number[];
  /** Per round: until the REST response (or the TCP server's report) arrived. */
  answered: number[];
}

/**
 * Opens `n` streams (or plain connections) over the client processes, then runs the rounds: each
 * `trigger` makes one change and returns its revision (or round number) and what it did.
 */
async function measure(
  n: number,
  files: number | undefined,
  open: (clients: Clients) => Promise<number>,
  trigger: (round: number) => Promise<{ revision: number; kind: keyof Result['latencies'] }>,
  label: string,
): Promise<Result> {
  const clients = new Clients(n, files);
  const result: Result = {
    clients: n,
    latencies: { kill: [], revive: [], write: [] },
    allApplied: [],
    answered: [],
  };
  try {
    const openMs = await open(clients);
    console.log(`N = ${fmt(n)} ${label}: open in ${fmt(openMs / 1000, 1)} s over ${PROCS} client processes`);
    await sleep(1000);
    for (let round = 0; round < WARMUP + ROUNDS; round++) {
      const sent = monotonicMs();
      const { revision, kind } = await trigger(round);
      const answered = monotonicMs();
      const times = await clients.received(revision);
      if (round < WARMUP) continue;
      const latencies = times.map((t) => t - sent);
      result.latencies[kind].push(...latencies);
      result.allApplied.push(Math.max(...latencies));
      result.answered.push(answered - sent);
      // Let the processes settle (garbage collection, the IPC report) before the next round.
      await sleep(100);
    }
  } finally {
    await clients.close();
  }
  return result;
}

/** N SDK streams on the flag server; each round kills or revives one flag over REST. */
function flagServerRun(
  server: FlagServer,
  key: string,
  n: number,
  files: number | undefined,
): Promise<Result> {
  return measure(
    n,
    files,
    (clients) => clients.open('ws', server.streamUrl, key),
    async (round) => {
      const kind = round % 2 === 0 ? 'kill' : 'revive';
      const flag = await call<{ version: number; killed: boolean }>(
        server.url,
        server.admin,
        'POST',
        `${KILLED_FLAG}/${kind}`,
        { reason: 'fan-out benchmark' },
      );
      if (flag.killed !== (kind === 'kill')) throw new Error(`the ${kind} changed nothing`);
      return { revision: flag.version, kind };
    },
    'WebSocket streams on the flag server',
  );
}

/** N plain TCP connections to a bare server process writing `bytes` to each per round. */
async function baselineRun(n: number, files: number | undefined, bytes: number): Promise<Result> {
  const server = spawnNode(['--import', 'tsx', 'fanout-tcp.ts'], {
    ...(files === undefined ? {} : { files }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: FromTcpServer[] = [];
  let wake = () => {};
  server.on('message', (message: FromTcpServer) => {
    messages.push(message);
    wake();
  });
  const next = async (type: FromTcpServer['type']) => {
    for (;;) {
      const i = messages.findIndex((m) => m.type === type);
      if (i >= 0) return messages.splice(i, 1)[0]!;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  const post = (message: ToTcpServer) => server.send(message);
  try {
    const listening = (await next('listening')) as { url: string };
    return await measure(
      n,
      files,
      (clients) => clients.open('tcp', listening.url),
      async (round) => {
        post({ type: 'write', round: round + 1, bytes });
        await next('written');
        return { revision: round + 1, kind: 'write' };
      },
      `plain TCP connections (floor), ${fmt(bytes)} B per round`,
    );
  } finally {
    const exited = once(server, 'exit');
    if (server.connected) post({ type: 'stop' });
    await exited;
  }
}

/** One thread count's rounds of bench/fanout-floor.c. */
interface KernelFloor {
  clients: number;
  threads: number;
  /** Per connection and round. */
  latencies: number[];
  /** Per round: the writer's loop over every connection. */
  writeMs: number[];
}

/**
 * The kernel's floor: bench/fanout-floor.c compiled with `cc` and run for `n` connections, from one
 * writer thread and from one per core. Undefined (with a note) when there is no C compiler.
 */
function kernelFloorRuns(n: number, bytes: number): KernelFloor[] | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-fanout-floor-'));
  try {
    const binary = join(dir, 'fanout-floor');
    const cc = spawnSync('cc', ['-O2', '-pthread', '-o', binary, 'fanout-floor.c'], { encoding: 'utf8' });
    if (cc.status !== 0) {
      console.log(`No kernel floor: cc failed (${cc.error?.message ?? cc.stderr.trim()})`);
      return undefined;
    }
    const runs: KernelFloor[] = [];
    for (const threads of [...new Set([1, availableParallelism()])]) {
      const out = execFileSync(binary, [String(n), String(bytes), String(threads), String(WARMUP + ROUNDS)], {
        encoding: 'utf8',
        maxBuffer: 1 << 30,
      });
      const rounds = out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { round: number; writeMs: number; latencies: number[] })
        .filter((r) => r.round >= WARMUP);
      runs.push({
        clients: n,
        threads,
        latencies: rounds.flatMap((r) => r.latencies),
        writeMs: rounds.map((r) => r.writeMs),
      });
    }
    return runs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(machineLine('Vigil fan-out benchmark'));
  const limits = fileLimits();
  const largest = Math.max(...SIZES);
  const serverFiles = largest + SPARE_FILES;
  const clientFiles = Math.ceil(largest / PROCS) + SPARE_FILES;
  console.log(
    `Open-file limit (ulimit -n): soft ${limits.soft}, hard ${limits.hard}; N = ${fmt(largest)} needs ~${fmt(serverFiles)} in the server ` +
      `and ~${fmt(clientFiles)} in each of ${PROCS} client processes`,
  );
  if (limits.hard < serverFiles) {
    console.log(
      `The hard limit is too low for N = ${fmt(largest)}: raise it (e.g. \`ulimit -Hn ${serverFiles}\` as root, or LimitNOFILE=)` +
        ', or run with a smaller --clients list.',
    );
    process.exitCode = 1;
    return;
  }
  // Raised to what is needed in the children (up to the hard limit), which sh does before exec'ing node.
  const files = (need: number) => (limits.soft >= need ? undefined : need);
  console.log(
    `${ROUNDS} measured rounds per N after ${WARMUP} warm-up rounds, alternating kill and revive of one flag, one at a time; ` +
      'the server writes each patch as one pre-serialized buffer to every stream.',
  );

  const server = await startFlagServer({
    ...(files(serverFiles) === undefined ? {} : { files: serverFiles }),
  });
  const results: Result[] = [];
  const floors: Result[] = [];
  const kernelFloors: KernelFloor[] = [];
  let patchBytes = 0;
  try {
    await loadFlags(server, FLAGS);
    const key = await sdkKey(server);
    const flag = await call(server.url, server.admin, 'GET', KILLED_FLAG);
    patchBytes = Buffer.byteLength(
      JSON.stringify({
        type: 'patch',
        revision: 1000,
        flags: [flag],
        segments: [],
        deleted: { flags: [], segments: [] },
      }),
    );
    console.log(`The patch each stream gets is ~${fmt(patchBytes)} bytes.\n`);
    for (const n of SIZES)
      results.push(await flagServerRun(server, key, n, files(Math.ceil(n / PROCS) + SPARE_FILES)));
  } finally {
    await server.stop();
  }
  if (!args['skip-baseline']) {
    for (const n of SIZES) {
      const need = (count: number) => files(count + SPARE_FILES);
      floors.push(await baselineRun(n, need(Math.max(n, Math.ceil(n / PROCS))), patchBytes));
      kernelFloors.push(...(kernelFloorRuns(n, patchBytes) ?? []));
    }
  }

  const heading = (title: string) =>
    console.log(`\n${title.padEnd(46)} ${['p50', 'p90', 'p99', 'max'].map((h) => h.padStart(8)).join(' ')}`);
  heading('Latency from the REST request (ms)');
  for (const r of results) {
    const { kill, revive } = r.latencies;
    console.log(`N = ${fmt(r.clients)}`);
    console.log(statsLine(`kill → a stream applied it (${fmt(kill.length)} samples)`, stats(kill)));
    console.log(statsLine(`revive → a stream applied it (${fmt(revive.length)})`, stats(revive)));
    console.log(
      statsLine(
        `either → a stream applied it (${fmt(kill.length + revive.length)})`,
        stats([...kill, ...revive]),
      ),
    );
    console.log(
      statsLine(`→ the last stream applied it (${r.allApplied.length} rounds)`, stats(r.allApplied)),
    );
    console.log(statsLine(`→ the REST response (${r.answered.length} rounds)`, stats(r.answered)));
  }
  if (floors.length > 0) {
    heading('Floor: plain TCP, same processes (ms)');
    for (const r of floors) {
      console.log(`N = ${fmt(r.clients)}`);
      console.log(
        statsLine(
          `write → a connection read it (${fmt(r.latencies.write.length)})`,
          stats(r.latencies.write),
        ),
      );
      console.log(
        statsLine(`→ the last connection read it (${r.allApplied.length} rounds)`, stats(r.allApplied)),
      );
      console.log(statsLine("→ the server's write loop done", stats(r.answered)));
    }
  }
  if (kernelFloors.length > 0) {
    heading('Floor without Node: C, write(2) and epoll (ms)');
    for (const r of kernelFloors) {
      const writer = `${r.threads} writer thread${r.threads === 1 ? '' : 's'}`;
      console.log(`N = ${fmt(r.clients)}, ${writer}`);
      console.log(statsLine(`write → a connection read it (${fmt(r.latencies.length)})`, stats(r.latencies)));
      console.log(statsLine('→ the write loop done', stats(r.writeMs)));
    }
  }

  console.log('\nTargets (reported, not enforced):');
  for (const r of results) {
    if (r.clients !== TARGET.clients) continue;
    const p99 = stats(r.latencies.kill).p99;
    const floor = floors.find((f) => f.clients === r.clients);
    const floorNotes = [
      ...(floor ? [`plain-TCP floor in Node: p99 ${fmt(stats(floor.latencies.write).p99, 1)} ms`] : []),
      ...kernelFloors
        .filter((k) => k.clients === r.clients)
        .map((k) => `C floor, ${k.threads} thread(s): p99 ${fmt(stats(k.latencies).p99, 1)} ms`),
    ];
    const floorNote = floorNotes.length > 0 ? ` (on this machine now: ${floorNotes.join('; ')})` : '';
    console.log(
      `  kill → ${fmt(TARGET.clients)} clients p99 <= ${TARGET.p99Ms} ms   ${fmt(p99, 1)} ms   ${met(p99 <= TARGET.p99Ms)}${floorNote}`,
    );
  }
  console.log(`\n${loadLine()}`);
}

await main();
