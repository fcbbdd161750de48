/**
 * Times Vigil's evaluator against unleash-client, GrowthBook and LaunchDarkly on the same flag
 * (`country in [TH, SG, MY]` → 20% rollout), on the hash path and the short-circuit path, over
 * 10,000 distinct users per path; then measures the heap each SDK retains per loaded flag; last,
 * the `matches` operator with native RegExp (the old engine) against re2js (see matches.ts).
 *
 *   pnpm bench            (from the repository root or bench/)
 *   pnpm bench:eval --matches    (the matches comparison alone)
 */
import { cpus, loadavg } from 'node:os';
import { measure } from 'mitata';
import {
  distinctRuleFlags,
  type FlagSpec,
  makeUsers,
  ROLLOUT_PERCENT,
  sameRuleFlags,
  TARGET_COUNTRIES,
  USER_COUNT,
  type User,
} from './fixture.js';
import { matchesBenchmark } from './matches.js';
import { PEERS } from './peers.js';
import { type Harness, PATHS, type Path, type Sdk } from './sdk.js';
import { vigil } from './vigil.js';

const TARGETS = { hashNs: 100, shortNs: 40, speedup: 15, bytesPerFlag: 350 };
/** Timed rounds, interleaved across SDKs so a noisy neighbour hurts no one SDK in particular. */
const ROUNDS = 5;
/** Minimum timed CPU per SDK, path and round (ns); mitata takes at least 12 samples besides. */
const MIN_CPU_NS = 200e6;
const HEAP_FLAGS = 1000;
const HEAP_REPEATS = 3;

const gc = globalThis.gc;
if (!gc) throw new Error('run with node --expose-gc (pnpm bench does)');
const collect: () => void = gc;

/** Keeps every result observable so no evaluation can be optimised away. */
let sink = 0;

const users: Record<Path, User[]> = {
  hash: makeUsers(TARGET_COUNTRIES[0]!),
  short: makeUsers('US'),
};
const PATH_LABEL: Record<Path, string> = {
  hash: `hash path (country ${TARGET_COUNTRIES[0]})`,
  short: 'short-circuit (country US)',
};

const fmt = (n: number, digits = 1): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');

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
    `  ${pad(sdk.name, 30)} ${lpad(`${on} (${fmt(share)}%)`, 14)} on of TH   ${lpad(String(offPathOn), 5)} on of US   ${ok ? 'ok' : 'FAILED'}`,
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

/** Heap retained per flag: (heap with 1 + N flags − heap with 1 flag) / N, median of repeats. */
async function heapPerFlag(
  sdk: Sdk,
  flags: readonly FlagSpec[],
): Promise<{ bytes: number; probedOn: number }> {
  const one = [{ ...flags[0]!, key: 'single' }];
  const probeUser: User = { key: 'user-42', country: TARGET_COUNTRIES[0]! };
  const retained = async (specs: readonly FlagSpec[]): Promise<{ bytes: number; on: number }> => {
    const before = await settledHeap();
    const loaded = await sdk.loadMany(specs);
    // Evaluate every flag once first, so state an SDK builds lazily on first use is counted too.
    let on = 0;
    for (const spec of specs) if (await loaded.probe(spec.key, probeUser)) on++;
    const after = await settledHeap();
    await loaded.close();
    return { bytes: after - before, on };
  };
  await retained(flags); // warm-up: module-level caches and code are not per-flag cost
  const samples: number[] = [];
  let probedOn = 0;
  for (let i = 0; i < HEAP_REPEATS; i++) {
    const full = await retained(flags);
    const base = await retained(one);
    samples.push((full.bytes - base.bytes) / (flags.length - 1));
    probedOn = full.on;
  }
  samples.sort((x, y) => x - y);
  return { bytes: samples[Math.floor(samples.length / 2)]!, probedOn };
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(
    `Vigil evaluation benchmark: node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, ` +
      `load average ${loadavg()[0]!.toFixed(2)} at start (other work on the machine inflates every figure)`,
  );
  console.log(
    `Flag: country in [${TARGET_COUNTRIES.join(', ')}] -> ${ROLLOUT_PERCENT}% on, else off; ` +
      `${fmt(USER_COUNT, 0)} distinct users per path, every pass visits all of them\n`,
  );

  const sdks: Sdk[] = [vigil, ...PEERS];
  const harnesses = new Map<Sdk, Harness>();
  for (const sdk of sdks) harnesses.set(sdk, await sdk.open(users));

  console.log('Checks (each SDK must really evaluate the flag before it is timed):');
  const verified: Sdk[] = [];
  for (const sdk of sdks) if (await verify(sdk, harnesses.get(sdk)!)) verified.push(sdk);
  if (!verified.includes(vigil)) throw new Error('Vigil failed its own check; nothing to compare');
  for (const sdk of sdks)
    if (!verified.includes(sdk)) console.log(`  ${sdk.name} is left out of the timings`);

  const results = await time(verified, harnesses);
  for (const harness of harnesses.values()) await harness.close();

  const ours = results.get(vigil)!;
  const peers = verified.filter((s) => s !== vigil);
  console.log(
    `\nns per evaluation (median pass / ${fmt(USER_COUNT, 0)} users, best of ${ROUNDS} rounds; lower is better;\n /Vigil = the SDK's ns over Vigil's)`,
  );
  console.log(
    `  ${pad('SDK', 30)} ${lpad('hash path', 10)} ${lpad('short-circuit', 14)} ${lpad('hash: /Vigil', 13)} ${lpad('short: /Vigil', 14)}`,
  );
  for (const sdk of verified) {
    const r = results.get(sdk)!;
    const ratio = (p: Path): string => (sdk === vigil ? '1.0' : fmt(r[p] / ours[p])) + 'x';
    console.log(
      `  ${pad(sdk.name + (sdk.async ? ' *' : ''), 30)} ${lpad(fmt(r.hash), 10)} ${lpad(fmt(r.short), 14)} ${lpad(ratio('hash'), 13)} ${lpad(ratio('short'), 14)}`,
    );
  }
  if (peers.some((s) => s.async))
    console.log('  * its evaluation returns a promise; the loop awaits each one');

  const fastest = {} as Record<Path, Sdk | undefined>;
  for (const path of PATHS) {
    fastest[path] = peers.reduce<Sdk | undefined>(
      (a, s) => (a === undefined || results.get(s)![path] < results.get(a)![path] ? s : a),
      undefined,
    );
  }
  console.log('');
  for (const path of PATHS) {
    const peer = fastest[path];
    if (!peer) continue;
    console.log(
      `Fastest peer, ${PATH_LABEL[path]}: ${peer.name} at ${fmt(results.get(peer)![path])} ns; ` +
        `Vigil is ${fmt(results.get(peer)![path] / ours[path])}x faster`,
    );
  }

  console.log(
    `\nHeap retained per flag (${fmt(HEAP_FLAGS, 0)} flags, gc() before and after, median of ${HEAP_REPEATS}; ` +
      'the last column counts the flags on for one TH user, to show they were loaded):',
  );
  console.log(
    `  ${pad('SDK', 30)} ${lpad('same rule, own key', 19)} ${lpad('distinct rules', 15)}   on (same / distinct)`,
  );
  const same = sameRuleFlags(HEAP_FLAGS + 1);
  const distinct = distinctRuleFlags(HEAP_FLAGS + 1);
  const heap = new Map<Sdk, Record<'same' | 'distinct', number>>();
  for (const sdk of sdks) {
    const a = await heapPerFlag(sdk, same);
    const b = await heapPerFlag(sdk, distinct);
    heap.set(sdk, { same: a.bytes, distinct: b.bytes });
    console.log(
      `  ${pad(sdk.name, 30)} ${lpad(`${fmt(a.bytes, 0)} B`, 19)} ${lpad(`${fmt(b.bytes, 0)} B`, 15)}   ${a.probedOn} / ${b.probedOn} of ${HEAP_FLAGS + 1}`,
    );
  }

  const speedup = (p: Path): number => {
    const peer = fastest[p];
    return peer ? results.get(peer)![p] / ours[p] : Number.NaN;
  };
  const vigilHeap = heap.get(vigil)!;
  console.log('\nTargets (reported, not enforced):');
  const rows: [string, string, boolean][] = [
    [`hash path <= ${TARGETS.hashNs} ns`, `${fmt(ours.hash)} ns`, ours.hash <= TARGETS.hashNs],
    [`short-circuit <= ${TARGETS.shortNs} ns`, `${fmt(ours.short)} ns`, ours.short <= TARGETS.shortNs],
    [
      `>= ${TARGETS.speedup}x the fastest peer, hash path`,
      `${fmt(speedup('hash'))}x (${fastest.hash?.name ?? 'no peer'})`,
      speedup('hash') >= TARGETS.speedup,
    ],
    [
      `>= ${TARGETS.speedup}x the fastest peer, short-circuit`,
      `${fmt(speedup('short'))}x (${fastest.short?.name ?? 'no peer'})`,
      speedup('short') >= TARGETS.speedup,
    ],
    [
      `heap <= ${TARGETS.bytesPerFlag} B/flag, same rule`,
      `${fmt(vigilHeap.same, 0)} B`,
      vigilHeap.same <= TARGETS.bytesPerFlag,
    ],
    [
      `heap <= ${TARGETS.bytesPerFlag} B/flag, distinct rules`,
      `${fmt(vigilHeap.distinct, 0)} B`,
      vigilHeap.distinct <= TARGETS.bytesPerFlag,
    ],
  ];
  for (const [target, actual, ok] of rows) console.log(`  ${pad(target, 42)} ${pad(actual, 40)} ${met(ok)}`);

  await matchesBenchmark();

  console.log(`\n(sink ${sink}; ${fmt((performance.now() - started) / 1000)} s)`);
}

if (process.argv.includes('--matches')) await matchesBenchmark();
else await main();
