import { describe, expect, it } from 'vitest';
import { parseRoom } from '../../../lambdas/core/rooms.ts';
import { dmRoom, isServerFrameType, ROOM_PATTERN, roomKind, userRoom } from '../../../lambdas/core/wire.ts';

describe('ROOM_PATTERN', () => {
  it('is the shape of every kind, built from the name and username parts', () => {
    expect(ROOM_PATTERN.source).toBe(
      String.raw`^(?:(?:user|private|broadcast):)?[A-Za-z0-9_.-]{1,64}$|^dm:[a-z0-9_.-]{3,32}\+[a-z0-9_.-]{3,32}$`,
    );
  });

  const valid = ['lobby', 'a', 'x'.repeat(64), 'user:alice', 'private:ops', 'broadcast:news', 'dm:alice+bob'];
  for (const room of valid) {
    it(`accepts ${room.length > 20 ? `${room.slice(0, 8)}… (${room.length})` : room}, as the server does`, () => {
      expect(ROOM_PATTERN.test(room)).toBe(true);
      expect(parseRoom(room).name).toBe(room);
    });
  }

  const invalid = {
    'an empty name': '',
    'a space': 'not a room!',
    'a 65-character name': 'x'.repeat(65),
    'an unknown kind': 'team:ops',
    'a dm of one user': 'dm:alice',
    'a dm with a capital': 'dm:Alice+bob',
    'a Cyrillic letter': 'lobbу',
    'an empty private name': 'private:',
  };
  for (const [what, room] of Object.entries(invalid)) {
    it(`refuses ${what}, as the server does`, () => {
      expect(ROOM_PATTERN.test(room)).toBe(false);
      expect(() => parseRoom(room)).toThrow();
    });
  }
});

describe('roomKind', () => {
  const cases: [string, ReturnType<typeof roomKind>][] = [
    ['lobby', 'open'],
    ['user:alice', 'user'],
    ['dm:alice+bob', 'dm'],
    ['private:ops', 'private'],
    ['broadcast:news', 'broadcast'],
    ['team:ops', 'open'],
    [':lobby', 'open'],
  ];
  for (const [room, kind] of cases) {
    it(`reads ${room} as ${kind}`, () => expect(roomKind(room)).toBe(kind));
  }
});

describe('dmRoom and userRoom', () => {
  it('names a direct-message room with both usernames sorted, whatever order they come in', () => {
    expect(dmRoom('bob', 'alice')).toBe('dm:alice+bob');
    expect(dmRoom('alice', 'bob')).toBe('dm:alice+bob');
  });

  it('names the room of one user', () => {
    expect(userRoom('alice')).toBe('user:alice');
  });
});

describe('isServerFrameType', () => {
  it('knows every frame the server sends, sealed ones included', () => {
    for (const type of [
      'message',
      'joined',
      'ack',
      'error',
      'closing',
      'removed',
      'access_changed',
      'encrypted',
    ])
      expect(isServerFrameType(type), type).toBe(true);
  });

  it('refuses client frame types and names every object has', () => {
    for (const type of ['join', 'ping', 'refresh_token', 'toString', 'constructor', '__proto__', ''])
      expect(isServerFrameType(type), type).toBe(false);
  });
});
