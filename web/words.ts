import { RealtimeError } from './errors.ts';

/** The server's and the client's error codes, in plain words. */
export function plainWords(err: unknown): string {
  if (!(err instanceof RealtimeError)) return 'Something went wrong. Try again.';
  const wait = err.retryAfterS ? ` Try again in ${err.retryAfterS} s.` : ' Try again in a moment.';
  switch (err.code) {
    case 'rate_limited':
      return err.status
        ? `Too many attempts.${wait}`
        : `You are sending too fast: the server allows only a few messages a minute.${wait}`;
    case 'too_large':
      return 'That message is too long to send. Shorten it and try again.';
    case 'forbidden':
      return err.status
        ? 'This account is blocked or not allowed here.'
        : 'You are not in that room. Join it first.';
    case 'invalid_credentials':
      return 'Wrong username or password.';
    case 'conflict':
      return 'That username is already taken. Pick another one.';
    case 'invalid_request':
    case 'bad_request':
      return `The server did not accept that: ${err.message}.`;
    case 'invalid_token':
    case 'token_expired':
      return 'Your session is no longer valid. Log in again.';
    case 'not_connected':
    case 'disconnected':
      return 'Not connected right now; reconnecting. Try again in a moment.';
    case 'network':
      return 'Cannot reach the server. Check your connection.';
    case 'timeout':
      return 'The server did not answer in time. Try again.';
    default:
      return 'Something went wrong on the server. Try again.';
  }
}
