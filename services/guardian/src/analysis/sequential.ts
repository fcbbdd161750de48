/**
 * Always-valid sequential tests on counts: mixtures of likelihood ratios, which are nonnegative
 * (super)martingales with mean 1 under the null, so by Ville's inequality the chance that one ever
 * reaches 1/alpha — however often it is looked at — is at most alpha. docs/guardian-method.md derives them.
 *
 * A test's state is one running log likelihood ratio per mixture component (`number[]`); the functions
 * here add one batch of counts to it and read the mixture's e-value. Nothing here allocates per call.
 */

/** A discrete prior over effect sizes: each alternative with its weight (weights sum to 1). */
export interface Mixture {
  /** The alternatives, each > 1: a rate ratio (two-sample) or an odds ratio over the threshold (one-sample). */
  readonly ratios: readonly number[];
  /** log of each alternative's weight. */
  readonly logWeights: readonly number[];
  /** log of each ratio. */
  readonly logRatios: readonly number[];
}

/** A mixture from ratios (each > 1) and positive weights, normalised to sum to 1. */
export function mixture(ratios: readonly number[], weights?: readonly number[]): Mixture {
  if (ratios.length === 0) throw new RangeError('a mixture needs at least one ratio');
  const w = weights ?? ratios.map(() => 1);
  if (w.length !== ratios.length) throw new RangeError('a mixture needs one weight per ratio');
  for (const r of ratios)
    if (!(r > 1 && Number.isFinite(r))) throw new RangeError(`ratio must be > 1, got ${r}`);
  for (const x of w) if (!(x > 0 && Number.isFinite(x))) throw new RangeError(`weight must be > 0, got ${x}`);
  const total = w.reduce((a, b) => a + b, 0);
  return {
    ratios: [...ratios],
    logWeights: w.map((x) => Math.log(x / total)),
    logRatios: ratios.map(Math.log),
  };
}

/** A fresh test state for a mixture: every component's log likelihood ratio at 0 (e-value 1). */
export function freshState(m: Mixture): number[] {
  return m.ratios.map(() => 0);
}

/** `log(sum(exp(a_i + b_i)))` without overflow. */
export function logSumExp(a: readonly number[], b: readonly number[]): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]! + b[i]!;
    if (v > max) max = v;
  }
  // All −∞: the sum is 0. Any +∞ (a zero threshold's proof): the sum is +∞, where ∞ − ∞ would be NaN.
  if (max === Number.NEGATIVE_INFINITY || max === Number.POSITIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.exp(a[i]! + b[i]! - max);
  return max + Math.log(sum);
}

/** The log e-value of a mixture test: `log Σ w_i · LR_i`. */
export function mixtureLogE(m: Mixture, state: readonly number[]): number {
  return logSumExp(m.logWeights, state);
}

/**
 * Adds one batch to a two-sample test of "events in A happen at a higher rate than in B".
 * `a` events among `nA` trials in cohort A, `b` among `nB` in B, in the same batch (the same time span).
 *
 * Conditioned on the batch's total events `a + b`, the null "A's rate ≤ B's" leaves `a` hypergeometric
 * (or stochastically smaller), whose every convex moment Hoeffding's inequality bounds by those of
 * `Binomial(a + b, π0)`, `π0 = nA / (nA + nB)` — whatever the shared base rate is, even if it moves
 * from batch to batch. Component i is the likelihood ratio of `Binomial(a + b, q_i)`,
 * `q_i = ψ_i·π0 / (ψ_i·π0 + 1 − π0)`: A's rate ψ_i times B's. With `margin` > 0 the null becomes
 * "A's rate ≤ (1 + margin) × B's" (`nA` weighted by 1 + margin), which holds exactly for rare events
 * (the Poisson limit) and approximately otherwise.
 */
export function addTwoSample(
  state: number[],
  m: Mixture,
  a: number,
  nA: number,
  b: number,
  nB: number,
  margin = 0,
): void {
  if (a + b === 0 || nA <= 0 || nB <= 0) return;
  const wA = (1 + margin) * nA;
  const pi0 = wA / (wA + nB);
  const ratios = m.ratios;
  const logRatios = m.logRatios;
  for (let i = 0; i < ratios.length; i++) {
    // log(q/π0) = log ψ − log(1 + (ψ−1)π0) and log((1−q)/(1−π0)) = −log(1 + (ψ−1)π0).
    const spread = Math.log1p((ratios[i]! - 1) * pi0);
    state[i]! += a * logRatios[i]! - (a + b) * spread;
  }
}

/**
 * A one-sample test of "the event rate is above p0", its per-event and per-non-event log likelihood
 * ratios worked out once. Component i is the likelihood ratio of rate `p_i` (odds `ψ_i` times p0's)
 * against p0; its mean is 1 at p0 and below 1 at any rate under p0, so the null "rate ≤ p0" is covered.
 */
export interface OneSample {
  readonly p0: number;
  /** log(p_i / p0) per component. */
  readonly onEvent: readonly number[];
  /** log((1 − p_i) / (1 − p0)) per component. */
  readonly onOther: readonly number[];
}

/** The one-sample test of rate > `p0` under mixture `m`. */
export function oneSample(m: Mixture, p0: number): OneSample {
  const odds0 = p0 / (1 - p0);
  const onEvent: number[] = [];
  const onOther: number[] = [];
  for (const ratio of m.ratios) {
    const odds = ratio * odds0;
    const p = odds / (1 + odds);
    onEvent.push(Math.log(p / p0));
    onOther.push(Math.log1p(-p) - Math.log1p(-p0));
  }
  return { p0, onEvent, onOther };
}

/** Adds one batch to a one-sample test: `events` among `trials`. */
export function addOneSample(state: number[], test: OneSample, events: number, trials: number): void {
  if (trials <= 0 || test.p0 >= 1) return;
  if (test.p0 <= 0) {
    // A zero threshold: one event is proof enough.
    if (events > 0) state.fill(Number.POSITIVE_INFINITY);
    return;
  }
  const others = trials - events;
  for (let i = 0; i < state.length; i++) state[i]! += events * test.onEvent[i]! + others * test.onOther[i]!;
}

/**
 * The share of a test's alpha spent in epoch `epoch` (1-based) when a test restarts every epoch:
 * `6 / (π² · epoch²)`, which sums to 1 over all epochs, so the epochs together stay within alpha.
 */
export function epochShare(epoch: number): number {
  if (!(epoch >= 1)) throw new RangeError(`epoch must be ≥ 1, got ${epoch}`);
  return 6 / (Math.PI * Math.PI * epoch * epoch);
}
