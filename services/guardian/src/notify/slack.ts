import { createHash } from 'node:crypto';
import type { SlackIntegration } from './config.js';
import type { IncidentEvent, IncidentEventType } from './events.js';
import { eventPhrase, figureLines, incidentLinks, severityLabel, truncate } from './format.js';
import { postJson } from './http.js';
import type { Notifier, NotifierOptions } from './notifier.js';
import { wantsEvent } from './notifier.js';

// Slack incoming webhooks (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks)
// take `{ text, blocks }`; `text` is the notification fallback. Block Kit limits
// (https://docs.slack.dev/reference/block-kit/blocks): header text ≤ 150 chars (plain_text), section
// text ≤ 3000 and ≤ 10 fields of ≤ 2000, context ≤ 10 elements, button text ≤ 75 and url ≤ 3000,
// block_id and action_id ≤ 255, ≤ 50 blocks. Webhooks have no idempotency key: each event posts one
// message whose header `block_id` is derived from the delivery id, so a duplicate is recognisable.

export interface SlackText {
  type: 'plain_text' | 'mrkdwn';
  text: string;
  emoji?: boolean;
}

export type SlackBlock =
  | { type: 'header'; block_id?: string; text: SlackText }
  | { type: 'section'; block_id?: string; text?: SlackText; fields?: SlackText[] }
  | { type: 'context'; block_id?: string; elements: SlackText[] }
  | {
      type: 'actions';
      block_id?: string;
      elements: {
        type: 'button';
        text: SlackText;
        url: string;
        action_id: string;
        style?: 'primary' | 'danger';
      }[];
    };

export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

const EMOJI: Record<IncidentEventType, string> = {
  opened: ':rotating_light:',
  escalated: ':loudspeaker:',
  acknowledged: ':eyes:',
  resolved: ':white_check_mark:',
};

/**
 * Escapes the three characters Slack's mrkdwn treats as control characters
 * (https://docs.slack.dev/messaging/formatting-message-text#escaping-text): without it, free text such
 * as `<!channel>` pings a channel and `<https://evil|docs>` renders a disguised link.
 */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The header block's `block_id` for a delivery: stable across retries, so duplicates can be spotted. */
export function slackBlockId(deliveryId: string): string {
  return `vigil-${createHash('sha256').update(deliveryId).digest('hex').slice(0, 40)}`;
}

/** The incoming-webhook message for an incident event. */
export function slackMessage(
  event: IncidentEvent,
  deliveryId: string,
  options: NotifierOptions = {},
): SlackMessage {
  const { incident } = event;
  // Free text (the title, who acknowledged or resolved) is escaped wherever it lands in mrkdwn: the
  // top-level `text` and every mrkdwn object. The header is plain_text, which Slack never parses.
  const phrase = eventPhrase(event);
  const headline = `[${severityLabel(incident)}] Incident ${phrase}: ${incident.title}`;
  const field = (label: string, value: string): SlackText => ({
    type: 'mrkdwn',
    text: truncate(`*${label}*\n${escapeMrkdwn(value)}`, 2000),
  });
  const figures = figureLines(incident).map((line) => `• ${escapeMrkdwn(line)}`);
  const blocks: SlackBlock[] = [
    {
      type: 'header',
      block_id: slackBlockId(deliveryId),
      text: { type: 'plain_text', text: truncate(`${EMOJI[event.type]} ${headline}`, 150), emoji: true },
    },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: truncate(escapeMrkdwn(incident.summary) || '(no summary)', 3000) },
      fields: [
        field('Flag', `\`${incident.flag}\` (version ${incident.flagVersion})`),
        field('Environment', `\`${incident.env}\``),
        field('Severity', severityLabel(incident)),
        field('Status', incident.status),
        field('Kill switch', incident.killed ? 'killed by the guardian' : 'not killed'),
        field('Detected', incident.detectedAt),
      ],
    },
  ];
  if (figures.length > 0) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: truncate(`*Cohorts at detection*\n${figures.join('\n')}`, 3000) },
    });
  }
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: truncate(
          `Vigil incident \`${escapeMrkdwn(incident.id)}\` · ${escapeMrkdwn(phrase)} at ${event.at}`,
          2000,
        ),
      },
    ],
  });
  const links = incidentLinks(options.publicUrl, incident);
  if (links) {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          text: { type: 'plain_text', text: 'View incident' },
          url: links.incident,
          action_id: 'vigil-view-incident',
          ...(event.type === 'resolved' ? {} : { style: 'danger' as const }),
        },
        {
          type: 'button',
          text: { type: 'plain_text', text: 'Postmortem draft' },
          url: links.postmortem,
          action_id: 'vigil-postmortem',
        },
      ],
    });
  }
  return {
    text: truncate(escapeMrkdwn(`${headline} (flag ${incident.flag} in ${incident.env})`), 3000),
    blocks,
  };
}

/** Posts one message per incident event to a Slack incoming webhook. */
export function createSlackNotifier(integration: SlackIntegration, options: NotifierOptions = {}): Notifier {
  return {
    name: integration.name,
    type: 'slack',
    wants: (event) => wantsEvent(integration, event),
    key: (_event, deliveryId) => slackBlockId(deliveryId),
    async send(event, context) {
      const body = JSON.stringify(slackMessage(event, context.deliveryId, options));
      const response = await postJson(integration.webhookUrl, body, {
        timeoutMs: integration.timeoutMs,
        now: context.now,
      });
      return { status: response.status };
    },
  };
}
