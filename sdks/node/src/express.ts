import { performance } from 'node:perf_hooks';
import type { Context } from '@vigil/core';
import type { Request, RequestHandler } from 'express';
import type { VigilClient } from './client.js';
import type { Scope } from './scope.js';

declare global {
  namespace Express {
    interface Request {
      /** This request's flag scope (from `vigilExpress`). */
      flags: Scope;
    }
  }
}

export interface VigilExpressOptions {
  /** The evaluation context of a request; called at the request's first evaluation (after auth middleware). */
  context?: (req: Request) => Context;
}

const NO_CONTEXT: Context = Object.freeze({});

/**
 * Express middleware giving each request `req.flags`, a scope of `client`, and recording the request's
 * outcome against the cohorts it was served when the response finishes: an error when the status is
 * 5xx, or when the connection closed before the response was complete (a crashed or hanging handler);
 * latency from the middleware to the end of the response.
 */
export function vigilExpress(client: VigilClient, options: VigilExpressOptions = {}): RequestHandler {
  const context = options.context;
  return (req, res, next) => {
    const start = performance.now();
    const scope = client.scope(context ? () => context(req) : NO_CONTEXT);
    req.flags = scope;
    const done = () => {
      scope.recordOutcome({
        error: res.statusCode >= 500 || !res.writableFinished,
        latencyMs: performance.now() - start,
      });
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}
