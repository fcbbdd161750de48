import type { LatencySketch as LatencySketchData } from '@vigil/proto';

/** Bin indexes kept: with alpha 1% this covers about 1 ns to 10^9 ms; values beyond count in the edge bins. */
const MIN_INDEX = -2048;
const MAX_INDEX = 2048;
/** Extra room allocated on each side when the dense range grows, so growth is rare. */
const GROW_SLACK = 32;

function clampIndex(index: number): number {
  return Math.max(MIN_INDEX, Math.min(index, MAX_INDEX));
}

/**
 * A dense, mergeable log-bucket latency histogram with the bins of `latencySketchSchema` (DDSketch):
 * a value v > 0 counts in bin `ceil(log(v) / log(gamma))`, `gamma = (1 + alpha) / (1 - alpha)`, so bin i
 * holds the values in `(gamma^(i-1), gamma^i]`. The guardian aggregates SDK sketches into these: counts
 * live in one contiguous array (adding a sketch touches no map), and tail questions — how many values
 * lie above a bin edge, which bin holds the p99 — are answered from the top without sorting.
 * Quantiles follow `LatencySketch` from `@vigil/core` exactly (rank `q·(count−1)`, bin midpoint, clamped
 * to min and max). Sketches of another alpha are re-binned on the way in (each bin's midpoint moves to
 * the bin holding it), which adds at most that sketch's alpha of error.
 */
export class LogHistogram {
  readonly alpha: number;
  readonly gamma: number;
  readonly logGamma: number;
  /** Values ≤ 0. */
  zero = 0;
  /** Values counted, `zero` included. */
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  /** Bin index of `counts[0]`. */
  private offset = 0;
  private counts = new Float64Array(0);
  /** Lowest and highest bin index holding a count; `lo > hi` when no bin does. */
  private lo = Number.POSITIVE_INFINITY;
  private hi = Number.NEGATIVE_INFINITY;

  constructor(alpha = 0.01) {
    if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
    this.alpha = alpha;
    this.gamma = (1 + alpha) / (1 - alpha);
    this.logGamma = Math.log(this.gamma);
  }

  /** The bin holding `valueMs` (> 0), clamped to the kept range. */
  indexOf(valueMs: number): number {
    return clampIndex(Math.ceil(Math.log(valueMs) / this.logGamma));
  }

  /** The upper edge of bin `index`: every value in bins ≤ index is ≤ it, every value above is > it. */
  upperEdge(index: number): number {
    return this.gamma ** index;
  }

  /** The point of bin `index` within alpha of every value in it (what `LatencySketch` answers). */
  midpoint(index: number): number {
    return (2 * this.gamma ** index) / (this.gamma + 1);
  }

  /** Adds `n` values that fall in bin `index`. */
  addToBin(index: number, n: number): void {
    if (n <= 0) return;
    const i = clampIndex(index);
    this.ensure(i);
    this.counts[i - this.offset]! += n;
    if (i < this.lo) this.lo = i;
    if (i > this.hi) this.hi = i;
  }

  /** Adds one SDK sketch (its wire shape). */
  addSketch(sketch: LatencySketchData): void {
    if (sketch.count === 0) return;
    const bins = sketch.bins;
    if (sketch.alpha !== this.alpha) {
      const gamma = (1 + sketch.alpha) / (1 - sketch.alpha);
      for (let k = 0; k < bins.length; k++) {
        const bin = bins[k]!;
        this.addToBin(this.indexOf((2 * gamma ** bin[0]) / (gamma + 1)), bin[1]);
      }
    } else if (bins.length > 0) {
      // The hot path: grow once for the sketch's whole range, then add straight into the array.
      let lo = MAX_INDEX;
      let hi = MIN_INDEX;
      for (let k = 0; k < bins.length; k++) {
        const i = clampIndex(bins[k]![0]);
        if (i < lo) lo = i;
        if (i > hi) hi = i;
      }
      this.ensure(lo);
      this.ensure(hi);
      const counts = this.counts;
      const offset = this.offset;
      for (let k = 0; k < bins.length; k++) {
        const bin = bins[k]!;
        counts[clampIndex(bin[0]) - offset]! += bin[1];
      }
      if (lo < this.lo) this.lo = lo;
      if (hi > this.hi) this.hi = hi;
    }
    this.zero += sketch.zero;
    this.count += sketch.count;
    this.sum += sketch.sum;
    const min = sketch.min ?? 0;
    const max = sketch.max ?? min;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
  }

  /** Adds another histogram of the same alpha. */
  merge(other: LogHistogram): void {
    if (other.alpha !== this.alpha) {
      throw new RangeError(`cannot merge a histogram of alpha ${other.alpha} into alpha ${this.alpha}`);
    }
    if (other.count === 0) return;
    if (other.lo <= other.hi) {
      this.ensure(other.lo);
      this.ensure(other.hi);
      const src = other.counts;
      const dst = this.counts;
      const shift = other.offset - this.offset;
      for (let i = other.lo - other.offset, end = other.hi - other.offset; i <= end; i++) {
        dst[i + shift]! += src[i]!;
      }
      if (other.lo < this.lo) this.lo = other.lo;
      if (other.hi > this.hi) this.hi = other.hi;
    }
    this.zero += other.zero;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /**
   * Removes counts merged earlier from `other` (same alpha). `min` and `max` cannot be taken back and
   * are left as they were; a caller that subtracts tracks them itself.
   */
  subtract(other: LogHistogram): void {
    if (other.alpha !== this.alpha) {
      throw new RangeError(`cannot subtract a histogram of alpha ${other.alpha} from alpha ${this.alpha}`);
    }
    if (other.count === 0) return;
    if (other.lo <= other.hi) {
      this.ensure(other.lo);
      this.ensure(other.hi);
      const src = other.counts;
      const dst = this.counts;
      const shift = other.offset - this.offset;
      for (let i = other.lo - other.offset, end = other.hi - other.offset; i <= end; i++) {
        dst[i + shift] = Math.max(0, dst[i + shift]! - src[i]!);
      }
      // Shrink the occupied range past emptied edge bins, so walks from the top stay short.
      while (this.lo <= this.hi && this.counts[this.hi - this.offset] === 0) this.hi--;
      while (this.lo <= this.hi && this.counts[this.lo - this.offset] === 0) this.lo++;
      if (this.lo > this.hi) {
        this.lo = Number.POSITIVE_INFINITY;
        this.hi = Number.NEGATIVE_INFINITY;
      }
    }
    this.zero = Math.max(0, this.zero - other.zero);
    this.count = Math.max(0, this.count - other.count);
    this.sum = Math.max(0, this.sum - other.sum);
  }

  /** Empties the histogram, keeping its storage. */
  clear(): void {
    if (this.lo <= this.hi) this.counts.fill(0, this.lo - this.offset, this.hi - this.offset + 1);
    this.lo = Number.POSITIVE_INFINITY;
    this.hi = Number.NEGATIVE_INFINITY;
    this.zero = 0;
    this.count = 0;
    this.sum = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = Number.NEGATIVE_INFINITY;
  }

  /** How many values lie in bins above `index`, i.e. are certainly greater than `upperEdge(index)`. */
  countAbove(index: number): number {
    let n = 0;
    const from = Math.max(index + 1, this.lo);
    for (let i = this.hi; i >= from; i--) n += this.counts[i - this.offset]!;
    return n;
  }

  /**
   * The bin holding quantile `q` (rank `q·(count−1)`), or undefined when empty; `-Infinity` when the
   * quantile falls among the values ≤ 0.
   */
  quantileIndex(q: number): number | undefined {
    if (this.count === 0 || !(q >= 0 && q <= 1)) return undefined;
    const rank = q * (this.count - 1);
    // Walk down from the top: the tail quantiles the guardian reads are a few bins from there.
    let below = this.count;
    for (let i = this.hi; i >= this.lo; i--) {
      const c = this.counts[i - this.offset]!;
      if (c === 0) continue;
      below -= c;
      if (below <= rank) return i;
    }
    return Number.NEGATIVE_INFINITY;
  }

  /** The value at quantile `q` in [0, 1], as `LatencySketch.quantile` answers it; undefined when empty. */
  quantile(q: number): number | undefined {
    const index = this.quantileIndex(q);
    if (index === undefined) return undefined;
    const value = index === Number.NEGATIVE_INFINITY ? 0 : this.midpoint(index);
    return Math.min(Math.max(value, this.min), this.max);
  }

  /** The wire shape (`latencySketchSchema`), bins ascending; used to snapshot state. */
  toJSON(): LatencySketchData {
    const bins: [number, number][] = [];
    for (let i = this.lo; i <= this.hi; i++) {
      const c = this.counts[i - this.offset]!;
      if (c > 0) bins.push([i, c]);
    }
    const out: LatencySketchData = {
      alpha: this.alpha,
      zero: this.zero,
      bins,
      count: this.count,
      sum: this.sum,
    };
    if (this.count > 0) {
      out.min = this.min;
      out.max = this.max;
    }
    return out;
  }

  /** A histogram holding one sketch's values. */
  static fromSketch(sketch: LatencySketchData, alpha = sketch.alpha): LogHistogram {
    const h = new LogHistogram(alpha);
    h.addSketch(sketch);
    return h;
  }

  /** Grows the dense range to hold bin `index`. */
  private ensure(index: number): void {
    const size = this.counts.length;
    if (size > 0 && index >= this.offset && index < this.offset + size) return;
    const lo = size === 0 ? index : Math.min(index, this.offset);
    const hi = size === 0 ? index : Math.max(index, this.offset + size - 1);
    const newLo = Math.max(MIN_INDEX, lo - GROW_SLACK);
    const newHi = Math.min(MAX_INDEX, hi + GROW_SLACK);
    const grown = new Float64Array(newHi - newLo + 1);
    if (size > 0) grown.set(this.counts, this.offset - newLo);
    this.counts = grown;
    this.offset = newLo;
  }
}
