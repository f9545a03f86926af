import {
  DeleteItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { rolesOrDefault } from './roles.ts';
import {
  allPages,
  batchGetMany,
  type Item,
  isLive,
  N,
  num,
  S,
  SS,
  storeCall,
  str,
  strs,
  unlessConditionFails,
} from './store.ts';

/** API Gateway closes every socket after 2 hours; rows outlive that a little, then TTL removes what $disconnect missed. */
export const SOCKET_TTL_S = 2 * 3600 + 15 * 60;

/** One open socket, as its row stores it at `$connect` and `refresh_token` keeps it current. */
export interface SocketRow {
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

type StoreDeps = Pick<Deps, 'db' | 'tables'>;

export const socketRowKey = (connectionId: string): Item => ({
  pk: S(`conn#${connectionId}`),
  sk: S('conn'),
});

export function socketRowFrom(item: Item): SocketRow {
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

/**
 * The items still in force. DynamoDB deletes rows past their TTL late and dynalite never
 * does; a socket's TTLs count from `connectedAt`, API Gateway's clock, so wall time decides.
 */
export function liveItems(items: readonly Item[]): Item[] {
  const now = Math.floor(Date.now() / 1000);
  return items.filter((i) => isLive(i, now));
}

export async function putSocketRow(deps: StoreDeps, c: SocketRow): Promise<void> {
  await storeCall(
    'put connection',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.connections,
          Item: {
            ...socketRowKey(c.connectionId),
            connectionId: S(c.connectionId),
            sub: S(c.sub),
            username: S(c.username),
            roles: SS(rolesOrDefault(c.roles)),
            jti: S(c.jti),
            sid: S(c.sid),
            exp: N(c.exp),
            iat: N(c.iat),
            ip: S(c.ip),
            connectedAt: N(c.connectedAt),
            expiresAt: N(Math.floor(c.connectedAt / 1000) + SOCKET_TTL_S),
            ...(c.messageKey ? { messageKey: S(c.messageKey) } : {}),
            ...(c.rooms.length > 0 ? { rooms: SS(c.rooms) } : {}),
          },
        }),
      ),
    deps.db,
  );
}

/** Every live item of one Query on the connections table, all pages. */
export async function queryLive(
  deps: StoreDeps,
  input: Omit<ConstructorParameters<typeof QueryCommand>[0], 'TableName' | 'ExclusiveStartKey'>,
): Promise<Item[]> {
  const items = await allPages((start) =>
    storeCall(
      'query',
      (db) =>
        db.send(new QueryCommand({ ...input, TableName: deps.tables.connections, ExclusiveStartKey: start })),
      deps.db,
    ),
  );
  return liveItems(items);
}

/** The sockets of one user (GSI `byUser`). */
export async function socketsOfUser(deps: StoreDeps, username: string): Promise<SocketRow[]> {
  const items = await queryLive(deps, {
    IndexName: 'byUser',
    KeyConditionExpression: 'username = :u',
    ExpressionAttributeValues: { ':u': S(username) },
  });
  return items.map(socketRowFrom);
}

/** The socket ids opened with tokens of one refresh family (GSI `bySid`). */
export async function socketIdsOfSession(deps: StoreDeps, sid: string): Promise<string[]> {
  const items = await queryLive(deps, {
    IndexName: 'bySid',
    KeyConditionExpression: 'sid = :s',
    ExpressionAttributeValues: { ':s': S(sid) },
  });
  return items.flatMap((i) => {
    const pk = str(i, 'pk');
    return pk?.startsWith('conn#') ? [pk.slice(5)] : [];
  });
}

/** Moves a socket to a refreshed token: new expiry, jti and family. False if the row is gone. */
export async function updateSocketToken(
  deps: StoreDeps,
  connectionId: string,
  token: { exp: number; iat: number; jti: string; sid: string; roles: readonly string[] },
): Promise<boolean> {
  const updated = await unlessConditionFails(
    storeCall(
      'refresh connection',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.connections,
            Key: socketRowKey(connectionId),
            UpdateExpression: 'SET exp = :exp, iat = :iat, jti = :jti, sid = :sid, #roles = :roles',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeNames: { '#roles': 'roles' },
            ExpressionAttributeValues: {
              ':exp': N(token.exp),
              ':iat': N(token.iat),
              ':jti': S(token.jti),
              ':sid': S(token.sid),
              ':roles': SS(rolesOrDefault(token.roles)),
            },
          }),
        ),
      deps.db,
    ),
  );
  return updated !== undefined;
}

/**
 * Deletes a socket's row exactly once: a DeleteItem returning the old row, so of all the
 * paths racing to forget one socket ($disconnect, a server close, a 410, the sweeper)
 * only the one that really deleted it gets it back, and with it the rooms whose
 * memberships it must delete. With `ifJti`, only while the row still holds that token: a
 * socket refreshed since it was judged is not forgotten for its old token.
 */
export async function deleteSocketRow(
  deps: StoreDeps,
  connectionId: string,
  options: { ifJti?: string } = {},
): Promise<SocketRow | undefined> {
  const out = await unlessConditionFails(
    storeCall(
      'remove connection',
      (db) =>
        db.send(
          new DeleteItemCommand({
            TableName: deps.tables.connections,
            Key: socketRowKey(connectionId),
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
    ),
  );
  return out?.Attributes ? socketRowFrom(out.Attributes) : undefined;
}

/** Every socket row (operators and the sweeper only: a Scan, never on a message path). */
export async function allSocketRows(
  deps: StoreDeps,
  options: { includeExpired?: boolean } = {},
): Promise<SocketRow[]> {
  const items = await allPages((start) =>
    storeCall(
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
    ),
  );
  return (options.includeExpired ? items : liveItems(items)).map(socketRowFrom);
}

/**
 * Which of these sockets have no row now (a consistent BatchGetItem, 100 keys a call):
 * the fresh read that must come right before deleting anything of theirs, since a
 * socket connects and joins while others judge it.
 */
export async function socketsWithoutRow(
  deps: StoreDeps,
  connectionIds: readonly string[],
): Promise<string[]> {
  const ids = [...new Set(connectionIds)];
  const rows = await batchGetMany(deps.db, deps.tables.connections, ids.map(socketRowKey), {
    consistent: true,
  });
  return ids.filter((_, j) => !rows[j]);
}
