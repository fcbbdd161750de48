/**
 * "Full jitter" exponential backoff: a uniformly random delay in `[0, min(cap, base · 2^attempt))`, so
 * the browsers of a whole audience do not reconnect in waves after a server restart.
 */
export function fullJitter(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 31));
  return Math.floor(random() * ceiling);
}
