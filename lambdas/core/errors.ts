import type { HttpErrorCode } from './wire.ts';

/**
 * Every failure the domain can report: the HTTP API's public codes (declared with the wire
 * protocol), and two the edges collapse into them. Edges map each code to a status or an error frame.
 */
export type ErrorCode = HttpErrorCode | 'too_large' | 'unavailable';

/** A domain error with a stable `code`; `message` is safe to show to the client. */
export class AppError extends Error {
  readonly code: ErrorCode;
  /** Seconds until a retry can succeed (for `rate_limited`). */
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, message: string, options: { retryAfterS?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryAfterS = options.retryAfterS;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
