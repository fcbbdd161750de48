import 'uplot/dist/uPlot.min.css';
import type { CohortFigures, Flag, FlagHealth } from '@vigil/proto';
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import { Badge, ErrorBanner, Loading } from '../components/ui.js';
import { ago, pct } from '../lib/format.js';
import { appendSample, type CohortSeries, emptySeries, type SeriesKey } from '../lib/series.js';
import { useHealth } from '../queries.js';

const VERDICT_TONE: Record<string, string> = {
  healthy: 'ok',
  regression: 'danger',
  insufficient_data: 'muted',
};

/**
 * The guardian's evidence on the flag's current version. The health endpoint answers totals and the
 * guardian's sliding window at the moment it is asked, not a history, so the page keeps its own series
 * by polling it every second since it opened (and starts over when the version changes).
 */
export function EvidencePage({ env, flag }: { env: string; flag: Flag }) {
  const health = useHealth(env, flag.key, true);
  const [series, setSeries] = useState<CohortSeries>(() => emptySeries(flag.version));
  useEffect(() => {
    if (health.data) setSeries((s) => appendSample(s, health.data, Date.now()));
  }, [health.data]);

  if (health.isPending) return <Loading />;
  const h = health.data;
  return (
    <div className="evidence" data-testid="evidence">
      <ErrorBanner error={health.error} />
      {h && <Verdict health={h} flag={flag} />}
      {h && <CohortTable health={h} />}
      <div className="charts">
        <Chart
          title="Requests (since the version started)"
          series={series}
          metric="requests"
          format={(v) => String(Math.round(v))}
        />
        <Chart
          title="Error rate (guardian window)"
          series={series}
          metric="errorRate"
          format={(v) => pct(v)}
        />
        <Chart
          title="p99 latency, ms (guardian window)"
          series={series}
          metric="p99"
          format={(v) => `${Math.round(v)} ms`}
        />
      </div>
      <p className="hint">
        Series kept by this page from the guardian's verdict, polled every second since it opened (
        {series.t.length} samples). Totals start over with each flag version
        {series.versions.length > 0
          ? ` (version changes seen: ${series.versions.map((v) => `v${v.version} at ${new Date(v.t * 1000).toISOString().slice(11, 19)}`).join(', ')})`
          : ''}
        . The verdict carries p99 only; p50 and p95 are not reported by the server.
      </p>
    </div>
  );
}

function Verdict({ health, flag }: { health: FlagHealth & Record<string, unknown>; flag: Flag }) {
  const g = flag.guard;
  const extra = (k: string) => (health[k] !== undefined ? health[k] : undefined);
  const statistic = extra('statistic');
  const boundary = extra('boundary');
  return (
    <section className="card" aria-labelledby="verdict-title">
      <h2 id="verdict-title">
        Verdict{' '}
        <Badge tone={VERDICT_TONE[health.status] ?? 'muted'}>
          <span data-testid="verdict">{health.status.replace('_', ' ')}</span>
        </Badge>{' '}
        <Badge tone={health.gate === 'pass' ? 'ok' : health.gate === 'fail' ? 'danger' : 'muted'}>
          gate: {health.gate}
        </Badge>
        {health.killed && <Badge tone="danger">killed</Badge>}
      </h2>
      <p>{health.reason || 'Nothing fired.'}</p>
      <dl className="kv">
        <dt>Version</dt>
        <dd>
          {health.version}
          {health.verdictVersion !== null && health.verdictVersion !== health.version
            ? ` (latest verdict is about version ${health.verdictVersion})`
            : ''}
        </dd>
        <dt>Control</dt>
        <dd className="mono">{health.controlVariant}</dd>
        <dt>Triggers</dt>
        <dd>{health.triggers.length ? health.triggers.join(', ') : 'none'}</dd>
        <dt>Severity</dt>
        <dd>{health.severity ?? '—'}</dd>
        <dt>Evaluated</dt>
        <dd>{ago(health.updatedAt ?? undefined)}</dd>
        {statistic !== undefined && (
          <>
            <dt>Sequential test statistic</dt>
            <dd className="mono" data-testid="statistic">
              {JSON.stringify(statistic)}
              {boundary !== undefined ? ` (boundary ${JSON.stringify(boundary)})` : ''}
            </dd>
          </>
        )}
        <dt>Thresholds</dt>
        <dd data-testid="thresholds">
          error rate ≤ {g?.maxErrorRate !== undefined ? pct(g.maxErrorRate) : 'default'} · p99 ≤{' '}
          {g?.maxP99LatencyMs !== undefined ? `${g.maxP99LatencyMs} ms` : 'default'} · success ≥{' '}
          {g?.minSuccessRate !== undefined ? pct(g.minSuccessRate) : 'default'} · min samples{' '}
          {g?.minSamples ?? 'default'}
          {g?.compareToControl === false ? ' · no comparison to control' : ' · compared to control'}
        </dd>
      </dl>
      {health.variants.length > 0 && (
        <ul className="variant-verdicts">
          {health.variants.map((v) => (
            <li key={v.variant}>
              <span className="mono">{v.variant}</span> vs{' '}
              <span className="mono">{health.controlVariant}</span>:{' '}
              <Badge tone={VERDICT_TONE[v.status] ?? 'muted'}>{v.status.replace('_', ' ')}</Badge> {v.reason}
              {sequentialOf(v)}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The sequential test's statistic and boundary when the guardian reports them per variant. */
function sequentialOf(v: object): string {
  const r = v as Record<string, unknown>;
  const s = r.statistic ?? (r.test as Record<string, unknown> | undefined)?.statistic;
  const b = r.boundary ?? (r.test as Record<string, unknown> | undefined)?.boundary;
  if (s === undefined) return '';
  return ` — statistic ${typeof s === 'number' ? s.toFixed(3) : JSON.stringify(s)}${b !== undefined ? ` against boundary ${typeof b === 'number' ? b.toFixed(3) : JSON.stringify(b)}` : ''}`;
}

function CohortTable({ health }: { health: FlagHealth }) {
  const rows: { variant: string; total: CohortFigures; window?: CohortFigures | null; role: string }[] = [];
  for (const v of health.variants) {
    rows.push({ variant: v.variant, total: v.treatment, window: v.window.treatment, role: 'treatment' });
  }
  const control =
    health.variants[0]?.control ?? health.cohorts.find((c) => c.variant === health.controlVariant);
  if (control)
    rows.push({
      variant: control.variant,
      total: control,
      window: health.variants[0]?.window.control ?? null,
      role: 'control',
    });
  for (const c of health.cohorts)
    if (!rows.some((r) => r.variant === c.variant))
      rows.push({
        variant: c.variant,
        total: c,
        role: c.variant === health.controlVariant ? 'control' : 'treatment',
      });
  if (rows.length === 0) return <p className="muted">No traffic measured on this version yet.</p>;
  return (
    <table className="table" data-testid="cohorts">
      <caption>Cohorts on version {health.version}</caption>
      <thead>
        <tr>
          <th scope="col">Variant</th>
          <th scope="col">Role</th>
          <th scope="col">Requests</th>
          <th scope="col">Errors</th>
          <th scope="col">Error rate</th>
          <th scope="col">p99</th>
          <th scope="col">Window error rate</th>
          <th scope="col">Window p99</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.variant}>
            <th scope="row" className="mono">
              {r.variant}
            </th>
            <td>{r.role}</td>
            <td>{r.total.requests}</td>
            <td>{r.total.errors}</td>
            <td>{pct(r.total.errorRate)}</td>
            <td>{r.total.p99LatencyMs === null ? '—' : `${Math.round(r.total.p99LatencyMs)} ms`}</td>
            <td>{r.window ? pct(r.window.errorRate) : '—'}</td>
            <td>{r.window?.p99LatencyMs != null ? `${Math.round(r.window.p99LatencyMs)} ms` : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const PALETTE = ['#d1495b', '#2e86de', '#e09f3e', '#8e44ad', '#16a085', '#7f8c8d'];

function Chart({
  title,
  series,
  metric,
  format,
}: {
  title: string;
  series: CohortSeries;
  metric: SeriesKey;
  format: (v: number) => string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const variants = series.variants.join('|');
  // One plot per set of cohorts; data updates reuse it.
  // biome-ignore lint/correctness/useExhaustiveDependencies: rebuilt only when the cohorts change
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const dark = document.documentElement.dataset.theme === 'dark';
    const axis = { stroke: dark ? '#c9d1d9' : '#374151', grid: { stroke: dark ? '#30363d' : '#e5e7eb' } };
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 200,
      series: [
        {},
        ...series.variants.map((v, i) => ({
          label: v === series.control ? `${v} (control)` : v,
          stroke: v === series.control ? (dark ? '#8b949e' : '#6b7280') : PALETTE[i % PALETTE.length]!,
          width: 2,
          ...(v === series.control ? { dash: [6, 4] } : {}),
          value: (_u: uPlot, x: number | null) => (x === null ? '—' : format(x)),
        })),
      ],
      axes: [{ ...axis }, { ...axis, values: (_u, ticks) => ticks.map((t) => format(t)), size: 70 }],
      scales: { x: { time: true } },
      legend: { show: true },
    };
    const p = new uPlot(opts, dataOf(series, metric), el);
    plot.current = p;
    const observer = new ResizeObserver(() =>
      p.setSize({ width: Math.max(280, el.clientWidth), height: 200 }),
    );
    observer.observe(el);
    return () => {
      observer.disconnect();
      p.destroy();
      plot.current = null;
    };
  }, [variants, metric]);
  useEffect(() => {
    plot.current?.setData(dataOf(series, metric));
  }, [series, metric]);
  return (
    <figure className="card chart" data-testid={`chart-${metric}`}>
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${summary(series, metric, format)}`} />
    </figure>
  );
}

function dataOf(series: CohortSeries, metric: SeriesKey): uPlot.AlignedData {
  return [series.t, ...series.variants.map((v) => series.values[metric][v] ?? [])] as uPlot.AlignedData;
}

function summary(series: CohortSeries, metric: SeriesKey, format: (v: number) => string): string {
  const last = series.t.length - 1;
  if (last < 0) return 'no data yet';
  return series.variants
    .map((v) => {
      const x = series.values[metric][v]?.[last];
      return `${v} ${x === null || x === undefined ? 'no data' : format(x)}`;
    })
    .join(', ');
}
