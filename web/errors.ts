import type { FrameErrorCode, HttpErrorCode } from '../lambdas/core/wire.ts';

/** Error codes of the HTTP API (declared with the wire protocol). */
export type { HttpErrorCode };

/** Errors the client itself raises. */
export type LocalErrorCode =
  /** fetch failed: no network, server down, CORS refused. */
  | 'network'
  /** A request was made while the socket was not open. */
  | 'not_connected'
  /** The socket closed before the reply came. */
  | 'disconnected'
  /** No reply within `requestTimeoutMs`. */
  | 'timeout'
  /** An operation needs a logged-in session and there is none. */
  | 'not_logged_in'
  /** An encrypted frame could not be read. */
  | 'decryption_failed';

export type RealtimeErrorCode = HttpErrorCode | FrameErrorCode | LocalErrorCode;

/**
 * The one error type of the client: `code` is stable, switch on it.
 *
 * @example
 * try { await client.send('lobby', text) } catch (err) {
 *   if (err instanceof RealtimeError && err.code === 'rate_limited') wait(err.retryAfterS)
 * }
 */
export class RealtimeError extends Error {
  override readonly name = 'RealtimeError';
  constructor(
    readonly code: RealtimeErrorCode,
    message: string,
    /** The HTTP status, for HTTP API errors. */
    readonly status?: number,
    /** Seconds to wait, for `rate_limited`. */
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

export function isRealtimeError(err: unknown, code?: RealtimeErrorCode): err is RealtimeError {
  return err instanceof RealtimeError && (code === undefined || err.code === code);
}
