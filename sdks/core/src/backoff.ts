/**
 * "Full jitter" exponential backoff: a uniformly random delay in `[0, min(cap, base · 2^attempt))`.
 * Spreading reconnects over the whole interval keeps a fleet of SDKs (or the browsers of a whole
 * audience) from reconnecting in waves after a server restart (see AWS's "Exponential Backoff And Jitter").
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
