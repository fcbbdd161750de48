// How an incident's cohort figures are written, wherever an incident is shown: the postmortem draft,
// the guardian's notifications and the CLI print the same numbers the same way.

/** `0.5` → `50.00%`; `0.0004` → `0.040%`; `0` → `0%`. */
export function formatRate(rate: number): string {
  const percent = rate * 100;
  if (percent === 0) return '0%';
  return `${percent.toFixed(percent < 0.1 ? 3 : 2)}%`;
}

/** `12345` → `12,345`. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** `850` → `850 ms`; `2400` → `2.40 s`; null → `n/a`. */
export function formatLatency(ms: number | null): string {
  if (ms === null) return 'n/a';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
