export {
  type IncidentIoIntegration,
  type IntegrationConfig,
  type IntegrationConfigInput,
  type IntegrationType,
  integrationConfigSchema,
  type NotifyConfig,
  NotifyConfigError,
  type NotifyConfigInput,
  notifyConfigFromEnv,
  notifyConfigSchema,
  type PagerDutyIntegration,
  type ResolvedIntegration,
  resolveNotifyConfig,
  type SlackIntegration,
  type WebhookIntegration,
} from './config.js';
export {
  eventRank,
  eventStage,
  INCIDENT_EVENT_TYPES,
  type IncidentEvent,
  type IncidentEventType,
  incidentEvent,
  incidentEventSchema,
} from './events.js';
export { DeliveryError, parseRetryAfter } from './http.js';
export {
  createIncidentIoNotifier,
  type IncidentIoCreate,
  type IncidentIoEdit,
  incidentIoCreateBody,
  incidentIoEditBody,
  incidentIoIdempotencyKey,
} from './incident-io.js';
export {
  createNotifier,
  createNotifiers,
  type DeliveryContext,
  type Notifier,
  type NotifierOptions,
  type SendResult,
} from './notifier.js';
export {
  type Delivery,
  type DeliveryFailure,
  type DeliveryInfo,
  type DeliveryReport,
  type DeliveryRetry,
  deliveryIdOf,
  FAILED_NOT_BEFORE,
  NotificationOutbox,
  type OutboxOptions,
  type OutboxPayload,
  type OutboxStore,
} from './outbox.js';
export {
  createPagerDutyNotifier,
  PAGERDUTY_SEVERITY,
  type PagerDutyEvent,
  pagerDutyDedupKey,
  pagerDutyEvent,
} from './pagerduty.js';
export { createSlackNotifier, escapeMrkdwn, type SlackMessage, slackBlockId, slackMessage } from './slack.js';
export {
  hasDeliveryEntry,
  notificationFailedTimelineEntry,
  notificationTimelineEntry,
  refFromTimeline,
} from './timeline.js';
export {
  createWebhookNotifier,
  signWebhook,
  type VerifyWebhookInput,
  verifyWebhookSignature,
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_HEADERS,
  type WebhookPayload,
  webhookPayload,
  webhookPayloadSchema,
} from './webhook.js';
