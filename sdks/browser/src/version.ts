/** Sent in `hello` and with metrics, so the server's logs tell SDKs apart. */
export const SDK_NAME = '@vigil/browser/0.1.0';
