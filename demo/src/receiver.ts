import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhookSignature, WEBHOOK_HEADERS, webhookPayloadSchema } from '@vigil/guardian';

/** One notification as the demo's receiver saw it, deduplicated on the integration's own key. */
export interface ReceivedNotification {
  channel: 'webhook' | 'slack';
  /** Epoch ms of the first delivery. */
  at: number;
  /** `incident.opened`, … for the webhook; Slack's fallback text for Slack. */
  title: string;
  /** The key a real receiver dedups on: `X-Vigil-Delivery`, or Slack's header `block_id`. */
  key: string;
  /** Deliveries of this key, retries included. */
  deliveries: number;
}

/** Largest body the receiver reads; Vigil's notifications are a few KB. */
const MAX_BODY = 1024 * 1024;

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/**
 * A local stand-in for the places Vigil notifies: `POST /webhook` checks the HMAC signature and the
 * payload as a receiver of Vigil's signed webhook should, `POST /slack` takes what Slack's incoming
 * webhooks take. Each dedups on the key its real counterpart would, so retries show as deliveries.
 */
export class NotificationReceiver {
  readonly notifications: ReceivedNotification[] = [];
  /** Requests refused (bad signature or payload), with why. */
  readonly refused: string[] = [];
  private server: Server | undefined;
  private url = '';

  constructor(
    private readonly secret: string,
    private readonly onNotification: (notification: ReceivedNotification) => void = () => {},
  ) {}

  /** Listens on `host:port` (0 for a free port) and resolves with its base URL. */
  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((request, response) => {
      this.handle(request).then(
        ([status, body]) => response.writeHead(status, { 'content-type': 'text/plain' }).end(body),
        () => response.writeHead(400).end('bad request'),
      );
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    this.url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`;
    return this.url;
  }

  /** Where the guardian should send its signed webhook. */
  get webhookUrl(): string {
    return `${this.url}/webhook`;
  }

  /** Where the guardian should send its Slack messages. */
  get slackUrl(): string {
    return `${this.url}/slack`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage): Promise<[number, string]> {
    if (request.method !== 'POST') return [405, 'method not allowed'];
    const body = await readBody(request);
    if (request.url === '/webhook') return this.webhook(request, body);
    if (request.url === '/slack') return this.slack(body);
    return [404, 'not found'];
  }

  private webhook(request: IncomingMessage, body: string): [number, string] {
    const header = (name: string) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const signed = verifyWebhookSignature({
      secret: this.secret,
      body,
      timestamp: header(WEBHOOK_HEADERS.timestamp),
      signature: header(WEBHOOK_HEADERS.signature),
    });
    if (!signed) return this.refuse(401, 'webhook: bad or missing signature');
    const payload = webhookPayloadSchema.safeParse(JSON.parse(body));
    if (!payload.success) return this.refuse(400, `webhook: ${payload.error.issues[0]?.message}`);
    const key = header(WEBHOOK_HEADERS.delivery) ?? payload.data.id;
    this.record('webhook', key, payload.data.type);
    return [200, 'ok'];
  }

  private slack(body: string): [number, string] {
    // What Slack's incoming webhooks refuse: no fallback `text`, or `blocks` that are not a list.
    const message = JSON.parse(body) as { text?: unknown; blocks?: { block_id?: unknown }[] };
    if (typeof message.text !== 'string' || message.text === '' || !Array.isArray(message.blocks))
      return this.refuse(400, 'slack: invalid_payload (needs text and blocks)');
    const blockId = message.blocks[0]?.block_id;
    this.record('slack', typeof blockId === 'string' ? blockId : message.text, message.text);
    return [200, 'ok'];
  }

  private refuse(status: number, why: string): [number, string] {
    this.refused.push(why);
    return [status, why];
  }

  private record(channel: ReceivedNotification['channel'], key: string, title: string): void {
    const seen = this.notifications.find((n) => n.channel === channel && n.key === key);
    if (seen) {
      seen.deliveries++;
      return;
    }
    const notification = { channel, at: Date.now(), title, key, deliveries: 1 };
    this.notifications.push(notification);
    this.onNotification(notification);
  }
}
