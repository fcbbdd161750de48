import 'uplot/dist/uPlot.min.css';
import type {
  AppliedThresholds,
  CohortFigures,
  Flag,
  FlagHealth,
  Incident,
  SequentialTest,
  Trigger,
} from '@vigil/proto';
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import { DetectionCohorts } from '../components/detection-cohorts.js';
import { Badge, ErrorBanner, Link, Loading } from '../components/ui.js';
import { ago, msOrDash, pct, when } from '../lib/format.js';
import { pathOf } from '../lib/router.js';
import { appendSample, type CohortSeries, emptySeries, lineOf, type SeriesKey } from '../lib/series.js';
import { useHealth, useIncidents } from '../queries.js';

const VERDICT_TONE: Record<string, string> = {
  healthy: 'ok',
  regression: 'danger',
  insufficient_data: 'muted',
};

const TEST_TONE: Record<SequentialTest['status'], string> = {
  pass: 'ok',
  fail: 'danger',
  insufficient_data: 'muted',
  shared_breach: 'warn',
};

/** What each sequential test asks, in words. */
const TEST_TITLE: Record<Trigger, string> = {
  error_rate: 'Error rate above its threshold',
  success_rate: 'Success rate below its minimum',
  p99_latency: 'p99 latency above its maximum',
  error_rate_vs_control: 'Error rate above control’s',
  latency_vs_control: 'p99 latency above control’s',
};

/** ln e-values at the cap mean proof (a zero threshold crossed). */
const LOG_CAP = 1e9;

const ms = (v: number) => `${Math.round(v)} ms`;
const ln = (v: number) => (v >= LOG_CAP ? '∞' : v <= -LOG_CAP ? '−∞' : v.toFixed(2).replace('-', '−'));

/**
 * The guardian's evidence on the flag's current version. The health endpoint answers totals, the
 * guardian's sliding window and its tests at the moment it is asked, not a history, so the page keeps
 * its own series by polling it every second since it opened (and marks where the version changed).
 */
export function EvidencePage({ env, flag }: { env: string; flag: Flag }) {
  const health = useHealth(env, flag.key, true);
  const [series, setSeries] = useState<CohortSeries>(() => emptySeries(flag.version));
  // The latest answer with tests: after a kill the new version has none yet, and this is why it died.
  const [tested, setTested] = useState<FlagHealth | undefined>(undefined);
  useEffect(() => {
    const h = health.data;
    if (!h) return;
    setSeries((s) => appendSample(s, h, Date.now()));
    if (h.variants.some((v) => (v.tests ?? []).length > 0)) setTested(h);
  }, [health.data]);

  if (health.isPending) return <Loading />;
  const h = health.data;
  return (
    <div className="evidence" data-testid="evidence">
      <ErrorBanner error={health.error} />
      {h && <Verdict health={h} flag={flag} />}
      {/* After a kill, why it died comes first: the new version has no evidence yet. */}
      <Detection env={env} flag={flag.key} />
      {h && <CohortTable health={h} />}
      {h && <TestsTable health={h} tested={tested} />}
      <div className="charts">
        <CohortChart
          title="Requests (since the version started)"
          testId="chart-requests"
          series={series}
          metrics={['requests']}
          format={(v) => String(Math.round(v))}
        />
        <CohortChart
          title="Error rate (guardian window)"
          testId="chart-errorRate"
          series={series}
          metrics={['errorRate']}
          format={(v) => pct(v)}
        />
        <CohortChart
          title="Latency p50 / p95 / p99, ms (guardian window)"
          testId="chart-latency"
          series={series}
          metrics={['p50', 'p95', 'p99']}
          format={ms}
        />
      </div>
      {series.triggers.length > 0 && (
        <>
          <h2 className="section-title">Sequential tests over time</h2>
          <p className="hint">
            Each test’s statistic is the natural log of its e-value; it fires when the line reaches the dashed
            boundary, log(1/level). Absolute thresholds need that for the evaluations in a row the policy
            asks; comparisons fire at once. Tests restart with each version and epoch. Lines are drawn within
            −2× and 10× the boundary; the table above gives the values.
          </p>
          <div className="charts">
            {series.triggers.map((trigger) => (
              <StatisticChart key={trigger} series={series} trigger={trigger} />
            ))}
          </div>
        </>
      )}
      <p className="hint">
        Series kept by this page from the guardian's verdict, polled every second since it opened (
        {series.t.length} samples). Totals start over with each flag version
        {series.versions.length > 0
          ? ` (version changes seen: ${series.versions.map((v) => `v${v.version} at ${new Date(v.t * 1000).toISOString().slice(11, 19)}`).join(', ')})`
          : ''}
        .
      </p>
    </div>
  );
}

function Verdict({ health, flag }: { health: FlagHealth; flag: Flag }) {
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
        <dt>Thresholds</dt>
        <dd data-testid="thresholds">
          {health.thresholds ? <ThresholdList thresholds={health.thresholds} /> : <GuardOnly flag={flag} />}
        </dd>
      </dl>
      {health.variants.length > 0 && (
        <ul className="variant-verdicts">
          {health.variants.map((v) => (
            <li key={v.variant}>
              <span className="mono">{v.variant}</span> vs{' '}
              <span className="mono">{health.controlVariant}</span>:{' '}
              <Badge tone={VERDICT_TONE[v.status] ?? 'muted'}>{v.status.replace('_', ' ')}</Badge> {v.reason}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The policy the guardian applied, with its numbers. */
function ThresholdList({ thresholds: t }: { thresholds: AppliedThresholds }) {
  return (
    <ul className="thresholds">
      <li>
        error rate ≤ <strong>{pct(t.maxErrorRate)}</strong>
      </li>
      <li>
        success rate ≥ <strong>{pct(t.minSuccessRate)}</strong>
      </li>
      <li>
        p99 ≤ <strong>{ms(t.maxP99LatencyMs)}</strong>
      </li>
      <li>
        min samples <strong>{t.minSamples}</strong>
      </li>
      <li>
        <strong>{t.consecutiveFailures}</strong> evaluation{t.consecutiveFailures === 1 ? '' : 's'} in a row
        over an absolute threshold
      </li>
      {t.compareToControl ? (
        <li>
          vs control: error rate &gt; control × <strong>{(1 + t.errorMargin).toFixed(2)}</strong>, p99 &gt;
          control’s × <strong>{(1 + t.latencyMargin).toFixed(2)}</strong>
        </li>
      ) : (
        <li>no comparison to control</li>
      )}
      <li>
        α <strong>{t.alpha}</strong> per comparison, <strong>{t.thresholdAlpha}</strong> per threshold
      </li>
    </ul>
  );
}

/** Without a verdict on this version the guardian's defaults are unknown here: the flag's own guard only. */
function GuardOnly({ flag }: { flag: Flag }) {
  const g = flag.guard;
  const own = [
    g?.maxErrorRate !== undefined && `error rate ≤ ${pct(g.maxErrorRate)}`,
    g?.minSuccessRate !== undefined && `success rate ≥ ${pct(g.minSuccessRate)}`,
    g?.maxP99LatencyMs !== undefined && `p99 ≤ ${ms(g.maxP99LatencyMs)}`,
    g?.minSamples !== undefined && `min samples ${g.minSamples}`,
    g?.compareToControl === false && 'no comparison to control',
  ].filter((x): x is string => typeof x === 'string');
  return (
    <span className="muted">
      No verdict on this version yet: the guardian reports the thresholds it applies with its first verdict.
      {own.length > 0 ? ` The flag’s guard sets ${own.join(' · ')}.` : ''}
    </span>
  );
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
      <caption>
        Cohorts on version {health.version} (since it started; window: the guardian’s last minute)
      </caption>
      <thead>
        <tr>
          <th scope="col">Variant</th>
          <th scope="col">Role</th>
          <th scope="col">Requests</th>
          <th scope="col">Errors</th>
          <th scope="col">Error rate</th>
          <th scope="col">p50</th>
          <th scope="col">p95</th>
          <th scope="col">p99</th>
          <th scope="col">Window error rate</th>
          <th scope="col">Window p99</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.variant} data-cohort={r.variant}>
            <th scope="row" className="mono">
              {r.variant}
            </th>
            <td>{r.role}</td>
            <td>{r.total.requests}</td>
            <td>{r.total.errors}</td>
            <td>{pct(r.total.errorRate)}</td>
            <td>{msOrDash(r.total.p50LatencyMs)}</td>
            <td>{msOrDash(r.total.p95LatencyMs)}</td>
            <td>{msOrDash(r.total.p99LatencyMs)}</td>
            <td>{r.window ? pct(r.window.errorRate) : '—'}</td>
            <td>{msOrDash(r.window?.p99LatencyMs)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The figure a test is about, against its threshold or control. */
function testFigures(t: Pick<SequentialTest, 'trigger' | 'observed' | 'control' | 'threshold'>): string {
  const rate = (v: number | null) => (v === null ? '—' : pct(v));
  switch (t.trigger) {
    case 'error_rate':
      return `${rate(t.observed)} (limit ${pct(t.threshold)})`;
    case 'success_rate':
      return `${rate(t.observed)} (minimum ${pct(t.threshold)})`;
    case 'p99_latency':
      return `${msOrDash(t.observed)} (limit ${ms(t.threshold)})`;
    case 'error_rate_vs_control':
      return `${rate(t.observed)} vs ${rate(t.control)} (fires above × ${t.threshold.toFixed(2)})`;
    case 'latency_vs_control':
      return `${msOrDash(t.observed)} vs ${msOrDash(t.control)} (fires above × ${t.threshold.toFixed(2)})`;
  }
}

/** Each treatment variant's sequential tests: statistic, boundary, and where they stand. */
function TestsTable({ health, tested }: { health: FlagHealth; tested: FlagHealth | undefined }) {
  const current = health.variants.some((v) => (v.tests ?? []).length > 0);
  const shown = current ? health : tested;
  if (!shown) return null;
  const rows = shown.variants.flatMap((v) => (v.tests ?? []).map((t) => ({ variant: v.variant, t })));
  return (
    <table className="table" data-testid="tests">
      <caption>
        Sequential tests on version {shown.version}
        {current
          ? ''
          : ` — the latest verdict with tests this page saw (${ago(shown.updatedAt ?? undefined)}); version ${health.version} has none yet`}
      </caption>
      <thead>
        <tr>
          <th scope="col">Variant</th>
          <th scope="col">Test</th>
          <th scope="col">Status</th>
          <th scope="col">log e-value</th>
          <th scope="col">log boundary</th>
          <th scope="col">In a row</th>
          <th scope="col">Figures (this epoch)</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(({ variant, t }) => (
          <tr key={`${variant}:${t.trigger}`} data-test={t.trigger} data-crossed={String(t.crossed)}>
            <th scope="row" className="mono">
              {variant}
            </th>
            <td>{TEST_TITLE[t.trigger]}</td>
            <td>
              <Badge tone={TEST_TONE[t.status]}>{t.status.replace('_', ' ')}</Badge>
            </td>
            <td className="mono" data-testid="statistic">
              {ln(t.logEValue)} {t.crossed ? '≥' : '<'}
            </td>
            <td className="mono">{ln(t.logBoundary)}</td>
            <td>
              {t.consecutive} (needs {t.required})
            </td>
            <td>{testFigures(t)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A failing check as the incident's detection entry keeps it (its `data` is free-form: read with care). */
interface DetectedCheck {
  variant: string;
  trigger: Trigger;
  observed: number | null;
  control: number | null;
  threshold: number;
  logEValue: number | undefined;
  logBoundary: number | undefined;
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

function detectedChecks(incident: Incident): DetectedCheck[] {
  const raw = incident.timeline.find((e) => e.kind === 'detection')?.data?.checks;
  if (!Array.isArray(raw)) return [];
  const out: DetectedCheck[] = [];
  for (const c of raw as Record<string, unknown>[]) {
    // The page's own list of triggers: importing proto's at run time would bring zod into the bundle.
    const trigger = (Object.keys(TEST_TITLE) as Trigger[]).find((t) => t === c?.trigger);
    const threshold = num(c?.threshold);
    if (trigger === undefined || threshold === null || typeof c.variant !== 'string') continue;
    out.push({
      variant: c.variant,
      trigger,
      observed: num(c.observed),
      control: num(c.control),
      threshold,
      logEValue: num(c.logEValue) ?? undefined,
      logBoundary: num(c.logBoundary) ?? undefined,
    });
  }
  return out;
}

/**
 * What the guardian saw when it opened the flag's open incident. A kill changes the flag's version,
 * so the verdict that crossed is replaced within a tick; the incident keeps it.
 */
function Detection({ env, flag }: { env: string; flag: string }) {
  const incidents = useIncidents();
  const incident = (incidents.data ?? [])
    .filter((i) => i.env === env && i.flag === flag && i.status !== 'resolved')
    .sort((a, b) => b.detectedAt.localeCompare(a.detectedAt))[0];
  if (!incident) return null;
  const checks = detectedChecks(incident);
  return (
    <section className="card detection" aria-labelledby="detection-title" data-testid="detection">
      <h2 id="detection-title">
        At detection <Badge tone="danger">{incident.severity}</Badge>{' '}
        {incident.killed && <Badge tone="danger">killed</Badge>}
      </h2>
      <p>
        <Link href={pathOf({ name: 'incident', id: incident.id })}>{incident.title}</Link> — version{' '}
        {incident.flagVersion}, detected {when(incident.detectedAt)} ({ago(incident.detectedAt)}),{' '}
        {incident.status}.
      </p>
      {checks.length > 0 && (
        <table className="table" data-testid="detection-tests">
          <caption>The tests that fired</caption>
          <thead>
            <tr>
              <th scope="col">Variant</th>
              <th scope="col">Test</th>
              <th scope="col">log e-value</th>
              <th scope="col">log boundary</th>
              <th scope="col">Figures</th>
            </tr>
          </thead>
          <tbody>
            {checks.map((c) => (
              <tr key={`${c.variant}:${c.trigger}`} data-test={c.trigger}>
                <th scope="row" className="mono">
                  {c.variant}
                </th>
                <td>{TEST_TITLE[c.trigger]}</td>
                <td className="mono">{c.logEValue === undefined ? '—' : `${ln(c.logEValue)} ≥`}</td>
                <td className="mono">{c.logBoundary === undefined ? '—' : ln(c.logBoundary)}</td>
                <td>{testFigures(c)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {incident.cohorts.length > 0 && (
        <DetectionCohorts
          cohorts={incident.cohorts}
          controlVariant={incident.controlVariant}
          caption={`Cohorts at detection (since version ${incident.flagVersion} started)`}
          testId="detection-cohorts"
        />
      )}
    </section>
  );
}

const PALETTE = ['#2e86de', '#d1495b', '#e09f3e', '#8e44ad', '#16a085', '#7f8c8d'];

/** A line of a chart: its label, colour and dash, and where its values are. */
interface Line {
  label: string;
  key: SeriesKey;
  variant: string;
  stroke: string;
  width?: number;
  dash?: number[];
  /** Draw values within these bounds (the legend and the table keep the true ones). */
  clamp?: [number, number];
}

const QUANTILE_DASH: Record<string, number[] | undefined> = { p50: [2, 3], p95: [7, 3], p99: undefined };

function isDark(): boolean {
  return document.documentElement.dataset.theme === 'dark';
}

/** Per-cohort lines of `metrics` (one per cohort and metric): treatments coloured, control grey. */
function CohortChart({
  title,
  testId,
  series,
  metrics,
  format,
}: {
  title: string;
  testId: string;
  series: CohortSeries;
  metrics: SeriesKey[];
  format: (v: number) => string;
}) {
  const lines = (dark: boolean): Line[] =>
    series.variants.flatMap((v, i) =>
      metrics.map((key) => {
        const control = v === series.control;
        const quantile = metrics.length > 1 ? ` ${key}` : '';
        const dash = metrics.length > 1 ? QUANTILE_DASH[key] : control ? [6, 4] : undefined;
        return {
          label: `${v}${quantile}${control ? ' (control)' : ''}`,
          key,
          variant: v,
          stroke: control ? (dark ? '#8b949e' : '#6b7280') : PALETTE[i % PALETTE.length]!,
          width: key === 'p50' ? 1.5 : 2,
          ...(dash ? { dash } : {}),
        };
      }),
    );
  return <Chart title={title} testId={testId} series={series} lines={lines} format={format} />;
}

/** One test's ln e-value per treatment variant, against its boundary (dashed). */
function StatisticChart({ series, trigger }: { series: CohortSeries; trigger: Trigger }) {
  const key: SeriesKey = `test:${trigger}`;
  const boundaryKey: SeriesKey = `boundary:${trigger}`;
  const treatments = series.variants.filter((v) => series.values[key]?.[v] !== undefined);
  // A statistic sinks without bound while a test is far from firing, and soars once it has: draw it
  // within −2× and 10× the boundary, so the boundary stays in view and a crossing stays on the chart.
  const boundary = treatments[0] === undefined ? [] : lineOf(series, boundaryKey, treatments[0]);
  const b = Math.max(1, [...boundary].reverse().find((x): x is number => x !== null) ?? 1);
  const clamp: [number, number] = [-2 * b, 10 * b];
  const range = (_u: uPlot, min: number, max: number): uPlot.Range.MinMax => [
    Math.min(min, -0.5 * b),
    Math.max(max, 1.2 * b),
  ];
  const lines = (dark: boolean): Line[] => [
    ...treatments.map((v) => ({
      label: `${v} log e-value`,
      key,
      variant: v,
      stroke: PALETTE[series.variants.indexOf(v) % PALETTE.length]!,
      width: 2,
      clamp,
    })),
    // Every treatment's test of a trigger has the same boundary: one line.
    ...(treatments[0] !== undefined
      ? [
          {
            label: 'boundary',
            key: boundaryKey,
            variant: treatments[0],
            stroke: dark ? '#e6edf3' : '#1f2328',
            width: 1.5,
            dash: [8, 4],
          },
        ]
      : []),
  ];
  return (
    <Chart
      title={`${TEST_TITLE[trigger]}: statistic vs boundary`}
      testId={`chart-test-${trigger}`}
      series={series}
      lines={lines}
      format={ln}
      range={range}
    />
  );
}

function Chart({
  title,
  testId,
  series,
  lines,
  format,
  range,
}: {
  title: string;
  testId: string;
  series: CohortSeries;
  lines: (dark: boolean) => Line[];
  format: (v: number) => string;
  range?: uPlot.Range.Function;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = lines(false);
  const identity = shape.map((l) => `${l.key}/${l.variant}/${l.label}`).join('|');
  const rangeRef = useRef(range);
  rangeRef.current = range;
  // One plot per set of lines; data updates reuse it.
  // biome-ignore lint/correctness/useExhaustiveDependencies: rebuilt only when the lines change
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const dark = isDark();
    const axis = { stroke: dark ? '#c9d1d9' : '#374151', grid: { stroke: dark ? '#30363d' : '#e5e7eb' } };
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 200,
      series: [
        {},
        ...lines(dark).map((l) => ({
          label: l.label,
          stroke: l.stroke,
          width: l.width ?? 2,
          ...(l.dash ? { dash: l.dash } : {}),
          value: (_u: uPlot, x: number | null) => (x === null ? '—' : format(x)),
        })),
      ],
      axes: [
        // Clock times only: uPlot's two-line date labels collide in a card this narrow.
        { ...axis, space: 80, values: (_u, ticks) => ticks.map(clock) },
        { ...axis, values: (_u, ticks) => ticks.map((t) => format(t)), size: 70 },
      ],
      scales: {
        // The samples' span, and at least the last minute: uPlot would stretch a single sample over a day.
        x: {
          time: true,
          range: (u, min, max) => {
            const t = u.data[0];
            const first = t[0];
            const last = t[t.length - 1];
            if (first === undefined || last === undefined) return [min, max];
            return [Math.min(first, last - 60), last];
          },
        },
        ...(rangeRef.current
          ? { y: { range: (u: uPlot, min: number, max: number) => rangeRef.current!(u, min, max, 'y') } }
          : {}),
      },
      legend: { show: true },
    };
    const p = new uPlot(opts, dataOf(series, shape), el);
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
  }, [identity]);
  useEffect(() => {
    plot.current?.setData(dataOf(series, shape));
  });
  return (
    <figure className="card chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${summary(series, shape, format)}`} />
    </figure>
  );
}

/** Epoch seconds as a local `HH:MM:SS`. */
function clock(t: number): string {
  const d = new Date(t * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function dataOf(series: CohortSeries, lines: Line[]): uPlot.AlignedData {
  const drawn = (l: Line) => {
    const values = lineOf(series, l.key, l.variant);
    const c = l.clamp;
    return c ? values.map((x) => (x === null ? null : Math.min(c[1], Math.max(c[0], x)))) : values;
  };
  return [series.t, ...lines.map(drawn)] as uPlot.AlignedData;
}

function summary(series: CohortSeries, lines: Line[], format: (v: number) => string): string {
  const last = series.t.length - 1;
  if (last < 0 || lines.length === 0) return 'no data yet';
  return lines
    .map((l) => {
      const x = lineOf(series, l.key, l.variant)[last];
      return `${l.label} ${x === null || x === undefined ? 'no data' : format(x)}`;
    })
    .join(', ');
}
