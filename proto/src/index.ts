export * from './api.js';
export * from './context.js';
export * from './flag.js';
export * from './incident.js';
export * from './keys.js';
export * from './metrics.js';
export * from './validate.js';
export * from './wire.js';
