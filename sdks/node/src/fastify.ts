import type { Context } from '@vigil/core';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { VigilClient } from './client.js';
import type { Scope } from './scope.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's flag scope (from `vigilFastify`). */
    flags: Scope;
  }
}

export interface VigilFastifyOptions {
  /** The evaluation context of a request; called at the request's first evaluation (after auth hooks). */
  context?: (request: FastifyRequest) => Context;
}

const NO_CONTEXT: Context = Object.freeze({});
/** Per-request state the plugin keeps beside `request.flags`. */
const THREW = Symbol('vigil.threw');

/**
 * A Fastify plugin giving each request `request.flags`, a scope of `client`, and recording the request's
 * outcome against the cohorts it was served when the response is sent: an error when the status is 5xx,
 * when a handler threw an error that is not a client error (4xx), or when the request was aborted
 * before a response (a hanging handler shows up this way); latency is Fastify's `reply.elapsedTime`.
 * Register it at the root: `app.register(vigilFastify(client, { context: (req) => ({ key: req.user.id }) }))`.
 */
export function vigilFastify(client: VigilClient, options: VigilFastifyOptions = {}): FastifyPluginAsync {
  const context = options.context;
  const plugin: FastifyPluginAsync = async (app) => {
    app.decorateRequest('flags', null as unknown as Scope);
    app.addHook('onRequest', async (request) => {
      request.flags = client.scope(context ? () => context(request) : NO_CONTEXT);
    });
    app.addHook('onError', async (request, _reply, error) => {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (!(typeof status === 'number' && status >= 400 && status < 500)) {
        (request as FastifyRequest & { [THREW]?: boolean })[THREW] = true;
      }
    });
    app.addHook('onResponse', async (request, reply) => {
      const threw = (request as FastifyRequest & { [THREW]?: boolean })[THREW] === true;
      request.flags?.recordOutcome({ error: threw || reply.statusCode >= 500, latencyMs: reply.elapsedTime });
    });
    app.addHook('onRequestAbort', async (request) => {
      request.flags?.recordOutcome({ error: true });
    });
  };
  // Like fastify-plugin: the hooks and decorator apply to the whole application, not an encapsulated child.
  Object.assign(plugin, {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: '@vigil/node',
  });
  return plugin;
}
