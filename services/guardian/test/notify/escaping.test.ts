import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { incidentSchema } from '@vigil/proto';
import { EmbeddedStore, renderPostmortem } from '@vigil/server';
import MarkdownIt from 'markdown-it';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { incidentEvent } from '../../src/notify/events.js';
import { exampleIncident, iso, lifecycle, T0 } from './fixtures.js';
import { slackMarkup, slackMrkdwnTexts } from './receivers.js';
import { drain, makeOutbox, PUBLIC_URL, startWorld, type World } from './world.js';

// Hostile free text in every field a person (or a token's name) can fill, delivered through the outbox
// to the local receivers, then read the way each service reads it: Slack parses mrkdwn, incident.io
// renders its summary as Markdown, PagerDuty and the webhook carry plain strings in JSON.

const TITLE = '<!channel> checkout & <https://evil.example/login|the runbook> *now*';
const SUMMARY = [
  '<!here> see [the runbook](https://evil.example/phish) or ![pixel](https://evil.example/p.png)',
  '# not a heading',
  '- not a list & <img src=x onerror=alert(1)> <@U024BE7LH> <#C024BE7LR> &lt;b&gt;',
  '<https://evil.example|a disguised link>',
].join('\n');
const ACKED_BY = '<!channel> eve [admin](https://evil.example)';
const RESOLVED_BY = '<https://evil.example|support> & <!subteam^SAZ94GDB8>';

function hostileLifecycle() {
  return lifecycle(exampleIncident({ title: TITLE, summary: SUMMARY }));
}

function hostileEvents() {
  const { opened, acknowledged, resolved } = hostileLifecycle();
  const acked = incidentSchema.parse({ ...acknowledged, acknowledgedBy: ACKED_BY });
  const done = incidentSchema.parse({ ...resolved, acknowledgedBy: ACKED_BY, resolvedBy: RESOLVED_BY });
  return [
    incidentEvent('opened', opened),
    incidentEvent('escalated', opened, { at: iso(T0 + 240_000), level: 2 }),
    incidentEvent('acknowledged', acked),
    incidentEvent('resolved', done),
  ];
}

/** incident.io's renderer stand-in: CommonMark with raw HTML on (the worst case), no bare-URL linking. */
const markdown = new MarkdownIt({ html: true, linkify: false });

/** The tokens a Markdown text renders to, flattened (inline children included). */
function markdownTokens(text: string) {
  return markdown.parse(text, {}).flatMap((t) => [t, ...(t.children ?? [])]);
}

/** The text a reader sees in rendered Markdown (tags dropped, entities decoded). */
function shownText(text: string): string {
  return markdown
    .render(text)
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
}

const MARKUP = ['link_open', 'image', 'html_inline', 'html_block', 'heading_open', 'blockquote_open'];

let world: World;
let dataDir: string;
let store: EmbeddedStore;

beforeEach(async () => {
  world = await startWorld();
  dataDir = await mkdtemp(join(tmpdir(), 'vigil-escaping-'));
  store = new EmbeddedStore({ dataDir });
  await store.start();
});

afterEach(async () => {
  await store.close().catch(() => {});
  await world.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('free text in notifications cannot turn into markup', () => {
  it('Slack: no mention, link or entity from a title, summary or token name; the text still reads as written', async () => {
    const { outbox } = makeOutbox(world, store);
    for (const event of hostileEvents()) await outbox.enqueue(event);
    await drain(outbox, world.clock);
    expect(world.slack.receiver.rejected).toEqual([]);
    const messages = [...world.slack.messages.values()];
    expect(messages).toHaveLength(4);
    const shown: string[] = [];
    for (const message of messages) {
      for (const text of slackMrkdwnTexts(message)) {
        const parsed = slackMarkup(text);
        expect(parsed.controls, text).toEqual([]);
        expect(parsed.entities, text).toEqual([]);
        shown.push(parsed.shown);
      }
      // The header is plain_text, which Slack shows verbatim and never parses.
      const header = message.blocks[0];
      expect(header?.type === 'header' && header.text.type).toBe('plain_text');
    }
    const all = shown.join('\n');
    expect(all).toContain(SUMMARY);
    expect(all).toContain(`Incident acknowledged by ${ACKED_BY}: ${TITLE}`);
    expect(all).toContain(`resolved by ${RESOLVED_BY} at`);
  });

  it('incident.io: the summary renders without links, images, HTML or headings, and shows the text as written', async () => {
    const { outbox } = makeOutbox(world, store);
    for (const event of hostileEvents()) await outbox.enqueue(event);
    await drain(outbox, world.clock);
    expect(world.iio.receiver.rejected).toEqual([]);
    const [incident] = [...world.iio.incidents.values()];
    expect(incident?.edits).toHaveLength(3);
    // opened (the create), then escalated, acknowledged, resolved (the edits).
    const create = world.iio.receiver.attempts.find((a) => a.path === '/v2/incidents')!;
    const summaries = [
      (JSON.parse(create.body) as { summary: string }).summary,
      ...incident!.edits.map((e) => e.incident.summary!),
    ];
    for (const summary of summaries) {
      const tokens = markdownTokens(summary);
      expect(
        tokens.filter((t) => MARKUP.includes(t.type)).map((t) => `${t.type} ${t.content}`),
        summary,
      ).toEqual([]);
      // The one list is Vigil's own: a line per treated cohort.
      expect(tokens.filter((t) => t.type === 'list_item_open')).toHaveLength(1);
      const text = shownText(summary);
      for (const line of SUMMARY.split('\n')) expect(text).toContain(line);
    }
    // The guardian's own code spans still render as code.
    expect(markdown.render(summaries[0]!)).toContain('<code>on</code>');
    expect(shownText(incident!.summary!)).toContain(`Vigil: resolved by ${RESOLVED_BY} at`);
    expect(shownText(summaries[2]!)).toContain(`Vigil: acknowledged by ${ACKED_BY} at`);
    // `name` is plain text in incident.io: it arrives as written.
    expect(incident!.name).toBe(TITLE);
  });

  it('PagerDuty and the webhook carry the text as written (plain strings in JSON, not markup)', async () => {
    const { outbox } = makeOutbox(world, store);
    const events = hostileEvents();
    for (const event of events) await outbox.enqueue(event);
    await drain(outbox, world.clock);
    const alert = [...world.pd.alerts.values()][0]!;
    expect(alert.summaries[0]).toBe(`[SEV1] ${TITLE}`);
    const trigger = JSON.parse(world.pd.receiver.attempts[0]!.body) as {
      payload: { custom_details: { summary: string } };
    };
    expect(trigger.payload.custom_details.summary).toBe(SUMMARY);
    const resolved = [...world.hook.deliveries.values()].find((d) => d.type === 'incident.resolved');
    expect(resolved?.incident).toEqual(events[3]!.incident);
  });

  it('the postmortem draft renders the same hostile values without markup but its own link', () => {
    const { resolved } = hostileLifecycle();
    const incident = incidentSchema.parse({
      ...resolved,
      acknowledgedBy: ACKED_BY,
      resolvedBy: RESOLVED_BY,
      timeline: [
        ...resolved.timeline,
        { at: iso(T0 + 6_000), kind: 'note', message: SUMMARY, actor: ACKED_BY },
      ],
    });
    const draft = renderPostmortem(incident, { now: T0 + 3_000_000, publicUrl: PUBLIC_URL });
    const tokens = markdownTokens(draft);
    const links = tokens.filter((t) => t.type === 'link_open').map((t) => t.attrGet('href'));
    expect(links).toEqual([`${PUBLIC_URL}/api/v1/incidents/inc_01HZX4`]);
    expect(tokens.filter((t) => t.type === 'image' || t.type === 'html_block')).toEqual([]);
    // The one quote is Vigil's own "Draft generated by Vigil" line.
    expect(tokens.filter((t) => t.type === 'blockquote_open')).toHaveLength(1);
    // Only `<br>` (line breaks inside table cells) is raw HTML, and only Vigil's own headings.
    const html = tokens.filter((t) => t.type === 'html_inline').map((t) => t.content);
    expect(new Set(html)).toEqual(new Set(['<br>']));
    const headings = markdown
      .parse(draft, {})
      .filter((t, i, all) => t.type === 'inline' && all[i - 1]?.type === 'heading_open')
      .map((t) => t.content);
    expect(
      headings.every((h) =>
        /^(Postmortem: |Summary|Impact|Timeline|Durations|Root cause|Five whys|Action items)/.test(h),
      ),
    ).toBe(true);
    const text = shownText(draft);
    expect(text).toContain(`Postmortem: ${TITLE}`);
    expect(text).toContain(`by ${RESOLVED_BY}`);
  });
});
