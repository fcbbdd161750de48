import type { Redis } from 'ioredis';
import { decodeChange, fieldsOf, type StreamEntry } from './redis-codec.js';
import type { RedisKeys } from './redis-keys.js';
import type { VigilScripts } from './redis-scripts.js';
import type { Change, EnvSnapshot } from './store.js';

/** What the tailer needs from the store to fill a gap the global stream cannot. */
export interface GapSource {
  changesSince(env: string, revision: number): Promise<Change[] | undefined>;
  snapshot(env: string): Promise<EnvSnapshot>;
}

const BLOCK_MS = 5_000;
const RETRY_MS = 250;

/**
 * Tails the global change stream on a dedicated connection (XREAD BLOCK) and hands every change to
 * `deliver` exactly once, in revision order per environment, whichever process wrote it.
 *
 * It tracks the last revision delivered per environment. A change that skips revisions, and every
 * reconnect, triggers a catch-up from the environment's own log (`changesSince`); when that log is
 * trimmed too, or Redis came back with less than was delivered, it delivers a `reset` change holding
 * the environment's snapshot. So a Redis restart or a trimmed global stream loses nothing.
 */
export class ChangeTailer {
  private readonly delivered = new Map<string, number>();
  private lastId = '0-0';
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly conn: Redis & VigilScripts,
    private readonly keys: RedisKeys,
    private readonly gaps: GapSource,
    private readonly deliver: (change: Change) => void,
  ) {}

  /** Records where the stream and every environment stand, then tails from there. */
  async start(): Promise<void> {
    await this.conn.connect();
    const [lastId, revisions] = await this.position();
    this.lastId = lastId;
    for (const [env, revision] of revisions) this.delivered.set(env, revision);
    this.running = true;
    this.loop = this.run();
  }

  /** Stops tailing and closes the connection. */
  async stop(): Promise<void> {
    this.running = false;
    this.conn.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    let catchUp = false;
    while (this.running) {
      try {
        if (catchUp) await this.catchUp();
        catchUp = false;
        const reply = (await this.conn.xread(
          'COUNT',
          1000,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.keys.changes,
          this.lastId,
        )) as [string, StreamEntry[]][] | null;
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          this.lastId = id;
          const f = fieldsOf(fields);
          await this.receive(decodeChange(f.env ?? '', Number(f.rev), f.k, f.v));
        }
      } catch {
        if (!this.running) break;
        // Redis is away: ioredis reconnects on its own; once back, catch up on what was missed.
        catchUp = true;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  private async receive(change: Change): Promise<void> {
    const seen = this.delivered.get(change.env) ?? 0;
    if (change.revision <= seen) return;
    if (change.revision === seen + 1) {
      this.emit(change);
      return;
    }
    await this.fill(change.env, seen);
  }

  /** After a reconnect: brings every environment up to its current revision. */
  private async catchUp(): Promise<void> {
    const [lastId, revisions] = await this.position();
    // A stream recreated empty (Redis lost its data) restarts below our position.
    if (compareIds(lastId, this.lastId) < 0) this.lastId = lastId;
    for (const [env, revision] of revisions) {
      const seen = this.delivered.get(env) ?? 0;
      if (revision !== seen) await this.fill(env, seen);
    }
  }

  /** Delivers what an environment's log holds after `seen`, or its snapshot when the log cannot. */
  private async fill(env: string, seen: number): Promise<void> {
    const changes = await this.gaps.changesSince(env, seen);
    if (changes) {
      for (const change of changes) this.emit(change);
      return;
    }
    const snapshot = await this.gaps.snapshot(env);
    this.emit({
      env,
      revision: snapshot.revision,
      flags: snapshot.flags,
      segments: snapshot.segments,
      deleted: { flags: [], segments: [] },
      reset: true,
    });
  }

  private emit(change: Change): void {
    const seen = this.delivered.get(change.env) ?? 0;
    if (change.revision <= seen && !change.reset) return;
    this.delivered.set(change.env, change.revision);
    this.deliver(change);
  }

  private async position(): Promise<[string, [string, number][]]> {
    const [lastId = '0-0', ...pairs] = await this.conn.vigilTailStart(
      this.keys.changes,
      this.keys.envs,
      this.keys.envPrefix,
    );
    const revisions: [string, number][] = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) revisions.push([pairs[i]!, Number(pairs[i + 1])]);
    return [lastId, revisions];
  }
}

/** Orders two stream ids (`ms-seq`). */
function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}
