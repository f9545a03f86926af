import { describe, expect, it } from 'vitest';
import { AppError } from '../../../lambdas/core/errors.ts';
import { MAX_HISTORY, parseClientMessage } from '../../../lambdas/core/protocol.ts';

const since = { epoch: 'e1', seq: 3 };

describe('parseClientMessage', () => {
  it.each([
    [
      { type: 'join', room: 'lobby' },
      { type: 'join', room: 'lobby', history: 0 },
    ],
    [
      { type: 'join', room: 'lobby', history: 500, since, id: 4 },
      { type: 'join', room: 'lobby', history: MAX_HISTORY, since, id: 4 },
    ],
    [
      { type: 'leave', room: 'lobby', extra: 1 },
      { type: 'leave', room: 'lobby' },
    ],
    [
      { type: 'presence', room: 'private:team', id: 'p' },
      { type: 'presence', room: 'private:team', id: 'p' },
    ],
    [
      { type: 'message', room: 'lobby', text: 'hi' },
      { type: 'message', room: 'lobby', text: 'hi' },
    ],
    [
      { type: 'message', room: 'lobby', data: { n: 1 }, idempotencyKey: 'k1', id: 9 },
      { type: 'message', room: 'lobby', data: { n: 1 }, idempotencyKey: 'k1', id: 9 },
    ],
    [
      { type: 'refresh_token', token: 't' },
      { type: 'refresh_token', token: 't' },
    ],
    [
      { type: 'whoami', id: 1 },
      { type: 'whoami', id: 1 },
    ],
    [{ type: 'ping', room: 'lobby' }, { type: 'ping' }],
    [
      { type: 'encrypted', jwe: 'a.b.c.d.e', id: 2 },
      { type: 'encrypted', jwe: 'a.b.c.d.e', id: 2 },
    ],
  ])('reads %j', (frame, expected) => {
    expect(parseClientMessage(JSON.stringify(frame))).toStrictEqual(expected);
  });

  it.each([
    ['not JSON', '{', 'the frame is not valid JSON'],
    ['an array', '[]', 'the frame must be a JSON object'],
    ['null', 'null', 'the frame must be a JSON object'],
    ['no type', '{}', 'type is required'],
    ['a type that is not a string', '{"type":1}', 'type is required'],
    ['an unknown type', '{"type":"shout"}', 'unknown message type "shout"'],
    ['an inherited name as type', '{"type":"constructor"}', 'unknown message type "constructor"'],
    ['__proto__ as type', '{"type":"__proto__"}', 'unknown message type "__proto__"'],
    [
      'an id that is an object',
      '{"type":"ping","id":{}}',
      'id must be a string of up to 64 characters or an integer',
    ],
    [
      'a fractional history',
      '{"type":"join","room":"lobby","history":1.5}',
      'history must be a whole number',
    ],
    ['an empty token', '{"type":"refresh_token","token":""}', 'token must be a string'],
    ['an empty jwe', '{"type":"encrypted","jwe":""}', 'jwe must be a compact JWE string'],
    ['a message without content', '{"type":"message","room":"lobby"}', 'a message needs text, data or both'],
  ])('refuses %s', (_, text, message) => {
    expect(() => parseClientMessage(text)).toThrow(AppError);
    expect(() => parseClientMessage(text)).toThrow(
      expect.objectContaining({ code: 'invalid_request', message }),
    );
  });

  it('cuts a long unknown type to 32 characters in its error', () => {
    expect(() => parseClientMessage(JSON.stringify({ type: 'x'.repeat(40) }))).toThrow(
      `unknown message type "${'x'.repeat(32)}"`,
    );
  });
});
