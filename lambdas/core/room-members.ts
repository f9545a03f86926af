import { QueryCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { inRange, type KeyRange } from './key-ranges.ts';
import { memberKey } from './memberships.ts';
import { queryLive } from './socket-rows.ts';
import { allPages, batchGetMany, type Item, isLive, S, storeCall, str } from './store.ts';

/** A room's member as fan-out reads it: the socket and what it needs to deliver to it. */
export interface Member {
  readonly connectionId: string;
  readonly username: string;
  readonly messageKey?: string | undefined;
}

type StoreDeps = Pick<Deps, 'db' | 'tables'>;

const MEMBER_PROJECTION = 'sk, memberName, messageKey, expiresAt';

/** A membership item as fan-out reads it (see `putMembership`). */
const memberFrom = (i: Item): Member => ({
  connectionId: str(i, 'sk') ?? '',
  username: str(i, 'memberName') ?? '',
  messageKey: str(i, 'messageKey'),
});

/**
 * The members of a room: one Query on the room's partition, never a Scan. `consistent`
 * for a reader that must see every membership written before it asked (a revoked grant).
 */
export async function roomMembers(
  deps: StoreDeps,
  room: string,
  options: { consistent?: boolean } = {},
): Promise<Member[]> {
  const items = await queryLive(deps, {
    ...(options.consistent ? { ConsistentRead: true } : {}),
    KeyConditionExpression: 'pk = :p',
    ExpressionAttributeValues: { ':p': S(`room#${room}`) },
    ProjectionExpression: MEMBER_PROJECTION,
  });
  return items.map(memberFrom);
}

/** Some of a room's members: those of one key range, at most `limit` of them, and whether more remain. */
export interface MembersPage {
  readonly members: Member[];
  /** The range holds more members than `limit`. */
  readonly more: boolean;
}

/** The key condition of one range of a room's partition (`sk BETWEEN`, see key-ranges.ts). */
function rangeCondition(room: string, range: KeyRange): { condition: string; values: Item } {
  const values: Item = { ':p': S(`room#${room}`) };
  let condition = 'pk = :p';
  if (range.from !== undefined && range.to !== undefined) {
    // BETWEEN includes `to`, which belongs to the next range: the reader drops it.
    condition += ' AND sk BETWEEN :from AND :to';
    values[':from'] = S(range.from);
    values[':to'] = S(range.to);
  } else if (range.from !== undefined) {
    condition += ' AND sk >= :from';
    values[':from'] = S(range.from);
  } else if (range.to !== undefined) {
    condition += ' AND sk < :to';
    values[':to'] = S(range.to);
  }
  return { condition, values };
}

/**
 * The members of one range of a room's partition (`sk BETWEEN`, see key-ranges.ts), at most
 * `limit` (or all with `Infinity`): the first page tells a small room from a big one without
 * reading the big one, and each fan-out worker reads its own range only.
 */
export async function roomMembersPage(
  deps: StoreDeps,
  room: string,
  range: KeyRange,
  limit: number,
): Promise<MembersPage> {
  const { condition, values } = rangeCondition(room, range);
  const now = Math.floor(Date.now() / 1000);
  const items = await allPages(
    (start, collected) =>
      storeCall(
        'query',
        (db) =>
          db.send(
            new QueryCommand({
              TableName: deps.tables.connections,
              KeyConditionExpression: condition,
              ExpressionAttributeValues: values,
              ProjectionExpression: MEMBER_PROJECTION,
              ExclusiveStartKey: start,
              ...(Number.isFinite(limit) ? { Limit: limit + 1 - collected } : {}),
            }),
          ),
        deps.db,
      ),
    {
      keep: (item) => isLive(item, now) && inRange(str(item, 'sk') ?? '', range),
      // One past `limit` tells that more remain.
      enough: (collected) => collected > limit,
    },
  );
  const more = items.length > limit;
  return { members: (more ? items.slice(0, limit) : items).map(memberFrom), more };
}

/** The memberships of these sockets in a room that still exist (a consistent BatchGetItem, 100 keys a call). */
export async function roomMembersAmong(
  deps: StoreDeps,
  room: string,
  connectionIds: readonly string[],
): Promise<Member[]> {
  const ids = [...new Set(connectionIds)];
  const now = Math.floor(Date.now() / 1000);
  const rows = await batchGetMany(
    deps.db,
    deps.tables.connections,
    ids.map((id) => memberKey(room, id)),
    { consistent: true },
  );
  return rows.filter((row) => isLive(row, now)).map(memberFrom);
}
