// ISO 8601 that every SDK reads alike: a date (UTC midnight), or a date-time with `Z` or an offset.
// Date.parse alone also takes "hello 2", rolls 2024-02-30 over to March and reads zoneless times as local.
const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d))?$/;

/**
 * Epoch milliseconds of a `before`/`after` operand: finite epoch-ms numbers, or ISO 8601 dates and
 * date-times with a zone; undefined for anything else (including impossible days like 2024-02-30).
 */
export function parseTime(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string' || value.length > 40) return undefined;
  const m = ISO_DATE.exec(value);
  if (!m) return undefined;
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (day.getUTCMonth() !== Number(m[2]) - 1 || day.getUTCDate() !== Number(m[3])) return undefined;
  return Date.parse(value);
}
