import type { Change } from '../lib/diff.js';

/** The changes a save makes, path by path. */
export function DiffView({ changes }: { changes: readonly Change[] }) {
  if (changes.length === 0) return <p className="muted">No changes.</p>;
  return (
    <table className="diff" data-testid="diff">
      <caption className="sr-only">Changes</caption>
      <thead>
        <tr>
          <th scope="col">Field</th>
          <th scope="col">Before</th>
          <th scope="col">After</th>
        </tr>
      </thead>
      <tbody>
        {changes.map((c) => (
          <tr key={c.path + c.kind} className={`diff-${c.kind}`}>
            <th scope="row" className="mono">
              {c.path || '(whole)'}
            </th>
            <td className="mono diff-before">
              {c.kind === 'added' ? <span className="muted">—</span> : short(c.before)}
            </td>
            <td className="mono diff-after">
              {c.kind === 'removed' ? <span className="muted">removed</span> : short(c.after)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function short(v: unknown): string {
  const text = JSON.stringify(v);
  return text === undefined ? '—' : text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
