/**
 * The HTTP benchmark's floor (bench/http.ts): a bare node:http server in its own process answering
 * `GET /v1/flags` with a fixed body of the snapshot's size, or 304 on `If-None-Match` — no framework,
 * no auth, no metrics, no logging. What autocannon measures against it, the machine itself costs.
 *
 *   node http-floor.ts <body bytes>      (prints the URL, then serves until killed)
 */
import { createServer } from 'node:http';

const body = Buffer.alloc(Number(process.argv[2] ?? 25_000), 'x');
const headers = {
  'content-type': 'application/json; charset=utf-8',
  etag: '"1"',
  'cache-control': 'no-cache',
};

const server = createServer((request, response) => {
  if (request.headers['if-none-match'] === '"1"') {
    response.writeHead(304, headers).end();
    return;
  }
  response.writeHead(200, { ...headers, 'content-length': body.length }).end(body);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
