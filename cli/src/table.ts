/** Longest a cell may be before it is cut with `…`, so one long value cannot wrap a whole table. */
const MAX_CELL = 48;

/** A cell cut to `max` characters. */
export function clip(text: string, max = MAX_CELL): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A plain-text table: a header row, columns padded to their widest cell and two spaces apart, no
 * trailing spaces. Plain text on purpose: it reads the same in a terminal, a pager, a log and Slack.
 * The last column is never cut: it pads nothing, and it is where the long text (a message) goes.
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const last = headers.length - 1;
  const cells = [headers, ...rows.map((row) => row.map((cell, i) => (i === last ? cell : clip(cell))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `label  value` lines with the labels padded to one width; entries without a value are left out. */
export function fields(entries: readonly (readonly [string, string | undefined])[]): string {
  const shown = entries.filter((e): e is readonly [string, string] => e[1] !== undefined && e[1] !== '');
  const width = Math.max(0, ...shown.map(([label]) => label.length));
  return shown
    .map(([label, value]) => {
      const [first, ...rest] = value.split('\n');
      const pad = ' '.repeat(width + 2);
      return [`${label.padEnd(width)}  ${first}`, ...rest.map((line) => `${pad}${line}`)].join('\n');
    })
    .join('\n');
}
