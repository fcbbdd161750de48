import type { LatencySketch as LatencySketchData } from '@vigil/proto';

/** Bins kept before the lowest ones are collapsed; well under the wire limit of 4096. */
const DEFAULT_MAX_BINS = 2048;

/**
 * A mergeable latency sketch (DDSketch): a value v > 0 counts in bin `ceil(log(v) / log(gamma))` with
 * `gamma = (1 + alpha) / (1 - alpha)`, so every quantile it answers is within `alpha` of the true one,
 * relatively. Values ≤ 0 count in `zero`. Past `maxBins` bins the lowest ones are merged into one, as
 * DDSketch does: low quantiles lose precision, the high ones the guardian reads (p99) keep it.
 * Its JSON is `latencySketchSchema` from `@vigil/proto`.
 */
export class LatencySketch {
  readonly alpha: number;
  readonly maxBins: number;
  private readonly gamma: number;
  private readonly logGamma: number;
  private bins = new Map<number, number>();
  /** After a collapse, the lowest bin kept: values below it count in it. */
  private floor = Number.NEGATIVE_INFINITY;
  private zeroCount = 0;
  private total = 0;
  private sumMs = 0;
  private minMs = Number.POSITIVE_INFINITY;
  private maxMs = Number.NEGATIVE_INFINITY;

  constructor(alpha = 0.01, maxBins = DEFAULT_MAX_BINS) {
    if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
    if (!Number.isInteger(maxBins) || maxBins < 1)
      throw new RangeError(`maxBins must be ≥ 1, got ${maxBins}`);
    this.alpha = alpha;
    this.maxBins = maxBins;
    this.gamma = (1 + alpha) / (1 - alpha);
    this.logGamma = Math.log(this.gamma);
  }

  /** Number of values added. */
  get count(): number {
    return this.total;
  }

  /** Sum of the values added (negatives count as 0). */
  get sum(): number {
    return this.sumMs;
  }

  /** Smallest value added, or undefined when empty. */
  get min(): number | undefined {
    return this.total === 0 ? undefined : this.minMs;
  }

  /** Largest value added, or undefined when empty. */
  get max(): number | undefined {
    return this.total === 0 ? undefined : this.maxMs;
  }

  /** Adds one value (ms). NaN and infinities are ignored; negatives count as 0. */
  add(valueMs: number): void {
    if (!Number.isFinite(valueMs)) return;
    const v = Math.max(valueMs, 0);
    this.total += 1;
    this.sumMs += v;
    if (v < this.minMs) this.minMs = v;
    if (v > this.maxMs) this.maxMs = v;
    if (v === 0) {
      this.zeroCount += 1;
      return;
    }
    let index = Math.ceil(Math.log(v) / this.logGamma);
    if (index < this.floor) index = this.floor;
    const bins = this.bins;
    const held = bins.get(index);
    bins.set(index, held === undefined ? 1 : held + 1);
    if (held === undefined && bins.size > this.maxBins) this.collapse();
  }

  /** Adds another sketch's values into this one; both must share `alpha`. */
  merge(other: LatencySketch): void {
    if (other.alpha !== this.alpha) {
      throw new RangeError(`cannot merge sketches of alpha ${other.alpha} into alpha ${this.alpha}`);
    }
    if (other.total === 0) return;
    for (const [index, count] of other.bins) this.bins.set(index, (this.bins.get(index) ?? 0) + count);
    // What the other sketch collapsed cannot be told apart again: fold ours below its floor too.
    if (other.floor > this.floor) this.foldBelow(other.floor);
    this.zeroCount += other.zeroCount;
    this.total += other.total;
    this.sumMs += other.sumMs;
    if (other.minMs < this.minMs) this.minMs = other.minMs;
    if (other.maxMs > this.maxMs) this.maxMs = other.maxMs;
    if (this.bins.size > this.maxBins) this.collapse();
  }

  /** The value at quantile `q` in [0, 1] (rank `q·(count−1)`), or undefined when empty. */
  quantile(q: number): number | undefined {
    if (this.total === 0 || !(q >= 0 && q <= 1)) return undefined;
    const rank = q * (this.total - 1);
    let seen = this.zeroCount;
    if (seen > rank) return 0;
    const indexes = [...this.bins.keys()].sort((a, b) => a - b);
    let value = this.maxMs;
    for (const index of indexes) {
      seen += this.bins.get(index)!;
      if (seen > rank) {
        // The point of the bin (gamma^(i-1), gamma^i] within alpha of every value in it.
        value = (2 * this.gamma ** index) / (this.gamma + 1);
        break;
      }
    }
    return Math.min(Math.max(value, this.minMs), this.maxMs);
  }

  /** The wire shape (`latencySketchSchema`), bins in ascending order. */
  toJSON(): LatencySketchData {
    const bins: [number, number][] = [...this.bins].sort((a, b) => a[0] - b[0]);
    const out: LatencySketchData = {
      alpha: this.alpha,
      zero: this.zeroCount,
      bins,
      count: this.total,
      sum: this.sumMs,
    };
    if (this.total > 0) {
      out.min = this.minMs;
      out.max = this.maxMs;
    }
    return out;
  }

  /** A sketch from its wire shape (validate untrusted input with `latencySketchSchema` first). */
  static fromJSON(data: LatencySketchData, maxBins = DEFAULT_MAX_BINS): LatencySketch {
    const sketch = new LatencySketch(data.alpha, maxBins);
    for (const [index, count] of data.bins) sketch.bins.set(index, (sketch.bins.get(index) ?? 0) + count);
    if (sketch.bins.size > maxBins) sketch.collapse();
    sketch.zeroCount = data.zero;
    sketch.total = data.count;
    sketch.sumMs = data.sum;
    if (data.count > 0) {
      sketch.minMs = data.min ?? 0;
      sketch.maxMs = data.max ?? sketch.minMs;
    }
    return sketch;
  }

  /** Merges the lowest bins into one so that `maxBins` remain. */
  private collapse(): void {
    const excess = this.bins.size - this.maxBins;
    if (excess === 1) {
      // The common case (one new bin): the two lowest indexes in one pass, no sort.
      let lowest = Number.POSITIVE_INFINITY;
      let next = Number.POSITIVE_INFINITY;
      for (const index of this.bins.keys()) {
        if (index < lowest) {
          next = lowest;
          lowest = index;
        } else if (index < next) next = index;
      }
      this.foldBelow(next);
      return;
    }
    const indexes = [...this.bins.keys()].sort((a, b) => a - b);
    this.foldBelow(indexes[excess]!);
  }

  /** Moves every count below `index` into `index`'s bin, which becomes the floor. */
  private foldBelow(index: number): void {
    let moved = 0;
    for (const [i, count] of this.bins) {
      if (i < index) {
        moved += count;
        this.bins.delete(i);
      }
    }
    if (moved > 0) this.bins.set(index, (this.bins.get(index) ?? 0) + moved);
    this.floor = index;
  }
}
