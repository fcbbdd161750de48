/** ln(k!) for k = 0..n, grown on demand. */
const logFactorials: number[] = [0];

function logFactorial(k: number): number {
  for (let i = logFactorials.length; i <= k; i++) logFactorials.push(logFactorials[i - 1]! + Math.log(i));
  return logFactorials[k]!;
}

/** P(X ≤ x) for X ~ Binomial(n, p). */
export function binomialCdf(x: number, n: number, p: number): number {
  if (x < 0) return 0;
  if (x >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  let sum = 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  for (let k = 0; k <= x; k++) {
    sum += Math.exp(logFactorial(n) - logFactorial(k) - logFactorial(n - k) + k * lp + (n - k) * lq);
  }
  return Math.min(1, sum);
}

/** P(X ≤ x) for X ~ Poisson(lambda). */
export function poissonCdf(x: number, lambda: number): number {
  if (x < 0) return 0;
  let sum = 0;
  for (let k = 0; k <= x; k++) sum += Math.exp(-lambda + k * Math.log(lambda) - logFactorial(k));
  return Math.min(1, sum);
}

/** Solves f(p) = target for p in [0, 1] by bisection, f monotone (either way). */
function solve(f: (p: number) => number, target: number): number {
  const rising = f(1) > f(0);
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < target === rising) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The exact (Clopper–Pearson) two-sided confidence interval for a proportion, x successes in n. */
export function clopperPearson(x: number, n: number, confidence = 0.95): [number, number] {
  const tail = (1 - confidence) / 2;
  // Lower: the p at which x or more is just a tail event; upper: the p at which x or fewer is.
  const lower = x === 0 ? 0 : solve((p) => 1 - binomialCdf(x - 1, n, p), tail);
  const upper = x === n ? 1 : solve((p) => binomialCdf(x, n, p), tail);
  return [lower, upper];
}

/**
 * The most powerful rule (Neyman–Pearson, randomised) telling Poisson(lambda1) from Poisson(lambda0)
 * with at most `size` false alarms: its detection probability.
 */
export function bestPower(lambda0: number, lambda1: number, size: number): number {
  // Reject for large counts: find c with P0(X ≥ c) ≤ size < P0(X ≥ c − 1), randomise at c − 1.
  let c = 0;
  while (1 - poissonCdf(c - 1, lambda0) > size) c++;
  const sizeAtC = 1 - poissonCdf(c - 1, lambda0);
  const massBelow = Math.exp(-lambda0 + (c - 1) * Math.log(lambda0) - logFactorial(c - 1));
  const gamma = c > 0 ? (size - sizeAtC) / massBelow : 0;
  const powerAtC = 1 - poissonCdf(c - 1, lambda1);
  const massBelow1 = c > 0 ? Math.exp(-lambda1 + (c - 1) * Math.log(lambda1) - logFactorial(c - 1)) : 0;
  return powerAtC + gamma * massBelow1;
}

/** The smallest false-alarm probability at which any rule detects Poisson(lambda1) against Poisson(lambda0) with probability `power`. */
export function leastSize(lambda0: number, lambda1: number, power: number): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (bestPower(lambda0, lambda1, mid) >= power) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The q-quantile of sorted values (nearest rank: the smallest value with at least q of them at or below). */
export function quantileOf(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}
