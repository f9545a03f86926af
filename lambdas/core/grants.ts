import { DeleteItemCommand, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { leaveRoom } from './memberships.ts';
import { roomMembers } from './room-members.ts';
import { type Access, parseRoom, type Room } from './rooms.ts';
import { sendToSockets } from './sockets.ts';
import { allPages, batchGet, type Item, type KeyRef, N, num, S, storeCall, str } from './store.ts';
import type { AccessClaims } from './tokens.ts';
import { getUser, normalizeUsername } from './users.ts';

// A grant is one item per (room, user) of a `private:` room. Sockets read it with the
// frame's other rows (one BatchGetItem), and a join reads it once more after its membership
// is stored; a revocation deletes it and then reads the room's memberships strongly
// consistent. Of a join and a revocation that race, one of the two therefore sees the
// other: the join refuses itself, or the revocation finds the socket and removes it.

type StoreDeps = Pick<Deps, 'db' | 'tables'>;

export interface GrantView {
  readonly username: string;
  readonly access: Access;
  /** Epoch milliseconds. */
  readonly grantedAt: number;
  /** Who granted it (a username). */
  readonly by: string;
}

const grantKey = (room: string, username: string): Item => ({ room: S(room), username: S(username) });

/** The key of one user's grant to a room, to read beside other keys in one BatchGetItem. */
export function grantRef(deps: Pick<Deps, 'tables'>, room: string, username: string): KeyRef {
  return { table: deps.tables.grants, key: grantKey(room, username) };
}

/** The access a grant row gives, if any. */
export function accessOf(row: Item | undefined): Access | undefined {
  const access = str(row, 'access');
  return access === 'member' || access === 'reader' ? access : undefined;
}

/** One user's access to a room, read strongly consistent. */
export async function readGrant(
  deps: StoreDeps,
  room: string,
  username: string,
): Promise<Access | undefined> {
  const [row] = await batchGet(deps.db, [grantRef(deps, room, username)], { consistent: true });
  return accessOf(row);
}

function privateRoom(raw: string | undefined): Room {
  const room = parseRoom(raw);
  if (room.kind !== 'private') throw new AppError('invalid_request', 'grants exist for private: rooms only');
  return room;
}

function accessFrom(body: Record<string, unknown>): Access {
  const access = body.access;
  if (access !== 'member' && access !== 'reader')
    throw new AppError('invalid_request', 'access must be "member" or "reader"');
  return access;
}

/**
 * `PUT /admin/rooms/{room}/grants/{username}`: lets a user join a `private:` room (`reader`:
 * join and read, not post). A changed access is told at once to the user's sockets in the
 * room as `access_changed`.
 */
export async function putGrant(
  deps: Deps,
  caller: Pick<AccessClaims, 'username'>,
  rawRoom: string | undefined,
  rawUsername: string | undefined,
  body: Record<string, unknown>,
): Promise<void> {
  const room = privateRoom(rawRoom);
  const access = accessFrom(body);
  const username = normalizeUsername(rawUsername);
  const user = username ? await getUser(deps, username) : undefined;
  if (!user) throw new AppError('not_found', 'no such user');
  const before = await writeGrant(deps, {
    room: room.name,
    username: user.username,
    access,
    by: caller.username,
  });
  deps.audit('info', 'room.granted', {
    username: user.username,
    room: room.name,
    access,
    by: caller.username,
  });
  if (before && before !== access) await tellAccessChanged(deps, room.name, user.username, access);
}

/** Stores the grant (over any earlier one); resolves the access the earlier one gave. */
async function writeGrant(
  deps: Deps,
  grant: { room: string; username: string; access: Access; by: string },
): Promise<Access | undefined> {
  const out = await storeCall(
    'grant',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.grants,
          Item: {
            ...grantKey(grant.room, grant.username),
            access: S(grant.access),
            grantedAt: N(deps.clock.now()),
            by: S(grant.by),
          },
          ReturnValues: 'ALL_OLD',
        }),
      ),
    deps.db,
  );
  return accessOf(out.Attributes);
}

/** `access_changed` to the user's sockets in the room, read strongly consistent. */
async function tellAccessChanged(deps: Deps, room: string, username: string, access: Access): Promise<void> {
  const mine = (await roomMembers(deps, room, { consistent: true })).filter((m) => m.username === username);
  if (mine.length > 0) await sendToSockets(deps, mine, { type: 'access_changed', room, access });
}

/**
 * `DELETE /admin/rooms/{room}/grants/{username}`: the user may no longer join, and each of
 * its sockets in the room leaves it at once (`removed`), the others told `member_left`.
 */
export async function deleteGrant(
  deps: Deps,
  caller: Pick<AccessClaims, 'username'>,
  rawRoom: string | undefined,
  rawUsername: string | undefined,
): Promise<void> {
  const room = privateRoom(rawRoom);
  const username = normalizeUsername(rawUsername);
  if (!username) throw new AppError('not_found', 'no such grant');
  const out = await storeCall(
    'revoke grant',
    (db) =>
      db.send(
        new DeleteItemCommand({
          TableName: deps.tables.grants,
          Key: grantKey(room.name, username),
          ReturnValues: 'ALL_OLD',
        }),
      ),
    deps.db,
  );
  if (!out.Attributes) throw new AppError('not_found', 'no such grant');
  const removed = await removeFromRoom(deps, room.name, username);
  deps.audit('warn', 'room.grant_revoked', {
    username,
    room: room.name,
    by: caller.username,
    count: removed,
  });
}

/**
 * Takes every socket of `username` out of `room`: memberships first (so nothing more is
 * delivered to them), then `removed` to them and `member_left` to the rest. Reads the
 * room strongly consistent, after the grant is gone: a join that missed the revocation
 * has stored its membership by then. Resolves how many sockets left.
 */
export async function removeFromRoom(deps: Deps, room: string, username: string): Promise<number> {
  const members = await roomMembers(deps, room, { consistent: true });
  const mine = members.filter((m) => m.username === username);
  if (mine.length === 0) return 0;
  await Promise.all(mine.map((m) => leaveRoom(deps, m.connectionId, room)));
  const others = members.filter((m) => m.username !== username);
  await Promise.all([
    sendToSockets(deps, mine, { type: 'removed', room, reason: 'access_revoked' }),
    others.length > 0 ? sendToSockets(deps, others, { type: 'member_left', room, username }) : undefined,
  ]);
  return mine.length;
}

/** `GET /admin/rooms/{room}/grants`: every grant of a `private:` room, by username. */
export async function listGrants(deps: StoreDeps, rawRoom: string | undefined): Promise<GrantView[]> {
  const room = privateRoom(rawRoom);
  const grants: GrantView[] = [];
  const rows = await allPages((start) =>
    storeCall(
      'list grants',
      (db) =>
        db.send(
          new QueryCommand({
            TableName: deps.tables.grants,
            KeyConditionExpression: 'room = :r',
            ExpressionAttributeValues: { ':r': S(room.name) },
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        ),
      deps.db,
    ),
  );
  for (const row of rows) {
    const access = accessOf(row);
    if (!access) continue;
    grants.push({
      username: str(row, 'username') ?? '',
      access,
      grantedAt: num(row, 'grantedAt') ?? 0,
      by: str(row, 'by') ?? '',
    });
  }
  return grants;
}
