import { normalCdf } from './random.js';

/** One log-normal part of a latency distribution. */
export interface LatencyPart {
  /** Share of requests (the parts' weights are normalised). */
  weight: number;
  medianMs: number;
  /** Standard deviation of ln(latency). */
  sigma: number;
}

/** Standard deviations of ln(latency) covered on each side of every part's median. */
const SPAN = 8;

/** Slots of the sampling table: each holds 1/65536 of the probability, so a 16-bit draw picks one. */
const SLOTS = 65_536;

/**
 * A latency distribution (a mixture of log-normals) sampled straight into the bins of an SDK's
 * DDSketch: bin i of `alpha` holds `(γ^(i−1), γ^i]`, so the chance of landing in it is a difference of
 * normal CDFs. A table maps each 16-bit uniform draw to the bin its quantile falls in, so one 32-bit
 * random number gives two requests' bins — the counts of sampling latencies and adding them to a
 * sketch, to within 1/65536 of probability per bin, without a log per request.
 */
export class LatencyModel {
  readonly alpha: number;
  readonly gamma: number;
  /** Bin index of outcome 0. */
  readonly lo: number;
  readonly bins: number;
  /** Bin offset (from `lo`) for each 16-bit uniform draw. */
  readonly table: Uint16Array;
  private readonly parts: LatencyPart[];

  constructor(parts: LatencyPart[], alpha = 0.01) {
    if (parts.length === 0) throw new RangeError('a latency model needs at least one part');
    const sum = parts.reduce((a, p) => a + p.weight, 0);
    this.parts = parts.map((p) => ({ ...p, weight: p.weight / sum }));
    this.alpha = alpha;
    this.gamma = (1 + alpha) / (1 - alpha);
    const logGamma = Math.log(this.gamma);
    const lows = this.parts.map((p) => Math.log(p.medianMs) - SPAN * p.sigma);
    const highs = this.parts.map((p) => Math.log(p.medianMs) + SPAN * p.sigma);
    this.lo = Math.floor(Math.min(...lows) / logGamma);
    const hi = Math.ceil(Math.max(...highs) / logGamma);
    this.bins = hi - this.lo + 1;
    const weights: number[] = [];
    for (let i = this.lo; i <= hi; i++) {
      let w = 0;
      for (const p of this.parts) {
        const mu = Math.log(p.medianMs);
        w +=
          p.weight *
          (normalCdf((i * logGamma - mu) / p.sigma) - normalCdf(((i - 1) * logGamma - mu) / p.sigma));
      }
      weights.push(Math.max(w, 0));
    }
    const total = weights.reduce((a, b) => a + b, 0);
    this.table = new Uint16Array(SLOTS);
    let bin = 0;
    let cumulative = weights[0]! / total;
    for (let slot = 0; slot < SLOTS; slot++) {
      const p = (slot + 0.5) / SLOTS;
      while (cumulative < p && bin < weights.length - 1) cumulative += weights[++bin]! / total;
      this.table[slot] = bin;
    }
  }

  /** The distribution's CDF at `ms`. */
  cdf(ms: number): number {
    let c = 0;
    for (const p of this.parts) c += p.weight * normalCdf((Math.log(ms) - Math.log(p.medianMs)) / p.sigma);
    return c;
  }

  /** The distribution's true quantile (by bisection on the CDF). */
  quantile(q: number): number {
    let lo = 1e-3;
    let hi = 1e7;
    for (let i = 0; i < 200; i++) {
      const mid = Math.sqrt(lo * hi);
      if (this.cdf(mid) < q) lo = mid;
      else hi = mid;
    }
    return Math.sqrt(lo * hi);
  }
}
