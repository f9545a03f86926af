import {
  BatchWriteItemCommand,
  DeleteItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { SOCKET_TTL_S, type SocketRow, socketRowKey, socketsWithoutRow } from './socket-rows.ts';
import {
  allPages,
  type Item,
  isConditionFailure,
  N,
  num,
  S,
  SS,
  storeCall,
  str,
  unlessConditionFails,
} from './store.ts';

type StoreDeps = Pick<Deps, 'db' | 'tables'>;

/** What a membership copies from its socket's row. */
type MemberSocket = Pick<SocketRow, 'connectionId' | 'username' | 'sub' | 'connectedAt' | 'messageKey'>;

export const memberKey = (room: string, connectionId: string): Item => ({
  pk: S(`room#${room}`),
  sk: S(connectionId),
});

/**
 * Writes one membership item: what fan-out reads. On its own only at `$connect` (the
 * socket's `user:` room, beside the row that lists it); a join goes through `joinRoom`.
 */
export async function putMembership(deps: StoreDeps, c: MemberSocket, room: string): Promise<void> {
  const expiresAt = Math.floor(c.connectedAt / 1000) + SOCKET_TTL_S;
  await storeCall(
    'join',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.connections,
          // `memberName`, not `username`: the byUser index must hold socket rows only.
          Item: {
            ...memberKey(room, c.connectionId),
            memberName: S(c.username),
            memberSub: S(c.sub),
            expiresAt: N(expiresAt),
            // A copy of the socket's key, so fan-out can encrypt for it from the room's Query alone.
            ...(c.messageKey ? { messageKey: S(c.messageKey) } : {}),
          },
        }),
      ),
    deps.db,
  );
}

/**
 * Adds a socket to a room: the membership item (what fan-out reads), then the room on
 * the socket's row (what $disconnect reads), on condition that the row still exists and,
 * with `maxRooms`, that its room count is under the cap (so joins racing on one socket cannot
 * pass it together). In that order, a socket forgotten meanwhile either had the room on its
 * row (and forgetting it deletes the membership) or fails the condition, and then the
 * membership just written is deleted here. Resolves `gone` when the socket's row is gone and
 * `full` when the cap is reached.
 */
export async function joinRoom(
  deps: StoreDeps,
  c: MemberSocket,
  room: string,
  options: { maxRooms?: number; recheck?: () => Promise<boolean> } = {},
): Promise<'joined' | 'gone' | 'full' | 'refused'> {
  await putMembership(deps, c, room);
  // `recheck` (a grant read again) runs once the membership is stored, beside the row's
  // update: a revocation that the recheck does not see has to find the membership.
  const recheck = options.recheck?.();
  // Settled here too, so a failing row update never leaves it unhandled.
  recheck?.catch(() => {});
  try {
    await addRoomToRow(deps, c.connectionId, room, options.maxRooms);
  } catch (err) {
    return await undoJoin(deps, c.connectionId, room, options.maxRooms !== undefined, err);
  }
  if (recheck && !(await recheckHolds(deps, c.connectionId, room, recheck))) return 'refused';
  return 'joined';
}

/** The room on the socket's row, if the row still exists and, with `maxRooms`, is under the cap. */
async function addRoomToRow(
  deps: StoreDeps,
  connectionId: string,
  room: string,
  maxRooms: number | undefined,
): Promise<void> {
  const capped = maxRooms !== undefined;
  await storeCall(
    'join',
    (db) =>
      db.send(
        new UpdateItemCommand({
          TableName: deps.tables.connections,
          Key: socketRowKey(connectionId),
          UpdateExpression: 'ADD rooms :r',
          ConditionExpression: capped
            ? 'attribute_exists(pk) AND (attribute_not_exists(rooms) OR size(rooms) < :max OR contains(rooms, :room))'
            : 'attribute_exists(pk)',
          ExpressionAttributeValues: {
            ':r': SS([room]),
            ...(capped ? { ':max': N(maxRooms ?? 0), ':room': S(room) } : {}),
          },
        }),
      ),
    deps.db,
  );
}

/**
 * After the row refused the room (gone or full: the condition) or the store failed: either
 * way the membership must not stay half-joined. Rethrows what is not the condition.
 */
async function undoJoin(
  deps: StoreDeps,
  connectionId: string,
  room: string,
  capped: boolean,
  err: unknown,
): Promise<'gone' | 'full'> {
  await deleteMembership(deps, room, connectionId).catch(() => {});
  if (!isConditionFailure(err)) throw err;
  if (!capped) return 'gone';
  // Only on a refused capped join: a consistent read tells a full socket from a gone one.
  return (await socketsWithoutRow(deps, [connectionId])).length > 0 ? 'gone' : 'full';
}

/** Whether the recheck allowed the join; refused, or failed, the socket leaves the room again (fail closed). */
async function recheckHolds(
  deps: StoreDeps,
  connectionId: string,
  room: string,
  recheck: Promise<boolean>,
): Promise<boolean> {
  let allowed = false;
  try {
    allowed = await recheck;
  } finally {
    if (!allowed) await leaveRoom(deps, connectionId, room);
  }
  return allowed;
}

/** Takes a socket out of a room: its membership, and the room from its row if the row still exists. */
export async function leaveRoom(deps: StoreDeps, connectionId: string, room: string): Promise<void> {
  await Promise.all([
    deleteMembership(deps, room, connectionId),
    unlessConditionFails(
      storeCall(
        'leave',
        (db) =>
          db.send(
            new UpdateItemCommand({
              TableName: deps.tables.connections,
              Key: socketRowKey(connectionId),
              UpdateExpression: 'DELETE rooms :r',
              ConditionExpression: 'attribute_exists(pk)',
              ExpressionAttributeValues: { ':r': SS([room]) },
            }),
          ),
        deps.db,
      ),
    ),
  ]);
}

export async function deleteMembership(deps: StoreDeps, room: string, connectionId: string): Promise<void> {
  await storeCall(
    'delete membership',
    (db) =>
      db.send(
        new DeleteItemCommand({ TableName: deps.tables.connections, Key: memberKey(room, connectionId) }),
      ),
    deps.db,
  );
}

/** Deletes a socket's memberships of these rooms (25 per BatchWriteItem, retried while unprocessed). */
export async function deleteMemberships(
  deps: StoreDeps,
  connectionId: string,
  rooms: readonly string[],
): Promise<void> {
  let requests: WriteRequest[] = rooms.map((r) => ({ DeleteRequest: { Key: memberKey(r, connectionId) } }));
  for (let attempt = 0; requests.length > 0 && attempt < 5; attempt++) {
    const chunks: WriteRequest[][] = [];
    for (let i = 0; i < requests.length; i += 25) chunks.push(requests.slice(i, i + 25));
    const outs = await Promise.all(
      chunks.map((chunk) =>
        storeCall(
          'delete connection',
          (db) => db.send(new BatchWriteItemCommand({ RequestItems: { [deps.tables.connections]: chunk } })),
          deps.db,
        ),
      ),
    );
    requests = outs.flatMap((o) => o.UnprocessedItems?.[deps.tables.connections] ?? []);
  }
}

/**
 * Membership items whose socket row no longer exists (for the sweeper). With `youngerThanMs`,
 * memberships of sockets connected that recently are left out: `$connect` writes a socket's
 * `user:` membership beside its row, so for a moment the one may be stored without the other.
 */
export async function orphanMemberships(
  deps: StoreDeps,
  live: ReadonlySet<string>,
  options: { nowMs?: number; youngerThanMs?: number } = {},
): Promise<{ room: string; connectionId: string }[]> {
  const youngest =
    options.nowMs !== undefined && options.youngerThanMs !== undefined
      ? options.nowMs - options.youngerThanMs
      : Number.POSITIVE_INFINITY;
  const orphans = await allPages(
    (start) =>
      storeCall(
        'scan memberships',
        (db) =>
          db.send(
            new ScanCommand({
              TableName: deps.tables.connections,
              FilterExpression: 'begins_with(pk, :room)',
              ExpressionAttributeValues: { ':room': S('room#') },
              ProjectionExpression: 'pk, sk, expiresAt',
              ExclusiveStartKey: start,
            }),
          ),
        deps.db,
      ),
    {
      keep: (i) => {
        // A membership expires SOCKET_TTL_S after its socket's connectedAt.
        const connectedAtMs = ((num(i, 'expiresAt') ?? 0) - SOCKET_TTL_S) * 1000;
        return connectedAtMs <= youngest && !live.has(str(i, 'sk') ?? '');
      },
    },
  );
  return orphans.map((i) => ({ room: (str(i, 'pk') ?? '').slice(5), connectionId: str(i, 'sk') ?? '' }));
}
