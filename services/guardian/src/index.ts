/**
 * The Vigil guardian: cohort analysis of SDK summaries, the automatic kill switch, incidents with
 * their notifications, and progressive schedules. `createGuardian` runs it over a flag-server store.
 */
export * from './analysis/index.js';
export { type GuardianConfig, type GuardianConfigInput, guardianConfigSchema } from './config.js';
export { FlagCache } from './flag-cache.js';
export {
  COORDINATOR_LOCK,
  createGuardian,
  type Guardian,
  type GuardianOptions,
  type TickReport,
} from './guardian.js';
export {
  buildIncident,
  episodeKey,
  GUARDIAN_ACTOR,
  killReason,
  storedVerdict,
} from './incidents/build.js';
export { dueEvents, escalationLevel, IncidentDesk } from './incidents/desk.js';
export { incidentDurations, type PostmortemOptions, renderPostmortem } from './incidents/postmortem.js';
export { GuardianMetrics } from './metrics.js';
export * from './notify/index.js';
export {
  decideSchedule,
  isMoving,
  type ScheduleDecision,
  ScheduleRunner,
  type ScheduleTransition,
  stepServe,
} from './schedules.js';
export {
  type GuardianSettings,
  GuardianSettingsError,
  loadGuardianSettings,
  PROCESS_ENV_VARS,
} from './settings.js';
