import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The flag server's Prometheus metrics, in a registry of its own (one per server instance). */
export class ServerMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'vigil_http_requests_total',
    help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'vigil_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly sdkConnections = new Gauge({
    name: 'vigil_sdk_connections',
    help: 'Open SDK streams, by environment and key kind (server or client)',
    labelNames: ['env', 'kind'] as const,
    registers: [this.registry],
  });

  readonly writes = new Counter({
    name: 'vigil_writes_total',
    help: 'Configuration writes accepted through this server, by action',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });

  readonly changesApplied = new Counter({
    name: 'vigil_changes_applied_total',
    help: 'Changes from the store applied to the in-memory state, by environment',
    labelNames: ['env'] as const,
    registers: [this.registry],
  });

  readonly broadcastSeconds = new Histogram({
    name: 'vigil_broadcast_duration_seconds',
    help: 'Time from receiving a change from the store to having handed its patch to every open stream',
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  readonly slowClients = new Counter({
    name: 'vigil_stream_slow_clients_total',
    help: 'Streams closed because they could not keep up',
    registers: [this.registry],
  });

  readonly framesRefused = new Counter({
    name: 'vigil_stream_frames_refused_total',
    help:
      'Client frames refused on SDK streams, each closing its stream, by reason: too_large (over the ' +
      'message limit), invalid_utf8, protocol (another framing violation), invalid_message (not a valid message)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly storeErrors = new Counter({
    name: 'vigil_store_errors_total',
    help: 'Failed store operations, by operation',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });

  readonly refusedPatterns = new Counter({
    name: 'vigil_stored_patterns_refused_total',
    help: 'Stored matches patterns the RE2 engine refuses (written before it was the engine; their clause never matches), found when an environment loads, by environment',
    labelNames: ['env'] as const,
    registers: [this.registry],
  });

  readonly metricsSummaries = new Counter({
    name: 'vigil_sdk_metric_summaries_total',
    help: 'Cohort summaries received from SDKs and published to the guardian',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'vigil_' });
  }

  /** Counts and times every HTTP request by its route pattern (never the raw URL, to bound label values). */
  instrument(app: FastifyInstance): void {
    // Label children are bound once per (method, route, status): resolving labels hashes them, which
    // would otherwise cost more than serving a 304 to a polling SDK.
    const bound = new Map<
      string,
      { requests: ReturnType<Counter['labels']>; duration: ReturnType<Histogram['labels']> }
    >();
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      const id = `${request.method} ${reply.statusCode} ${route}`;
      let children = bound.get(id);
      if (children === undefined) {
        const method = request.method;
        children = {
          requests: this.httpRequests.labels({ method, route, status: String(reply.statusCode) }),
          duration: this.httpDuration.labels({ method, route }),
        };
        bound.set(id, children);
      }
      children.requests.inc();
      children.duration.observe(reply.elapsedTime / 1000);
    });
  }
}
