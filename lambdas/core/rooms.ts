import { AppError } from './errors.ts';
import { type Access, ROOM_NAME_PATTERN, type RoomKind, USERNAME_PATTERN } from './wire.ts';

export { dmRoom, userRoom } from './wire.ts';
export type { Access, RoomKind };

/**
 * Room kinds and who may do what in each. A room is named `[kind:]name`; the kind alone
 * decides the rule, so a name never grants anything by looking like another kind.
 *
 * | room               | join                       | post                                   |
 * |--------------------|----------------------------|----------------------------------------|
 * | `name`             | any user                   | its members                            |
 * | `user:<username>`  | that user alone            | that user's sockets (HTTP: publishers) |
 * | `dm:<a>+<b>`       | `a` and `b` alone          | its members                            |
 * | `private:<name>`   | users with a grant         | grants with `access: member`           |
 * | `broadcast:<name>` | any user                   | roles `admin` and `publisher`          |
 */
export interface Room {
  /** The full name, as clients send it and as it is stored. */
  readonly name: string;
  readonly kind: RoomKind;
  /** The users a `user:` or `dm:` room belongs to (one or two, sorted). */
  readonly users: readonly string[];
}

/** Why a room refuses a user; the audit's `reason` of `room.denied`. */
export type RoomDenial =
  | 'not_member'
  | 'other_user'
  | 'not_in_dm'
  | 'no_grant'
  | 'read_only'
  | 'not_publisher';

/** Who asks: a socket's user and roles. */
export interface RoomUser {
  readonly username: string;
  readonly roles: readonly string[];
}

const KINDS = new Set(['user', 'dm', 'private', 'broadcast']);
/** Roles that may post to `broadcast:` rooms and publish over HTTP. */
export const PUBLISHER_ROLES: readonly string[] = ['admin', 'publisher'];

function bad(message: string): AppError {
  return new AppError('invalid_request', message);
}

/**
 * Parses a room name into its kind. Throws `invalid_request` (`bad_request` on a socket,
 * 400 over HTTP) for a malformed name or an unknown kind.
 *
 * @example parseRoom('dm:alice+bob') // { name: 'dm:alice+bob', kind: 'dm', users: ['alice', 'bob'] }
 */
export function parseRoom(value: unknown): Room {
  if (typeof value !== 'string' || value.length === 0 || value.length > 80)
    throw bad('room must be [kind:]name, the name 1-64 of A-Z, a-z, 0-9, _ . -');
  const colon = value.indexOf(':');
  if (colon === -1) {
    if (!ROOM_NAME_PATTERN.test(value))
      throw bad('room must be [kind:]name, the name 1-64 of A-Z, a-z, 0-9, _ . -');
    return { name: value, kind: 'open', users: [] };
  }
  const kind = value.slice(0, colon);
  const rest = value.slice(colon + 1);
  if (!KINDS.has(kind))
    throw bad(
      `unknown room kind ${JSON.stringify(kind.slice(0, 16))}: use user:, dm:, private: or broadcast:`,
    );
  switch (kind) {
    case 'user':
      if (!USERNAME_PATTERN.test(rest))
        throw bad('a user: room is named after a username (3-32 of a-z, 0-9, _ . -)');
      return { name: value, kind: 'user', users: [rest] };
    case 'dm': {
      const parts = rest.split('+');
      const [a, b] = parts;
      if (
        parts.length !== 2 ||
        a === undefined ||
        b === undefined ||
        !USERNAME_PATTERN.test(a) ||
        !USERNAME_PATTERN.test(b)
      )
        throw bad('a dm: room is dm:<a>+<b>, two usernames');
      if (a >= b) throw bad('a dm: room names two different usernames in sorted order');
      return { name: value, kind: 'dm', users: [a, b] };
    }
    default:
      if (!ROOM_NAME_PATTERN.test(rest))
        throw bad(`the name of a ${kind}: room is 1-64 of A-Z, a-z, 0-9, _ . -`);
      return { name: value, kind: kind as 'private' | 'broadcast', users: [] };
  }
}

/** Whether a room's rule depends on a grant row (read with the frame's other rows). */
export function needsGrant(room: Room): boolean {
  return room.kind === 'private';
}

/** Whether a room name (valid or not) is a `private:` room, without throwing. */
export function isPrivateRoomName(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('private:');
}

/** Why `user` may not join (and so read) `room`, or undefined when it may. `grant` matters for `private:` only. */
export function joinDenial(room: Room, user: RoomUser, grant: Access | undefined): RoomDenial | undefined {
  switch (room.kind) {
    case 'open':
    case 'broadcast':
      return undefined;
    case 'user':
      return room.users[0] === user.username ? undefined : 'other_user';
    case 'dm':
      return room.users.includes(user.username) ? undefined : 'not_in_dm';
    case 'private':
      return grant ? undefined : 'no_grant';
  }
}

/**
 * Why `user`, already a member of `room`, may not post to it, or undefined when it may.
 * Membership is checked by the caller; this is the kind's own rule on top.
 */
export function postDenial(room: Room, user: RoomUser, grant: Access | undefined): RoomDenial | undefined {
  switch (room.kind) {
    case 'broadcast':
      return user.roles.some((r) => PUBLISHER_ROLES.includes(r)) ? undefined : 'not_publisher';
    case 'private':
      if (!grant) return 'no_grant';
      return grant === 'member' ? undefined : 'read_only';
    default:
      return joinDenial(room, user, grant);
  }
}

/** The message a refused user reads (never more than the room's own name says). */
export function denialMessage(room: Room, denial: RoomDenial): string {
  switch (denial) {
    case 'not_member':
      return `not a member of ${room.name}`;
    case 'other_user':
      return `${room.name} belongs to another user`;
    case 'not_in_dm':
      return `${room.name} is a direct message between other users`;
    case 'no_grant':
      return `${room.name} needs a grant`;
    case 'read_only':
      return `your grant to ${room.name} is read-only`;
    case 'not_publisher':
      return `only publishers post to ${room.name}`;
  }
}
