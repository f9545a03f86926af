import { describe, expect, it } from 'vitest';
import { RealtimeError } from '../../../web/errors.ts';
import { plainWords } from '../../../web/words.ts';

describe('plainWords', () => {
  it.each([
    [new RealtimeError('rate_limited', 'x', undefined, 12), /sending too fast.*Try again in 12 s/],
    [new RealtimeError('rate_limited', 'x', 429, 300), /^Too many attempts\. Try again in 300 s/],
    [new RealtimeError('too_large', 'frames are limited to 8192 bytes'), /too long/],
    [new RealtimeError('forbidden', 'not a member of x'), /not in that room/],
    [new RealtimeError('forbidden', 'blocked', 403), /blocked/],
    [new RealtimeError('invalid_credentials', 'x', 401), /^Wrong username or password\.$/],
    [new RealtimeError('conflict', 'x', 409), /already taken/],
    [
      new RealtimeError('invalid_request', 'password must be 12-256 characters', 400),
      /password must be 12-256/,
    ],
    [new RealtimeError('not_connected', 'x'), /reconnecting/],
    [new RealtimeError('network', 'x'), /Cannot reach the server/],
    [new RealtimeError('internal', 'stack trace here'), /^Something went wrong on the server/],
    [new Error('boom'), /^Something went wrong\. Try again\.$/],
  ])('says %s in plain words', (err, expected) => {
    expect(plainWords(err)).toMatch(expected);
  });

  it('never shows an internal error message', () => {
    expect(plainWords(new RealtimeError('internal', 'TypeError at handler.js:12'))).not.toContain(
      'TypeError',
    );
  });
});
