/**
 * Vigil through its Node SDK (`@vigil/node`) against the same peers as `eval.ts`:
 *
 * 1. Throughput through the SDK API on eval.ts's flag and users: `client.isEnabled(key, ctx, false)`
 *    on an offline client (bootstrap object, metrics off), and `client.scope(ctx).isEnabled(key)` with
 *    one scope per simulated request (how apps and the Fastify/Express helpers use it), beside
 *    unleash-client, GrowthBook and LaunchDarkly (offline SDK clients, so their figures are through
 *    their own SDK APIs) and `@vigil/core` for reference. Hash path and short-circuit path.
 * 2. Memory: heap retained per SDK instance holding 1,000 and 10,000 flags (same rule with distinct
 *    keys, and distinct rules), minus an empty client of the same SDK.
 *
 *   pnpm bench:sdk        (from bench/; also part of `pnpm bench`)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type VigilClient } from '@vigil/node';
import { measure } from 'mitata';
import { InMemStorageProvider, Unleash } from 'unleash-client';
import {
  BENCH_FLAG,
  distinctRuleFlags,
  FLAG_KEY,
  type FlagSpec,
  makeUsers,
  ROLLOUT_PERCENT,
  sameRuleFlags,
  TARGET_COUNTRIES,
  USER_COUNT,
  type User,
  vigilFlag,
} from './fixture.js';
import { growthbook, launchDarkly, PEERS, unleash } from './peers.js';
import { type Harness, type Loaded, PATHS, type Path, type Sdk } from './sdk.js';
import { vigil as vigilCore } from './vigil.js';

/** Timed rounds, interleaved across SDKs so a noisy neighbour hurts no one SDK in particular. */
const ROUNDS = 4;
/** Minimum timed CPU per SDK, path and round (ns); mitata takes at least 12 samples besides. */
const MIN_CPU_NS = 150e6;
const HEAP_SIZES = [1_000, 10_000] as const;
const HEAP_REPEATS = 3;

const gc = globalThis.gc;
if (!gc) throw new Error('run with node --expose-gc (pnpm bench:sdk does)');
const collect: () => void = gc;

/** Keeps every result observable so no evaluation can be optimised away. */
let sink = 0;

const fmt = (n: number, digits = 1): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
const delta = (a: number, b: number): string => `${a >= b ? '+' : '-'}${fmt(Math.abs(a - b))}`;
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

// --- the Vigil Node SDK ------------------------------------------------------------------------------

/** An offline client started from a bootstrap object, as `GET /v1/flags` would return it; nothing on the network. */
function startVigilClient(flags: readonly FlagSpec[], bootstrapFile?: string): VigilClient {
  return createClient({
    url: 'http://127.0.0.1:9',
    sdkKey: 'sdk-key-never-sent',
    offline: true,
    metrics: false,
    bootstrap: bootstrapFile ?? { revision: 1, flags: flags.map((f) => vigilFlag(f)), segments: [] },
  });
}

/** A plain object, as an application has it (a type alias, so it fits `Context`'s index signature). */
type VigilContext = { readonly key: string; readonly country: string };

// Vigil's context is the plain object the application already has; copied so no SDK shares objects.
const vigilContexts = (users: Readonly<Record<Path, readonly User[]>>): Record<Path, VigilContext[]> => {
  const toContext = (u: User): VigilContext => ({ key: u.key, country: u.country });
  return { hash: users.hash.map(toContext), short: users.short.map(toContext) };
};

const vigilLoadMany = async (flags: readonly FlagSpec[]): Promise<Loaded> => {
  const client = startVigilClient(flags);
  return {
    probe: (key, u) => client.isEnabled(key, { key: u.key, country: u.country }, false),
    close: () => client.close(),
  };
};

/**
 * The same client bootstrapped from a JSON file (`curl …/v1/flags > flags.json`) instead of an object:
 * the file's text and parse are garbage once loaded, so this shows what the client itself keeps.
 */
const vigilLoadFromFile = async (flags: readonly FlagSpec[]): Promise<Loaded> => {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-'));
  const file = join(dir, 'flags.json');
  writeFileSync(file, JSON.stringify({ revision: 1, flags: flags.map((f) => vigilFlag(f)), segments: [] }));
  const client = startVigilClient([], file);
  return {
    probe: (key, u) => client.isEnabled(key, { key: u.key, country: u.country }, false),
    close: async () => {
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** `client.isEnabled(flag, context, default)`: the SDK's plain evaluation call. */
const vigilClient: Sdk = {
  name: '@vigil/node isEnabled',
  async: false,
  async open(users) {
    const client = startVigilClient([BENCH_FLAG]);
    const contexts = vigilContexts(users);
    const loop = (list: VigilContext[]): number => {
      let on = 0;
      for (let i = 0; i < list.length; i++) if (client.isEnabled(FLAG_KEY, list[i], false)) on++;
      return on;
    };
    return { sweep: (path) => loop(contexts[path]), close: () => client.close() };
  },
  loadMany: vigilLoadMany,
};

/** `client.scope(context).isEnabled(flag)`: a new scope per user, i.e. per simulated request. */
const vigilScope: Sdk = {
  name: '@vigil/node scope().isEnabled',
  async: false,
  async open(users) {
    const client = startVigilClient([BENCH_FLAG]);
    const contexts = vigilContexts(users);
    const loop = (list: VigilContext[]): number => {
      let on = 0;
      for (let i = 0; i < list.length; i++) if (client.scope(list[i]!).isEnabled(FLAG_KEY)) on++;
      return on;
    };
    return { sweep: (path) => loop(contexts[path]), close: () => client.close() };
  },
  loadMany: vigilLoadMany,
};

// --- memory subjects: any number of flags, zero included ---------------------------------------------

interface MemorySubject {
  readonly name: string;
  load(flags: readonly FlagSpec[]): Promise<Loaded>;
}

/**
 * unleash-client with no flags: peers.ts waits for its 'ready', which an empty bootstrap never emits,
 * so the empty client is made here with the same options (polling off, so it still never connects).
 */
async function emptyUnleash(): Promise<Loaded> {
  const client = new Unleash({
    appName: 'vigil-bench',
    url: 'http://127.0.0.1:9/never-contacted/',
    refreshInterval: 0,
    disableMetrics: true,
    bootstrap: { data: [] },
    storageProvider: new InMemStorageProvider(),
    skipInstanceCountWarning: true,
  });
  await new Promise((resolve) => setTimeout(resolve, 10));
  return { probe: () => false, close: () => client.destroy() };
}

const MEMORY_SUBJECTS: readonly MemorySubject[] = [
  { name: '@vigil/node, object bootstrap', load: vigilLoadMany },
  { name: '@vigil/node, file bootstrap', load: vigilLoadFromFile },
  { name: '@vigil/core (FlagSet, reference)', load: (f) => vigilCore.loadMany(f) },
  { name: unleash.name, load: (f) => (f.length === 0 ? emptyUnleash() : unleash.loadMany(f)) },
  { name: growthbook.name, load: (f) => growthbook.loadMany(f) },
  { name: launchDarkly.name, load: (f) => launchDarkly.loadMany(f) },
];

// --- measuring ---------------------------------------------------------------------------------------

/** Heap in use once garbage stops shrinking it (an SDK's closing may release memory over a few ticks). */
async function settledHeap(): Promise<number> {
  let last = Number.NaN;
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    collect();
    const used = process.memoryUsage().heapUsed;
    if (Math.abs(used - last) < 512) return used;
    last = used;
  }
  return last;
}

/** Checks the SDK really evaluates: ~20% on among targeted users, none among the others. */
async function verify(sdk: Sdk, harness: Harness): Promise<boolean> {
  const on = await harness.sweep('hash');
  const offPathOn = await harness.sweep('short');
  const share = (100 * on) / USER_COUNT;
  // 10,000 draws at p = 0.2 have a standard deviation of 0.4 points; 2 points is five of them.
  const ok = Math.abs(share - ROLLOUT_PERCENT) <= 2 && offPathOn === 0;
  console.log(
    `  ${pad(sdk.name, 32)} ${lpad(`${on} (${fmt(share)}%)`, 14)} on of TH   ${lpad(String(offPathOn), 5)} on of US   ${ok ? 'ok' : 'FAILED'}`,
  );
  return ok;
}

/** Median ns per evaluation of one pass over a path's users, best of the rounds. */
async function time(
  sdks: readonly Sdk[],
  harnesses: Map<Sdk, Harness>,
): Promise<Map<Sdk, Record<Path, number>>> {
  const best = new Map<Sdk, Record<Path, number>>(sdks.map((s) => [s, { hash: Infinity, short: Infinity }]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const sdk of sdks) {
      const harness = harnesses.get(sdk)!;
      for (const path of PATHS) {
        collect();
        const pass = sdk.async
          ? async () => {
              sink += await harness.sweep(path);
            }
          : () => {
              sink += harness.sweep(path) as number;
            };
        const stats = await measure(pass, { min_cpu_time: MIN_CPU_NS });
        const record = best.get(sdk)!;
        record[path] = Math.min(record[path], stats.p50 / USER_COUNT);
      }
    }
  }
  return best;
}

const PROBE_USER: User = { key: 'user-42', country: TARGET_COUNTRIES[0]! };

/** Heap retained by one instance holding `specs` (every flag evaluated once, so lazy state counts). */
async function retained(
  subject: MemorySubject,
  specs: readonly FlagSpec[],
): Promise<{ bytes: number; on: number }> {
  const before = await settledHeap();
  const loaded = await subject.load(specs);
  let on = 0;
  for (const spec of specs) if (await loaded.probe(spec.key, PROBE_USER)) on++;
  const after = await settledHeap();
  await loaded.close();
  return { bytes: after - before, on };
}

interface HeapFigures {
  /** An empty client of the SDK (median). */
  empty: number;
  /** Per size: bytes for the flags (instance − empty), median of the repeats, and flags on for the probe user. */
  bySize: Map<number, { flagsBytes: number; on: number }>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function heapFigures(subject: MemorySubject, make: (n: number) => FlagSpec[]): Promise<HeapFigures> {
  const sets = new Map(HEAP_SIZES.map((n) => [n, make(n)]));
  await retained(subject, sets.get(HEAP_SIZES[0])!); // warm-up: module-level caches and code are not per-flag cost
  await retained(subject, []);
  const empties: number[] = [];
  const bySize = new Map<number, { flagsBytes: number; on: number }>();
  for (const [n, specs] of sets) {
    const samples: number[] = [];
    let on = 0;
    for (let i = 0; i < HEAP_REPEATS; i++) {
      const empty = await retained(subject, []);
      const full = await retained(subject, specs);
      empties.push(empty.bytes);
      samples.push(full.bytes - empty.bytes);
      on = full.on;
    }
    bySize.set(n, { flagsBytes: median(samples), on });
  }
  return { empty: median(empties), bySize };
}

// --- the run -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now();
  console.log(
    `Vigil SDK benchmark: node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, ` +
      `load average ${load()} (1/5/15 min) at start (other work on the machine inflates every figure)`,
  );
  console.log(
    `Flag: country in [${TARGET_COUNTRIES.join(', ')}] -> ${ROLLOUT_PERCENT}% on, else off; ` +
      `${fmt(USER_COUNT, 0)} distinct users per path, every pass visits all of them\n`,
  );

  const users: Record<Path, User[]> = { hash: makeUsers(TARGET_COUNTRIES[0]!), short: makeUsers('US') };
  const sdks: Sdk[] = [vigilScope, vigilClient, vigilCore, ...PEERS];
  const harnesses = new Map<Sdk, Harness>();
  for (const sdk of sdks) harnesses.set(sdk, await sdk.open(users));

  console.log('Checks (each SDK must really evaluate the flag before it is timed):');
  const verified: Sdk[] = [];
  for (const sdk of sdks) if (await verify(sdk, harnesses.get(sdk)!)) verified.push(sdk);
  for (const sdk of sdks)
    if (!verified.includes(sdk)) console.log(`  ${sdk.name} is left out of the timings`);

  const results = await time(verified, harnesses);
  for (const harness of harnesses.values()) await harness.close();

  const peers = verified.filter((s) => PEERS.includes(s));
  const fastest = {} as Record<Path, number>;
  for (const path of PATHS) fastest[path] = Math.min(...peers.map((s) => results.get(s)![path]));
  const fastestName = (path: Path): string =>
    peers.find((s) => results.get(s)![path] === fastest[path])?.name ?? 'no peer';

  console.log(
    `\nns per evaluation through each SDK's API (median pass / ${fmt(USER_COUNT, 0)} users, best of ${ROUNDS} rounds; ` +
      "lower is better;\n vs peer = the fastest peer's ns over this one's: above 1 is faster than every peer)",
  );
  console.log(
    `  ${pad('SDK', 32)} ${lpad('hash path', 10)} ${lpad('short-circuit', 14)} ${lpad('hash vs peer', 13)} ${lpad('short vs peer', 14)}`,
  );
  for (const sdk of verified) {
    const r = results.get(sdk)!;
    const ratio = (p: Path): string => `${fmt(fastest[p] / r[p], fastest[p] / r[p] < 1 ? 2 : 1)}x`;
    console.log(
      `  ${pad(sdk.name + (sdk.async ? ' *' : ''), 32)} ${lpad(fmt(r.hash), 10)} ${lpad(fmt(r.short), 14)} ${lpad(ratio('hash'), 13)} ${lpad(ratio('short'), 14)}`,
    );
  }
  if (peers.some((s) => s.async))
    console.log('  * its evaluation returns a promise; the loop awaits each one');
  for (const path of PATHS)
    console.log(`  fastest peer, ${path === 'hash' ? 'hash path' : 'short-circuit'}: ${fastestName(path)}`);
  const scope = results.get(vigilScope);
  const client = results.get(vigilClient);
  const core = results.get(vigilCore);
  if (scope && client && core)
    console.log(
      `  the SDK over the core (ns, hash / short): isEnabled ${delta(client.hash, core.hash)} / ${delta(client.short, core.short)}, ` +
        `a scope per request ${delta(scope.hash, core.hash)} / ${delta(scope.short, core.short)}`,
    );
  console.log(`  load average now ${load()}`);

  const variants: [string, (n: number) => FlagSpec[]][] = [
    ['same rule, distinct keys', sameRuleFlags],
    ['distinct rules', distinctRuleFlags],
  ];
  for (const [label, make] of variants) {
    console.log(
      `\nHeap retained per SDK instance, flags with ${label} (gc() until stable, after a warm-up; ` +
        `instance with N flags minus an empty instance, median of ${HEAP_REPEATS}; every flag evaluated once; ` +
        `"on" counts flags on for one TH user, to show they were loaded):`,
    );
    console.log(
      `  ${pad('SDK', 32)} ${lpad('empty', 9)} ${HEAP_SIZES.map((n) => `${lpad(`${fmt(n, 0)}: B/flag`, 16)} ${lpad('MB', 7)}`).join(' ')}   on`,
    );
    for (const subject of MEMORY_SUBJECTS) {
      const h = await heapFigures(subject, make);
      const cols = HEAP_SIZES.map((n) => {
        const s = h.bySize.get(n)!;
        return `${lpad(fmt(s.flagsBytes / n, 0), 16)} ${lpad(fmt(s.flagsBytes / 1e6, 2), 7)}`;
      });
      const on = HEAP_SIZES.map((n) => `${h.bySize.get(n)!.on}/${fmt(n, 0)}`).join(', ');
      console.log(
        `  ${pad(subject.name, 32)} ${lpad(`${fmt(h.empty / 1024, 0)} KB`, 9)} ${cols.join(' ')}   ${on}`,
      );
    }
  }
  console.log(`  (MB = 10^6 bytes for the flags alone; "empty" = the instance with no flags)`);

  console.log(
    `\nload average ${load()} at end (sink ${sink}; ${fmt((performance.now() - started) / 1000)} s)`,
  );
}

await main();
