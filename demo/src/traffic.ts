/** What users of one checkout saw over the traffic's recent window. */
export interface CohortTraffic {
  requests: number;
  errors: number;
  /** Requests a second over the window. */
  rate: number;
  errorRate: number;
}

interface Second {
  at: number;
  v1: { requests: number; errors: number };
  v2: { requests: number; errors: number };
}

/** Requests in flight at most: past it the generator skips a beat rather than pile up. */
const MAX_IN_FLIGHT = 256;
const TICK_MS = 50;

/**
 * Simulated users: `rate` checkout requests a second from `users` distinct user ids, counting what
 * each cohort (v1 / v2, from the app's `x-checkout` header) got back, per second.
 */
export class Traffic {
  private readonly seconds: Second[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private sent = 0;
  /** Requests that failed at the transport (the app not answering at all). */
  transportErrors = 0;

  constructor(
    private readonly url: string,
    private readonly rate: number,
    private readonly users = 5000,
  ) {}

  start(): void {
    let due = 0;
    this.timer = setInterval(() => {
      due += (this.rate * TICK_MS) / 1000;
      for (; due >= 1; due--) {
        if (this.inFlight >= MAX_IN_FLIGHT) continue;
        void this.request(`user-${Math.floor(Math.random() * this.users)}`);
      }
    }, TICK_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Each cohort's figures over the last `windowMs` (whole seconds, the current one excluded). */
  window(windowMs = 5000): { v1: CohortTraffic; v2: CohortTraffic } {
    const now = Math.floor(Date.now() / 1000) * 1000;
    const recent = this.seconds.filter((s) => s.at < now && s.at >= now - windowMs);
    const seconds = Math.max(1, recent.length);
    const figures = (pick: (s: Second) => { requests: number; errors: number }): CohortTraffic => {
      const requests = recent.reduce((sum, s) => sum + pick(s).requests, 0);
      const errors = recent.reduce((sum, s) => sum + pick(s).errors, 0);
      return { requests, errors, rate: requests / seconds, errorRate: requests ? errors / requests : 0 };
    };
    return { v1: figures((s) => s.v1), v2: figures((s) => s.v2) };
  }

  /** Requests sent so far. */
  get total(): number {
    return this.sent;
  }

  private async request(user: string): Promise<void> {
    this.inFlight++;
    this.sent++;
    try {
      const response = await fetch(`${this.url}/checkout?user=${user}`, {
        signal: AbortSignal.timeout(5000),
      });
      await response.arrayBuffer();
      const cohort = response.headers.get('x-checkout') === 'v2' ? 'v2' : 'v1';
      const second = this.second();
      second[cohort].requests++;
      if (response.status >= 500) second[cohort].errors++;
    } catch {
      this.transportErrors++;
    } finally {
      this.inFlight--;
    }
  }

  private second(): Second {
    const at = Math.floor(Date.now() / 1000) * 1000;
    let last = this.seconds[this.seconds.length - 1];
    if (last?.at !== at) {
      last = { at, v1: { requests: 0, errors: 0 }, v2: { requests: 0, errors: 0 } };
      this.seconds.push(last);
      if (this.seconds.length > 120) this.seconds.shift();
    }
    return last;
  }
}
