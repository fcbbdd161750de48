import type { AddressInfo } from 'node:net';
import type { VigilClient } from '@vigil/node';
import { vigilFastify } from '@vigil/node/fastify';
import Fastify, { type FastifyInstance } from 'fastify';

/** Share of requests either checkout fails on a good day (a flaky payment provider). */
export const BASELINE_ERROR_RATE = 0.002;

/** The faults the demo can inject into the new checkout, while the app runs. */
export interface Faults {
  /** Share of checkout-v2 requests whose payment call fails (502). */
  v2ErrorRate: number;
}

/** The demo's application: a checkout service that picks its implementation with a Vigil flag. */
export interface CheckoutApp {
  url: string;
  faults: Faults;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A small Fastify service on the Node SDK: `GET /checkout?user=<id>` runs the new checkout when `flag`
 * is on for that user and the old one otherwise, and answers which one ran in `x-checkout`. The
 * `vigilFastify` plugin records every request's outcome against the cohort it was served, which is
 * what the guardian watches.
 */
export async function startCheckoutApp(options: {
  client: VigilClient;
  flag: string;
  port?: number;
  host?: string;
}): Promise<CheckoutApp> {
  const { client, flag } = options;
  const faults: Faults = { v2ErrorRate: BASELINE_ERROR_RATE };
  // The simulated users keep connections alive; closing the app should not wait out Fastify's 72 s
  // keep-alive timeout for them.
  const app: FastifyInstance = Fastify({ logger: false, forceCloseConnections: true });
  await app.register(
    vigilFastify(client, {
      context: (request) => ({ key: String((request.query as { user?: string }).user ?? 'anonymous') }),
    }),
  );
  app.get('/checkout', async (request, reply) => {
    const v2 = request.flags.isEnabled(flag, false);
    reply.header('x-checkout', v2 ? 'v2' : 'v1');
    // The new checkout is a little faster: one payment call instead of two.
    await sleep(v2 ? 8 + Math.random() * 8 : 12 + Math.random() * 10);
    if (Math.random() < (v2 ? faults.v2ErrorRate : BASELINE_ERROR_RATE)) {
      return reply.code(502).send({ error: 'payment provider did not answer' });
    }
    return { ok: true, checkout: v2 ? 'v2' : 'v1' };
  });
  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
  const address = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    faults,
    close: () => app.close(),
  };
}
