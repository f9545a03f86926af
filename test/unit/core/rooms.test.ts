import { describe, expect, it } from 'vitest';
import { AppError } from '../../../lambdas/core/errors.ts';
import { dmRoom, joinDenial, parseRoom, postDenial, type RoomUser } from '../../../lambdas/core/rooms.ts';

const ann: RoomUser = { username: 'ann', roles: ['user'] };
const herald: RoomUser = { username: 'herald', roles: ['publisher', 'user'] };

describe('parseRoom', () => {
  it.each([
    ['lobby', 'open', []],
    ['a', 'open', []],
    ['user:ann', 'user', ['ann']],
    ['dm:ann+bob', 'dm', ['ann', 'bob']],
    ['private:Team.1', 'private', []],
    ['broadcast:news', 'broadcast', []],
  ])('reads %s as a %s room', (name, kind, users) => {
    expect(parseRoom(name)).toEqual({ name, kind, users });
  });

  it.each([
    ['an unknown kind', 'team:alpha'],
    ['a kind in capitals', 'User:ann'],
    ['an empty kind', ':lobby'],
    ['an empty name', 'private:'],
    ['a name over 64', `broadcast:${'x'.repeat(65)}`],
    ['a space', 'private:a b'],
    ['a second colon', 'broadcast:x:y'],
    ['a username in capitals', 'user:Ann'],
    ['a username too short', 'user:al'],
    ['a Cyrillic a in a username', 'user:\u0430nn'],
    ['a dm of one user', 'dm:ann'],
    ['a dm of three users', 'dm:ann+bob+cyd'],
    ['a dm with itself', 'dm:ann+ann'],
    ['a dm out of order', 'dm:bob+ann'],
    ['not a string', 42],
    ['an empty string', ''],
  ])('refuses %s as invalid_request', (_, name) => {
    expect(() => parseRoom(name)).toThrow(AppError);
    try {
      parseRoom(name);
    } catch (err) {
      expect((err as AppError).code).toBe('invalid_request');
    }
  });

  it('names a dm room the same whatever order its users come in', () => {
    expect(dmRoom('bob', 'ann')).toBe('dm:ann+bob');
    expect(parseRoom(dmRoom('ann', 'bob')).kind).toBe('dm');
  });
});

describe('the rules of each kind', () => {
  it.each([
    ['lobby', ann, undefined, undefined, undefined],
    ['user:ann', ann, undefined, undefined, undefined],
    ['user:bob', ann, undefined, 'other_user', 'other_user'],
    ['dm:ann+bob', ann, undefined, undefined, undefined],
    ['dm:bob+cyd', ann, undefined, 'not_in_dm', 'not_in_dm'],
    ['private:ops', ann, undefined, 'no_grant', 'no_grant'],
    ['private:ops', ann, 'reader', undefined, 'read_only'],
    ['private:ops', ann, 'member', undefined, undefined],
    ['private:ops', herald, undefined, 'no_grant', 'no_grant'],
    ['broadcast:news', ann, undefined, undefined, 'not_publisher'],
    ['broadcast:news', herald, undefined, undefined, undefined],
    ['broadcast:news', { username: 'root', roles: ['admin'] }, undefined, undefined, undefined],
  ] as const)('%s for %o with grant %s: join %s, post %s', (name, user, grant, join, post) => {
    const room = parseRoom(name);
    expect(joinDenial(room, user, grant)).toBe(join);
    expect(postDenial(room, user, grant)).toBe(post);
  });
});
