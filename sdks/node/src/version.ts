/** This package's version, sent in the stream's hello and with metrics. */
export const SDK_VERSION = '0.1.0';

/** The SDK's name on the wire. */
export const SDK_NAME = `@vigil/node@${SDK_VERSION}`;
