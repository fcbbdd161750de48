import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type Clock,
  createSynchronizer,
  type FlagPatch,
  type FlagSnapshot,
  parseServerMessage,
  type StreamEvents,
  type SyncError,
  type SyncNote,
  type SyncOptions,
} from '../src/index.js';

// The synchronizer's server rotation, driven through its injected transport and clock: each stream
// attempt is recorded with the server it was made to, and the test decides how it ends.

interface Timer {
  run: () => void;
  ms: number;
}

/** Timers that run only when the test says so, recording the delay each was set with. */
function manualClock(): Clock & { timers: Timer[]; delays: number[]; runNext(): void } {
  const timers: Timer[] = [];
  const delays: number[] = [];
  return {
    timers,
    delays,
    setTimeout(run, ms) {
      const timer = { run, ms };
      timers.push(timer);
      delays.push(ms);
      return timer;
    },
    clearTimeout(handle) {
      const i = timers.indexOf(handle as Timer);
      if (i >= 0) timers.splice(i, 1);
    },
    setInterval: () => undefined,
    clearInterval: () => {},
    runNext() {
      const timer = timers.shift();
      if (!timer) throw new Error('no timer pending');
      timer.run();
    },
  };
}

interface Attempt {
  server: string;
  events: StreamEvents;
  sent: string[];
}

const snapshot = (revision: number): FlagSnapshot => ({ revision, flags: [], segments: [] });

function harness(servers: string[], overrides: Partial<SyncOptions> = {}) {
  const clock = manualClock();
  const attempts: Attempt[] = [];
  const polls: { server: string; etag: string | undefined }[] = [];
  const notes: SyncNote[] = [];
  const errors: SyncError[] = [];
  const loaded: { revision: number; source: string }[] = [];
  const patched: number[] = [];
  let revision = 0;
  let pollAnswer: () => Promise<{ status: number; body: unknown }> = () =>
    Promise.reject(new Error('ECONNREFUSED'));
  const sync = createSynchronizer(
    {
      sdk: 'test',
      servers,
      stream: true,
      resumable: false,
      pollIntervalMs: 1000,
      reconnect: { baseMs: 100, capMs: 10_000, pollAfterFailures: 100 },
      heartbeat: { checkMs: 1000, pingMs: 0, deadAfterMs: 3000 },
      stableAfterMs: 0,
      openFailure: 'poll',
      ...overrides,
    },
    {
      connect(events, server) {
        const attempt: Attempt = { server, events, sent: [] };
        attempts.push(attempt);
        return { send: (text) => attempt.sent.push(text), drop: () => {}, close: () => {} };
      },
      fetchFlags(etag, server) {
        polls.push({ server, etag });
        return pollAnswer();
      },
      abort: () => {},
      decodeMessage: parseServerMessage,
      decodeSnapshot: (body) => body as FlagSnapshot,
      clock,
      error: (code, message, options) => ({ code, message, status: options?.status }),
      describe: (error) => String(error),
      note: (note) => notes.push(note),
    },
    {
      revision: () => revision,
      load(s, source) {
        revision = s.revision;
        loaded.push({ revision: s.revision, source });
      },
      apply(patch: FlagPatch) {
        revision = patch.revision;
        patched.push(patch.revision);
      },
      inSync: () => {},
      refused: (error) => errors.push(error),
      error: (error) => errors.push(error),
    },
  );
  const last = () => attempts[attempts.length - 1]!;
  return {
    sync,
    clock,
    attempts,
    polls,
    notes,
    loaded,
    patched,
    errors,
    setPollAnswer(answer: typeof pollAnswer) {
      pollAnswer = answer;
    },
    /** The latest attempt fails as a refused TCP connect does. */
    refuse() {
      last().events.closed({ code: 1006, reason: '', failure: new Error('connect ECONNREFUSED') });
    },
    /** The latest attempt opens and the server sends `message`. */
    deliver(message: object) {
      last().events.opened();
      last().events.message(JSON.stringify(message));
    },
    hello(attempt = last()) {
      return JSON.parse(attempt.sent[0]!) as { type: string; revision?: number };
    },
  };
}

describe('the synchronizer with several servers', () => {
  beforeEach(() => {
    // fullJitter draws half of its ceiling: base · 2^round / 2.
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('tries the servers in order, moving on at once, and backs off only after a full round fails', () => {
    const h = harness(['http://a', 'http://b', 'http://c']);
    h.sync.start();
    for (let i = 0; i < 6; i++) {
      h.refuse();
      h.clock.runNext();
    }
    expect(h.attempts.map((a) => a.server)).toEqual([
      'http://a',
      'http://b',
      'http://c',
      'http://a',
      'http://b',
      'http://c',
      'http://a',
    ]);
    // Within a round the next server is tried at once; each full round waits U[0, 100 · 2^round).
    expect(h.clock.delays).toEqual([0, 0, 50, 0, 0, 100]);
    expect(h.sync.stats.failovers).toBe(6);
    expect(h.sync.server).toBe('http://a');
    expect(h.notes.filter((n) => n.type === 'failover').slice(0, 2)).toEqual([
      { type: 'failover', from: 'http://a', to: 'http://b' },
      { type: 'failover', from: 'http://b', to: 'http://c' },
    ]);
  });

  it('retries a lost stream where it was, then moves on, resuming from the revision held', () => {
    const h = harness(['http://a', 'http://b']);
    h.sync.start();
    h.deliver({ type: 'snapshot', revision: 7, flags: [], segments: [] });
    expect(h.sync.state).toBe('streaming');
    expect(h.hello()).toEqual({ type: 'hello', sdk: 'test' });

    // A dies: the lost stream is retried on A after the backoff, which fails, so B is tried at once.
    h.attempts[0]!.events.closed({ code: 1006, reason: '' });
    h.clock.runNext();
    expect(h.attempts[1]!.server).toBe('http://a');
    h.refuse();
    h.clock.runNext();
    expect(h.clock.delays).toEqual([50, 0]);
    expect(h.attempts[2]!.server).toBe('http://b');
    h.deliver({ type: 'patch', revision: 9, flags: [], segments: [], deleted: { flags: [], segments: [] } });

    // B was asked to resume from revision 7, and brought the client up to date with a patch.
    expect(h.hello(h.attempts[2])).toEqual({ type: 'hello', sdk: 'test', revision: 7 });
    expect(h.loaded).toEqual([{ revision: 7, source: 'stream' }]);
    // Only the first failure of a run is reported; the patch was applied without a protocol error.
    expect(h.errors.map((e) => e.code)).toEqual(['VIGIL_SDK_STREAM']);
    expect(h.patched).toEqual([9]);
    expect(h.sync.server).toBe('http://b');
    expect(h.sync.state).toBe('streaming');

    // A server that works is kept: losing B retries B first.
    h.attempts[2]!.events.closed({ code: 1006, reason: '' });
    h.clock.runNext();
    expect(h.attempts[3]!.server).toBe('http://b');
    h.refuse();
    h.clock.runNext();
    expect(h.attempts[4]!.server).toBe('http://a');
    h.attempts[4]!.events.opened();
    expect(h.hello(h.attempts[4]!)).toEqual({ type: 'hello', sdk: 'test', revision: 9 });
  });

  it('polls the server in use', async () => {
    const h = harness(['http://a', 'http://b'], {
      reconnect: { baseMs: 100, capMs: 10_000, pollAfterFailures: 1 },
    });
    h.setPollAnswer(() => Promise.resolve({ status: 200, body: snapshot(3) }));
    h.sync.start();
    // A proxy in front of A answers the upgrade with 502: polling starts, on B, where the next attempt goes.
    h.attempts[0]!.events.closed({ code: 1006, reason: '', status: 502 });
    await vi.waitFor(() => expect(h.loaded).toEqual([{ revision: 3, source: 'poll' }]));
    expect(h.polls).toEqual([{ server: 'http://b', etag: undefined }]);
    expect(h.sync.server).toBe('http://b');
  });

  it('polling alone moves to the next server after a failed poll', async () => {
    const h = harness(['http://a', 'http://b'], { stream: false });
    h.sync.start();
    await vi.waitFor(() => expect(h.polls).toHaveLength(1));
    await vi.waitFor(() => expect(h.clock.timers).toHaveLength(1));
    h.setPollAnswer(() => Promise.resolve({ status: 200, body: snapshot(5) }));
    h.clock.runNext();
    await vi.waitFor(() => expect(h.loaded).toEqual([{ revision: 5, source: 'poll' }]));
    expect(h.polls.map((p) => p.server)).toEqual(['http://a', 'http://b']);
  });

  it('with one server, backs off after every failure, as before', () => {
    const h = harness(['http://a']);
    h.sync.start();
    for (let i = 0; i < 3; i++) {
      h.refuse();
      h.clock.runNext();
    }
    expect(h.attempts.map((a) => a.server)).toEqual(['http://a', 'http://a', 'http://a', 'http://a']);
    expect(h.clock.delays).toEqual([50, 100, 200]);
    expect(h.sync.stats.failovers).toBe(0);
  });
});
