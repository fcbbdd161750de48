import type { Context } from '@vigil/node';
import { type NodeProcess, spawnTs } from './cluster.js';

/** How the fleet's clients are made (passed to the worker in its environment). */
export interface FleetSettings {
  /** Where every client connects (e.g. a load balancer). */
  url?: string;
  /** Or several servers, tried in order (the SDK's `urls`). */
  urls?: string[];
  sdkKey: string;
  readyTimeoutMs: number;
}

/** One client's life as the fleet recorded it; times are epoch ms. */
export interface ClientReport {
  id: number;
  ready: boolean;
  state: string;
  stale: boolean;
  polling: boolean;
  revision: number;
  /** Stream connections attempted, the first one included. */
  connects: number;
  streamFailures: number;
  /** The server the client uses now (its `stats().server`). */
  server: string;
  /** Full snapshots and patches received over the stream. */
  snapshots: number;
  patches: number;
  /** When the client lost its stream (its `stale` events). */
  lostAt: number[];
  /** When it streamed again after each loss. */
  syncedAt: number[];
  /** `[at, revision]` at ready and at every change. */
  revisions: [number, number][];
  /** Its first error events and error logs. */
  errors: string[];
  warnings: number;
  /** `variants[c][f]`: the variant of `evaluate.flags[f]` for `evaluate.contexts[c]`, when asked. */
  variants?: (string | null)[][];
}

export type FleetRequest =
  | { id: number; type: 'add'; count: number }
  | { id: number; type: 'report'; evaluate?: { flags: string[]; contexts: Context[] } }
  | { id: number; type: 'loop-delay' }
  | { id: number; type: 'close' };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export type FleetReply =
  | {
      id: number;
      ok: true;
      readyMs?: number;
      size?: number;
      clients?: ClientReport[];
      /** The worker's event-loop delay since the previous `loop-delay` request. */
      loopDelayMs?: { p99: number; max: number };
    }
  | { id: number; ok: false; error: string };

/**
 * Many real Node SDK clients (`createClient`) in a child process of their own, so their sockets,
 * timers and event loop are not the test's: the test only asks for reports over IPC.
 */
export class SdkFleet {
  private next = 0;
  private readonly pending = new Map<number, (reply: FleetReply) => void>();

  private constructor(private readonly proc: NodeProcess) {
    proc.child.on('message', (reply: FleetReply) => {
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    proc.child.once('exit', (code, signal) => {
      for (const [id, resolve] of this.pending)
        resolve({ id, ok: false, error: `fleet exited (${code ?? signal}):\n${proc.output()}` });
      this.pending.clear();
    });
  }

  /** Starts the worker process and `count` clients in it; resolves once every one is ready. */
  static async start(settings: FleetSettings, count: number): Promise<SdkFleet> {
    const proc = spawnTs(
      'system-tests/test/helpers/sdk-fleet-worker.ts',
      { VIGIL_FLEET: JSON.stringify(settings) },
      { ipc: true },
    );
    const fleet = new SdkFleet(proc);
    try {
      await fleet.add(count);
    } catch (error) {
      await proc.stop(0);
      throw error;
    }
    return fleet;
  }

  /** What the worker printed (its own failures; the clients' logs are counted, not printed). */
  output(): string {
    return this.proc.output();
  }

  /** Adds `count` clients; resolves with the time they took to be ready. */
  async add(count: number): Promise<number> {
    const reply = await this.request({ type: 'add', count }, 60_000);
    return reply.readyMs ?? 0;
  }

  /** Every client's report, with the variants it serves for `evaluate` when given. */
  async report(evaluate?: { flags: string[]; contexts: Context[] }): Promise<ClientReport[]> {
    const reply = await this.request({ type: 'report', ...(evaluate ? { evaluate } : {}) }, 20_000);
    return reply.clients ?? [];
  }

  /**
   * How late the worker's event loop ran since the previous call (p99 and max, ms): a loaded machine
   * delays every client's timers alike, which bunches reconnects the SDK's jitter had spread.
   */
  async loopDelay(): Promise<{ p99: number; max: number }> {
    const reply = await this.request({ type: 'loop-delay' }, 20_000);
    return reply.loopDelayMs ?? { p99: Number.NaN, max: Number.NaN };
  }

  /** Closes every client, then the worker. */
  async close(): Promise<void> {
    if (this.proc.child.exitCode === null && this.proc.child.connected) {
      await this.request({ type: 'close' }, 10_000).catch(() => {});
    }
    await this.proc.stop(2_000);
  }

  private request(message: WithoutId<FleetRequest>, timeoutMs: number): Promise<FleetReply & { ok: true }> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`fleet did not answer ${message.type} within ${timeoutMs} ms:\n${this.output()}`));
      }, timeoutMs);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.ok) resolve(reply);
        else reject(new Error(`fleet ${message.type} failed: ${reply.error}\n${this.output()}`));
      });
      if (!this.proc.child.connected) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`fleet is gone; cannot ${message.type}:\n${this.output()}`));
        return;
      }
      this.proc.child.send({ ...message, id });
    });
  }
}
