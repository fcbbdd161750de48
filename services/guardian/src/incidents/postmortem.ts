// The draft is served by the flag server (`GET /incidents/{id}/postmortem`), so it lives there.
export {
  escapeBlock,
  escapeCell,
  escapeInline,
  incidentDurations,
  type PostmortemOptions,
  renderPostmortem,
  type Span,
} from '@vigil/server';
