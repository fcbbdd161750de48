import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorBody } from '@vigil/proto';
import { zodIssues } from '@vigil/proto';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';
import { ERRORS, type ErrorCode, VigilError } from './errors.js';

/** The code for a framework error's HTTP status (body too large, bad JSON, ...). */
const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'VIGIL_BAD_REQUEST',
  401: 'VIGIL_UNAUTHORIZED',
  403: 'VIGIL_FORBIDDEN',
  404: 'VIGIL_NOT_FOUND',
  413: 'VIGIL_PAYLOAD_TOO_LARGE',
  415: 'VIGIL_UNSUPPORTED_MEDIA_TYPE',
  429: 'VIGIL_RATE_LIMITED',
  503: 'VIGIL_STORE_UNAVAILABLE',
};

/** Any error as a `VigilError`: stores and other layers may reject with their own class carrying a `VIGIL_*` code. */
export function toVigilError(error: unknown): VigilError {
  if (error instanceof VigilError) return error;
  if (error instanceof ZodError) {
    return new VigilError('VIGIL_BAD_REQUEST', 'invalid request', zodIssues(error));
  }
  const e = error as Partial<FastifyError> & { details?: unknown };
  if (typeof e?.code === 'string' && e.code in ERRORS) {
    return new VigilError(e.code as ErrorCode, e.message ?? e.code, e.details, { cause: error });
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    // Fastify's own 4xx messages (bad JSON, empty body, unsupported content type) are safe to show.
    return new VigilError(
      CODE_BY_STATUS[status] ?? 'VIGIL_BAD_REQUEST',
      e.message ?? 'bad request',
      undefined,
      {
        cause: error,
      },
    );
  }
  return new VigilError('VIGIL_INTERNAL', 'internal error', undefined, { cause: error });
}

/** The REST error body for an error. */
export function errorBody(error: VigilError): ErrorBody {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
    },
  };
}

function handle(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const vigil = toVigilError(error);
  // An unreachable store is an outage to report, not a bug to trace.
  if (vigil.code === 'VIGIL_STORE_UNAVAILABLE' || vigil.code === 'VIGIL_WRITE_OUTCOME_UNKNOWN')
    request.log.warn({ code: vigil.code }, vigil.message);
  else if (vigil.statusCode >= 500) request.log.error({ err: error }, vigil.message);
  else request.log.debug({ code: vigil.code }, vigil.message);
  if (vigil.code === 'VIGIL_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="vigil"');
  return reply.code(vigil.statusCode).type('application/json; charset=utf-8').send(errorBody(vigil));
}

/**
 * For Fastify's `frameworkErrors` option: the router's own refusals (a URL that does not decode, an
 * overlong path parameter) happen before any route's error handler, and would otherwise get Fastify's body.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  handle(error, request, reply);
}

/** Errors of Node's HTTP parser that are not simply a malformed request. */
const CONNECTION_ERRORS: Partial<Record<string, ErrorCode>> = {
  HPE_HEADER_OVERFLOW: 'VIGIL_HEADERS_TOO_LARGE',
  ERR_HTTP_REQUEST_TIMEOUT: 'VIGIL_REQUEST_TIMEOUT',
};

/**
 * For Fastify's `clientErrorHandler`: bytes Node's HTTP parser cannot read as a request (a bad request
 * line or header, broken framing, a body cut short) get the same error body as any other refusal, in
 * place of Fastify's own, and the connection is closed.
 */
export function handleClientError(error: ConnectionError, socket: Socket): void {
  const code = (error as { code?: string }).code ?? '';
  if (code === 'ECONNRESET' || socket.destroyed) return;
  const vigil = new VigilError(
    CONNECTION_ERRORS[code] ?? 'VIGIL_BAD_REQUEST',
    `malformed HTTP request (${code})`,
  );
  const body = JSON.stringify(errorBody(vigil));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${vigil.statusCode} ${STATUS_CODES[vigil.statusCode]}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** Answers a request no route matched instead of the 404 (the console's page paths), or returns undefined. */
export type NotFoundFallback = (
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<FastifyReply | undefined>;

/** Installs the one place errors become `{ error: { code, message, details } }`; stacks never leave the process. */
export function setupErrorHandling(app: FastifyInstance, fallback?: NotFoundFallback): void {
  app.setErrorHandler(handle);
  app.setNotFoundHandler(
    async (request, reply) =>
      (await fallback?.(request, reply)) ??
      handle(
        new VigilError('VIGIL_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
        request,
        reply,
      ),
  );
}
