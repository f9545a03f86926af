import { RealtimeError } from './errors.ts';
import type { ErrorFrame } from './protocol.ts';

/** An error frame as the client's error. */
export function frameError(frame: ErrorFrame): RealtimeError {
  return new RealtimeError(frame.code, frame.message, undefined, frame.retry_after);
}

/** Anything thrown, as a `RealtimeError` (`internal` unless it is one). */
export function asRealtimeError(err: unknown): RealtimeError {
  if (err instanceof RealtimeError) return err;
  return new RealtimeError('internal', err instanceof Error ? err.message : String(err));
}
