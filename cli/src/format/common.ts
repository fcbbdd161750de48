// Small formatting helpers shared by the human output of every command. Times are UTC on purpose:
// an incident channel has people in several time zones, and the server's logs are in UTC.

/** `2030-03-01T12:00:00.123Z` → `2030-03-01 12:00:00 UTC`. */
export function utc(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** `253000` → `4m 13s`; `3723000` → `1h 2m`; `90061000` → `1d 1h`; under a second → `0s`. */
export function span(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return s > 0 ? `${m}m ${s}s` : `${m}m`;
  return `${s}s`;
}

/** `5m ago` or `in 5m`, from `now` (epoch ms). */
export function relative(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const delta = now - t;
  if (Math.abs(delta) < 1000) return 'just now';
  return delta >= 0 ? `${span(delta)} ago` : `in ${span(-delta)}`;
}

/** `2030-03-01 12:00:00 UTC (5m ago)`. */
export function when(iso: string | undefined, now: number): string | undefined {
  if (iso === undefined) return undefined;
  const rel = relative(iso, now);
  return rel === '' ? utc(iso) : `${utc(iso)} (${rel})`;
}

/** Thousandths of a percent as a percentage: `20000` → `20%`, `12345` → `12.345%`. */
export function weightPercent(weight: number): string {
  return `${Number((weight / 1000).toFixed(3))}%`;
}

/** A value in a sentence: strings quoted, everything else as JSON. */
export function literal(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}
