import {
  BatchWriteItemCommand,
  DeleteItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { inRange, type KeyRange } from './key-ranges.ts';
import {
  batchGet,
  type Item,
  isConditionFailure,
  isLive,
  N,
  num,
  S,
  SS,
  storeCall,
  str,
  strs,
} from './store.ts';

/** API Gateway closes every socket after 2 hours; rows outlive that a little, then TTL removes what $disconnect missed. */
export const CONNECTION_TTL_S = 2 * 3600 + 15 * 60;

/** One open socket, as stored at `$connect` and kept current by `refresh_token`. */
export interface Connection {
  readonly connectionId: string;
  readonly sub: string;
  readonly username: string;
  readonly roles: readonly string[];
  readonly jti: string;
  readonly sid: string;
  /** The live token expiry (epoch s); the authorizer context is frozen, this is not. */
  readonly exp: number;
  /** `iat` of the live token, for per-user "revoked before" marks. */
  readonly iat: number;
  readonly ip: string;
  readonly connectedAt: number;
  readonly rooms: readonly string[];
  /** The session's JWE key: frames to this socket are encrypted with it. */
  readonly messageKey?: string | undefined;
}

export interface Member {
  readonly connectionId: string;
  readonly username: string;
  readonly messageKey?: string | undefined;
}

type Store = Pick<Deps, 'db' | 'tables'>;

export const connectionKey = (connectionId: string): Item => ({
  pk: S(`conn#${connectionId}`),
  sk: S('conn'),
});
const memberKey = (room: string, connectionId: string): Item => ({
  pk: S(`room#${room}`),
  sk: S(connectionId),
});

export function connectionFrom(item: Item): Connection {
  return {
    connectionId: str(item, 'connectionId') ?? '',
    sub: str(item, 'sub') ?? '',
    username: str(item, 'username') ?? '',
    roles: strs(item, 'roles').sort(),
    jti: str(item, 'jti') ?? '',
    sid: str(item, 'sid') ?? '',
    exp: num(item, 'exp') ?? 0,
    iat: num(item, 'iat') ?? 0,
    ip: str(item, 'ip') ?? '',
    connectedAt: num(item, 'connectedAt') ?? 0,
    rooms: strs(item, 'rooms').sort(),
    messageKey: str(item, 'messageKey'),
  };
}

export async function putConnection(deps: Store, c: Connection): Promise<void> {
  await storeCall(
    'put connection',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.connections,
          Item: {
            ...connectionKey(c.connectionId),
            connectionId: S(c.connectionId),
            sub: S(c.sub),
            username: S(c.username),
            roles: SS(c.roles.length > 0 ? c.roles : ['user']),
            jti: S(c.jti),
            sid: S(c.sid),
            exp: N(c.exp),
            iat: N(c.iat),
            ip: S(c.ip),
            connectedAt: N(c.connectedAt),
            expiresAt: N(Math.floor(c.connectedAt / 1000) + CONNECTION_TTL_S),
            ...(c.messageKey ? { messageKey: S(c.messageKey) } : {}),
            ...(c.rooms.length > 0 ? { rooms: SS(c.rooms) } : {}),
          },
        }),
      ),
    deps.db,
  );
}

/**
 * Writes one membership item: what fan-out reads. On its own only at `$connect` (the
 * socket's `user:` room, beside the row that lists it); a join goes through `joinRoom`.
 */
export async function putMembership(
  deps: Store,
  c: Pick<Connection, 'connectionId' | 'username' | 'sub' | 'connectedAt' | 'messageKey'>,
  room: string,
): Promise<void> {
  const expiresAt = Math.floor(c.connectedAt / 1000) + CONNECTION_TTL_S;
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

async function queryAll(
  deps: Store,
  input: Omit<ConstructorParameters<typeof QueryCommand>[0], 'TableName'>,
): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const out = await storeCall(
      'query',
      (db) =>
        db.send(new QueryCommand({ ...input, TableName: deps.tables.connections, ExclusiveStartKey: start })),
      deps.db,
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return live(items);
}

/**
 * Rows past their TTL: DynamoDB deletes them late and dynalite never does. Socket and
 * membership TTLs count from `connectedAt`, API Gateway's clock, so wall time decides.
 */
function live(items: Item[]): Item[] {
  const now = Math.floor(Date.now() / 1000);
  return items.filter((i) => isLive(i, now));
}

/** The sockets of one user (GSI `byUser`). */
export async function connectionsOfUser(deps: Store, username: string): Promise<Connection[]> {
  const items = await queryAll(deps, {
    IndexName: 'byUser',
    KeyConditionExpression: 'username = :u',
    ExpressionAttributeValues: { ':u': S(username) },
  });
  return items.map(connectionFrom);
}

/** The socket ids opened with tokens of one refresh family (GSI `bySid`). */
export async function connectionIdsOfSession(deps: Store, sid: string): Promise<string[]> {
  const items = await queryAll(deps, {
    IndexName: 'bySid',
    KeyConditionExpression: 'sid = :s',
    ExpressionAttributeValues: { ':s': S(sid) },
  });
  return items.flatMap((i) => {
    const pk = str(i, 'pk');
    return pk?.startsWith('conn#') ? [pk.slice(5)] : [];
  });
}

/** A membership item as fan-out reads it (see `putMembership`). */
const memberFrom = (i: Item): Member => ({
  connectionId: str(i, 'sk') ?? '',
  username: str(i, 'memberName') ?? '',
  messageKey: str(i, 'messageKey'),
});

/**
 * The members of a room: one Query on the room's partition, never a Scan. `consistent`
 * for a caller that must see every membership written before it asked (a revoked grant).
 */
export async function roomMembers(
  deps: Store,
  room: string,
  options: { consistent?: boolean } = {},
): Promise<Member[]> {
  const items = await queryAll(deps, {
    ...(options.consistent ? { ConsistentRead: true } : {}),
    KeyConditionExpression: 'pk = :p',
    ExpressionAttributeValues: { ':p': S(`room#${room}`) },
    ProjectionExpression: 'sk, memberName, messageKey, expiresAt',
  });
  return items.map(memberFrom);
}

/** Some of a room's members: those of one key range, at most `limit` of them, and whether more remain. */
export interface MembersPage {
  readonly members: Member[];
  /** The range holds more members than `limit`. */
  readonly more: boolean;
}

/**
 * The members of one range of a room's partition (`sk BETWEEN`, see key-ranges.ts), at most
 * `limit` (or all with `Infinity`): the first page tells a small room from a big one without
 * reading the big one, and each fan-out worker reads its own range only.
 */
export async function roomMembersPage(
  deps: Store,
  room: string,
  range: KeyRange,
  limit: number,
): Promise<MembersPage> {
  const values: Item = { ':p': S(`room#${room}`) };
  let condition = 'pk = :p';
  if (range.from !== undefined && range.to !== undefined) {
    // BETWEEN includes `to`, which belongs to the next range: dropped below.
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
  const members: Member[] = [];
  let start: Item | undefined;
  const now = Math.floor(Date.now() / 1000);
  do {
    const out = await storeCall(
      'query',
      (db) =>
        db.send(
          new QueryCommand({
            TableName: deps.tables.connections,
            KeyConditionExpression: condition,
            ExpressionAttributeValues: values,
            ProjectionExpression: 'sk, memberName, messageKey, expiresAt',
            ExclusiveStartKey: start,
            ...(Number.isFinite(limit) ? { Limit: limit + 1 - members.length } : {}),
          }),
        ),
      deps.db,
    );
    for (const item of out.Items ?? []) {
      if (!isLive(item, now) || !inRange(str(item, 'sk') ?? '', range)) continue;
      members.push(memberFrom(item));
    }
    start = out.LastEvaluatedKey;
  } while (start && members.length <= limit);
  const more = members.length > limit;
  return { members: more ? members.slice(0, limit) : members, more };
}

/** The memberships of these sockets in a room that still exist (a consistent BatchGetItem, 100 keys a call). */
export async function roomMembersAmong(
  deps: Store,
  room: string,
  connectionIds: readonly string[],
): Promise<Member[]> {
  const ids = [...new Set(connectionIds)];
  const out: Member[] = [];
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < ids.length; i += 100) {
    const rows = await batchGet(
      deps.db,
      ids.slice(i, i + 100).map((id) => ({ table: deps.tables.connections, key: memberKey(room, id) })),
      { consistent: true },
    );
    for (const row of rows) if (isLive(row, now)) out.push(memberFrom(row));
  }
  return out;
}

/**
 * Adds a socket to a room: the membership item (what fan-out reads), then the room on
 * the connection row (what $disconnect reads), on condition that the row still exists and,
 * with `maxRooms`, that its room count is under the cap (so joins racing on one socket cannot
 * pass it together). In that order, a socket forgotten meanwhile either had the room on its
 * row (and its forgetting deletes the membership) or fails the condition, and then the
 * membership just written is deleted here. Resolves `gone` when the socket's row is gone and
 * `full` when the cap is reached.
 */
export async function joinRoom(
  deps: Store,
  c: Pick<Connection, 'connectionId' | 'username' | 'sub' | 'connectedAt' | 'messageKey'>,
  room: string,
  options: { maxRooms?: number; recheck?: () => Promise<boolean> } = {},
): Promise<'joined' | 'gone' | 'full' | 'refused'> {
  const capped = options.maxRooms !== undefined;
  await putMembership(deps, c, room);
  // `recheck` (a grant read again) runs once the membership is stored, beside the row's
  // update: a revocation that the recheck does not see has to find the membership.
  const recheck = options.recheck?.();
  // Settled here too, so a failing row update never leaves it unhandled.
  recheck?.catch(() => {});
  try {
    await storeCall(
      'join',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.connections,
            Key: connectionKey(c.connectionId),
            UpdateExpression: 'ADD rooms :r',
            ConditionExpression: capped
              ? 'attribute_exists(pk) AND (attribute_not_exists(rooms) OR size(rooms) < :max OR contains(rooms, :room))'
              : 'attribute_exists(pk)',
            ExpressionAttributeValues: {
              ':r': SS([room]),
              ...(capped ? { ':max': N(options.maxRooms ?? 0), ':room': S(room) } : {}),
            },
          }),
        ),
      deps.db,
    );
  } catch (err) {
    // Gone or full (the condition) or the store failed: either way the membership must not stay half-joined.
    await deleteMembership(deps, room, c.connectionId).catch(() => {});
    if (!isConditionFailure(err)) throw err;
    if (!capped) return 'gone';
    // Only on a refused capped join: a consistent read tells a full socket from a gone one.
    const [row] = await storeCall(
      'join',
      (db) =>
        batchGet(db, [{ table: deps.tables.connections, key: connectionKey(c.connectionId) }], {
          consistent: true,
        }),
      deps.db,
    );
    return row ? 'full' : 'gone';
  }
  if (recheck) {
    let allowed = false;
    try {
      allowed = await recheck;
    } finally {
      // Refused, or the recheck failed: fail closed, out of the room again.
      if (!allowed) await leaveRoom(deps, c.connectionId, room);
    }
    if (!allowed) return 'refused';
  }
  return 'joined';
}

export async function leaveRoom(deps: Store, connectionId: string, room: string): Promise<void> {
  await Promise.all([
    storeCall(
      'leave',
      (db) =>
        db.send(
          new DeleteItemCommand({ TableName: deps.tables.connections, Key: memberKey(room, connectionId) }),
        ),
      deps.db,
    ),
    storeCall(
      'leave',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.connections,
            Key: connectionKey(connectionId),
            UpdateExpression: 'DELETE rooms :r',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':r': SS([room]) },
          }),
        ),
      deps.db,
    ).catch((err: unknown) => {
      if (!isConditionFailure(err)) throw err;
    }),
  ]);
}

/** Moves a socket to a refreshed token: new expiry, jti and family. Fails if the row is gone. */
export async function updateConnectionToken(
  deps: Store,
  connectionId: string,
  token: { exp: number; iat: number; jti: string; sid: string; roles: readonly string[] },
): Promise<boolean> {
  try {
    await storeCall(
      'refresh connection',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.connections,
            Key: connectionKey(connectionId),
            UpdateExpression: 'SET exp = :exp, iat = :iat, jti = :jti, sid = :sid, #roles = :roles',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeNames: { '#roles': 'roles' },
            ExpressionAttributeValues: {
              ':exp': N(token.exp),
              ':iat': N(token.iat),
              ':jti': S(token.jti),
              ':sid': S(token.sid),
              ':roles': SS(token.roles.length > 0 ? token.roles : ['user']),
            },
          }),
        ),
      deps.db,
    );
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}

/** Deletes a socket's row and its memberships (25 per BatchWriteItem, retried while unprocessed). */
export async function deleteConnectionRows(
  deps: Store,
  connectionId: string,
  rooms: readonly string[],
  options: { keepConnection?: boolean } = {},
): Promise<void> {
  let requests: WriteRequest[] = [
    ...(options.keepConnection ? [] : [connectionKey(connectionId)]),
    ...rooms.map((r) => memberKey(r, connectionId)),
  ].map((Key) => ({
    DeleteRequest: { Key },
  }));
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

/** Every socket row (operators and the sweeper only: a Scan, never on a message path). */
export async function allConnections(
  deps: Store,
  options: { includeExpired?: boolean } = {},
): Promise<Connection[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const out = await storeCall(
      'scan connections',
      (db) =>
        db.send(
          new ScanCommand({
            TableName: deps.tables.connections,
            FilterExpression: 'sk = :conn',
            ExpressionAttributeValues: { ':conn': S('conn') },
            ExclusiveStartKey: start,
          }),
        ),
      deps.db,
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return (options.includeExpired ? items : live(items)).map(connectionFrom);
}

/**
 * Membership items whose socket row no longer exists (for the sweeper). With `youngerThanMs`,
 * memberships of sockets connected that recently are left out: `$connect` writes a socket's
 * `user:` membership beside its row, so for a moment the one may be stored without the other.
 */
export async function orphanMemberships(
  deps: Store,
  live: ReadonlySet<string>,
  options: { nowMs?: number; youngerThanMs?: number } = {},
): Promise<{ room: string; connectionId: string }[]> {
  const orphans: { room: string; connectionId: string }[] = [];
  const youngest =
    options.nowMs !== undefined && options.youngerThanMs !== undefined
      ? options.nowMs - options.youngerThanMs
      : Number.POSITIVE_INFINITY;
  let start: Item | undefined;
  do {
    const out = await storeCall(
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
    );
    for (const i of out.Items ?? []) {
      const connectionId = str(i, 'sk') ?? '';
      // A membership expires CONNECTION_TTL_S after its socket's connectedAt.
      const connectedAtMs = ((num(i, 'expiresAt') ?? 0) - CONNECTION_TTL_S) * 1000;
      if (connectedAtMs > youngest) continue;
      if (!live.has(connectionId)) orphans.push({ room: (str(i, 'pk') ?? '').slice(5), connectionId });
    }
    start = out.LastEvaluatedKey;
  } while (start);
  return orphans;
}

export async function deleteMembership(deps: Store, room: string, connectionId: string): Promise<void> {
  await storeCall(
    'delete membership',
    (db) =>
      db.send(
        new DeleteItemCommand({ TableName: deps.tables.connections, Key: memberKey(room, connectionId) }),
      ),
    deps.db,
  );
}

/**
 * Removes a socket exactly once: a DeleteItem returning the old row, so of all the
 * paths racing to clean up one socket ($disconnect, a server close, a 410, the
 * sweeper) only the one that really deleted it gets it back, and with it the rooms
 * whose memberships it must delete. With `ifJti`, only while the row still holds that
 * token: a socket refreshed since it was judged is not removed for its old token.
 */
export async function removeConnection(
  deps: Store,
  connectionId: string,
  options: { ifJti?: string } = {},
): Promise<Connection | undefined> {
  try {
    const out = await storeCall(
      'remove connection',
      (db) =>
        db.send(
          new DeleteItemCommand({
            TableName: deps.tables.connections,
            Key: connectionKey(connectionId),
            ReturnValues: 'ALL_OLD',
            ...(options.ifJti === undefined
              ? {}
              : {
                  ConditionExpression: 'jti = :jti',
                  ExpressionAttributeValues: { ':jti': S(options.ifJti) },
                }),
          }),
        ),
      deps.db,
    );
    return out.Attributes ? connectionFrom(out.Attributes) : undefined;
  } catch (err) {
    if (isConditionFailure(err)) return undefined;
    throw err;
  }
}

/**
 * Which of these sockets have no row now (a consistent BatchGetItem, 100 keys a call):
 * the fresh read that must come right before deleting anything of theirs, since a
 * socket connects and joins while others judge it.
 */
export async function connectionsWithoutRow(
  deps: Store,
  connectionIds: readonly string[],
): Promise<string[]> {
  const ids = [...new Set(connectionIds)];
  const missing: string[] = [];
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100);
    const rows = await batchGet(
      deps.db,
      chunk.map((id) => ({ table: deps.tables.connections, key: connectionKey(id) })),
      { consistent: true },
    );
    chunk.forEach((id, j) => {
      if (!rows[j]) missing.push(id);
    });
  }
  return missing;
}
