import { type DestinationStream, type Logger, pino } from 'pino';

/** Log paths that can hold a secret: auth headers, the key subprotocol, token secrets. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["sec-websocket-protocol"]',
  'req.headers.cookie',
  'req.url',
  'headers.authorization',
  'secret',
  '*.secret',
  'adminToken',
  '*.adminToken',
];

/** `?key=vgl_…` in a URL, the browsers' way of passing an SDK key. */
const KEY_IN_QUERY = /([?&]key=)[^&#]*/gi;

/** A URL with its `key` query parameter hidden. */
export function redactUrl(url: string): string {
  return url.replace(KEY_IN_QUERY, '$1[REDACTED]');
}

/**
 * The server's pino logger: JSON, with tokens and SDK keys redacted wherever Fastify or our code could
 * log them (headers, `?key=` in URLs, `secret` fields).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: {
      paths: REDACTED_PATHS,
      censor: (value: unknown, path: string[]) =>
        path.at(-1) === 'url' && typeof value === 'string' ? redactUrl(value) : '[REDACTED]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
