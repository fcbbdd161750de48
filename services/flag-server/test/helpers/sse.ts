import { type ClientRequest, request } from 'node:http';

/** One server-sent event as it arrived. */
export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
  at: number;
}

/**
 * A real SSE client over node:http (whose destroy closes the socket at once, as a browser's
 * EventSource.close() does): parses `event:`/`data:` blocks as they arrive, and counts pings.
 */
export class Feed {
  readonly events: SseEvent[] = [];
  pings = 0;
  ended = false;
  private request?: ClientRequest;
  private waiters: (() => void)[] = [];

  static open(
    url: string,
    headers: Record<string, string>,
  ): Promise<{ feed: Feed; response: { status: number; contentType: string } }> {
    const feed = new Feed();
    return new Promise((resolve, reject) => {
      feed.request = request(url, { headers }, (res) => {
        const status = res.statusCode ?? 0;
        resolve({ feed, response: { status, contentType: String(res.headers['content-type']) } });
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            feed.parse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
          }
          feed.notify();
        });
        const done = () => {
          feed.ended = true;
          feed.notify();
        };
        res.on('end', done);
        res.on('close', done);
      });
      feed.request.on('error', reject);
      feed.request.end();
    });
  }

  parse(block: string): void {
    if (block.startsWith(':')) {
      this.pings++;
      return;
    }
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (data) this.events.push({ event, data: JSON.parse(data) as Record<string, unknown>, at: Date.now() });
  }

  of(event: string): SseEvent[] {
    return this.events.filter((e) => e.event === event);
  }

  async until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out; events so far: ${JSON.stringify(this.events).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.request?.destroy();
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
