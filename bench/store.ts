/**
 * Durable writes per second and their latency, store against store, in one run: the embedded store
 * (SQLite, WAL, synchronous=FULL, group commit) and the Redis store on a private redis-server with
 * `appendfsync always` (every write fsynced before Redis answers, the same promise). Each store is
 * driven in this process through the `Store` interface (no HTTP), by `--concurrency` writers that
 * each `putFlag` one of 50 flags in a loop (every write a new revision: version check, flag, change
 * log and audit entry), and by one writer alone (every write its own fsync). Last, the floor: what
 * this disk gives one writer that appends 200 bytes and fdatasyncs, in a loop.
 *
 * Per run it prints writes/s, latency p50/p99/max (ms) and the CPU this process spent per write (µs:
 * the whole store for the embedded ones, only the client for Redis), which other load on the machine
 * hardly changes; 1,000,000 / it is what one core given to the store would reach.
 *
 * Target (issue 13): ≥ 10,000 durable writes/s on the embedded store through group commit.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Flag, flagSchema } from '@vigil/proto';
import { EmbeddedStore, RedisStore, type Store } from '@vigil/server';
import { benchFlag, fmt, loadLine, machineLine, met, quantile, startRedis } from './server.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
  },
});
const DURATION_MS = Number(values.duration) * 1000;
const CONCURRENCY = Number(values.concurrency);
const FLAGS: Flag[] = Array.from({ length: 50 }, (_, i) => flagSchema.parse(benchFlag(i)));
const TARGET = 10_000;

interface Row {
  store: string;
  writers: number;
  writes: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU of this process per write (µs): the whole store for the embedded ones, the client for Redis. */
  cpuUs: number;
}

/** `writers` loops of `putFlag` for DURATION_MS against `store`. */
async function drive(name: string, store: Store, writers: number): Promise<Row> {
  const latencies: number[] = [];
  const deadline = performance.now() + DURATION_MS;
  let n = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < deadline) {
        const flag = FLAGS[n++ % FLAGS.length]!;
        const t0 = performance.now();
        await store.putFlag('production', flag, undefined, { actor: 'bench' });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  return {
    store: name,
    writers,
    cpuUs: (used.user + used.system) / latencies.length,
    writes: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: latencies.at(-1) ?? Number.NaN,
  };
}

function printRow(row: Row): void {
  console.log(
    `${row.store.padEnd(34)} ${String(row.writers).padStart(7)} ${fmt(row.perSecond).padStart(10)} ` +
      `${fmt(row.p50, 2).padStart(9)} ${fmt(row.p99, 2).padStart(9)} ${fmt(row.max, 1).padStart(9)} ${fmt(row.writes).padStart(9)} ${fmt(row.cpuUs).padStart(8)}`,
  );
}

async function runStore(name: string, open: () => Promise<{ store: Store; done(): Promise<void> }>) {
  const rows: Row[] = [];
  for (const writers of [CONCURRENCY, 1]) {
    const { store, done } = await open();
    try {
      rows.push(await drive(name, store, writers));
      printRow(rows.at(-1)!);
      if (store instanceof EmbeddedStore)
        console.log(`${''.padEnd(34)}   (${fmt(rows.at(-1)!.writes / store.commits, 1)} writes per commit)`);
    } finally {
      await done();
    }
  }
  return rows;
}

/** One writer appending 200 bytes and fdatasyncing: the most fsyncs per second this disk gives. */
function fsyncFloor(dir: string): Row {
  const fd = openSync(join(dir, 'floor'), 'a');
  const line = Buffer.alloc(200, 'x');
  const latencies: number[] = [];
  const started = performance.now();
  while (performance.now() - started < Math.min(DURATION_MS, 3000)) {
    const t0 = performance.now();
    writeSync(fd, line);
    fdatasyncSync(fd);
    latencies.push(performance.now() - t0);
  }
  closeSync(fd);
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    store: 'floor: write + fdatasync',
    writers: 1,
    cpuUs: Number.NaN,
    writes: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: latencies.at(-1) ?? Number.NaN,
  };
}

async function main(): Promise<void> {
  console.log(machineLine('bench/store.ts'));
  console.log(
    `${DURATION_MS / 1000} s per run; ${FLAGS.length} flags cycled; writers: ${CONCURRENCY} at once, then 1\n`,
  );
  console.log(
    `${'store'.padEnd(34)} ${'writers'.padStart(7)} ${'writes/s'.padStart(10)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'max ms'.padStart(9)} ${'writes'.padStart(9)} ${'CPU µs'.padStart(8)}`,
  );
  const tmp = await mkdtemp(join(tmpdir(), 'vigil-bench-store-'));
  const rows: Row[] = [];
  try {
    rows.push(
      ...(await runStore('embedded (SQLite, group commit)', async () => {
        const dataDir = await mkdtemp(join(tmp, 'sqlite-'));
        const store = new EmbeddedStore({ dataDir, onNotice: () => {} });
        await store.start();
        return { store, done: () => store.close() };
      })),
    );
    const redisRows = await runStore('redis (appendfsync always)', async () => {
      const redis = await startRedis({ appendfsync: 'always' });
      if (!redis) throw new Error('no redis-server');
      const store = new RedisStore({ url: redis.url });
      await store.start();
      return {
        store,
        done: async () => {
          await store.close();
          await redis.stop();
        },
      };
    }).catch((error: Error) => {
      console.log(`(redis skipped: ${error.message})`);
      return [];
    });
    rows.push(...redisRows);
    rows.push(fsyncFloor(tmp));
    printRow(rows.at(-1)!);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const grouped = rows.find((r) => r.store.startsWith('embedded') && r.writers === CONCURRENCY)!;
  console.log(
    `\ntarget ≥ ${fmt(TARGET)} durable writes/s (embedded, ${CONCURRENCY} writers): ${fmt(grouped.perSecond)} — ${met(grouped.perSecond >= TARGET)}`,
  );
  // A group commit's cost is CPU, not fsyncs: what one core would do is the figure other load cannot bend.
  console.log(
    `one core given to the embedded store alone: ≈ ${fmt(1e6 / grouped.cpuUs)} writes/s (${fmt(grouped.cpuUs)} µs of CPU per write)`,
  );
  console.log(loadLine());
}

await main();
