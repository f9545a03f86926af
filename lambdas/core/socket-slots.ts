import { GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { SOCKET_TTL_S } from './socket-rows.ts';
import { type Item, N, S, SS, storeCall, strs, unlessConditionFails } from './store.ts';

// `maxConnectionsPerUser` is held by one item per user whose string set has one entry per
// socket. Taking a slot is a single conditional ADD on that item, so DynamoDB serializes
// racing handshakes and at most N of them ever pass, however they overlap. Counting the
// user's rows instead cannot hold: a row written a moment later is not seen.

type StoreDeps = Pick<Deps, 'db' | 'tables'>;

/** One socket, as its slot entry names it. */
export interface SlotHolder {
  readonly username: string;
  readonly connectionId: string;
  /** API Gateway's `connectedAt` (epoch ms). */
  readonly connectedAt: number;
}

const slotsKey = (username: string): Item => ({ pk: S(`slots#${username}`), sk: S('slots') });
const entryOf = (s: Pick<SlotHolder, 'connectionId' | 'connectedAt'>) => `${s.connectedAt}#${s.connectionId}`;

function holderOf(username: string, entry: string): SlotHolder | undefined {
  const at = entry.indexOf('#');
  const connectedAt = Number(entry.slice(0, at));
  if (at < 1 || !Number.isFinite(connectedAt)) return undefined;
  return { username, connectionId: entry.slice(at + 1), connectedAt };
}

/** Takes one of the user's `max` slots for a socket; false when all are held. */
export async function takeSlot(deps: StoreDeps, s: SlotHolder, max: number): Promise<boolean> {
  const taken = await unlessConditionFails(
    storeCall(
      'take socket slot',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.connections,
            Key: slotsKey(s.username),
            UpdateExpression: 'ADD socks :e SET expiresAt = :exp',
            ConditionExpression: 'attribute_not_exists(socks) OR size(socks) < :max OR contains(socks, :one)',
            ExpressionAttributeValues: {
              ':e': SS([entryOf(s)]),
              ':one': S(entryOf(s)),
              ':max': N(max),
              // Every socket it names is gone once the newest one would be.
              ':exp': N(Math.floor(s.connectedAt / 1000) + SOCKET_TTL_S),
            },
          }),
        ),
      deps.db,
    ),
  );
  return taken !== undefined;
}

/** Gives slots back (a socket forgotten, or found stale). Idempotent. */
export async function releaseSlots(
  deps: StoreDeps,
  username: string,
  holders: readonly Pick<SlotHolder, 'connectionId' | 'connectedAt'>[],
): Promise<void> {
  if (holders.length === 0) return;
  await storeCall(
    'release socket slot',
    (db) =>
      db.send(
        new UpdateItemCommand({
          TableName: deps.tables.connections,
          Key: slotsKey(username),
          UpdateExpression: 'DELETE socks :e',
          ExpressionAttributeValues: { ':e': SS(holders.map(entryOf)) },
        }),
      ),
    deps.db,
  );
}

/** The sockets holding a user's slots (a strongly consistent read). */
export async function slotHolders(deps: StoreDeps, username: string): Promise<SlotHolder[]> {
  const out = await storeCall(
    'read socket slots',
    (db) =>
      db.send(
        new GetItemCommand({
          TableName: deps.tables.connections,
          Key: slotsKey(username),
          ConsistentRead: true,
        }),
      ),
    deps.db,
  );
  // Past its expiresAt the item names only sockets over API Gateway's 2-hour limit: the
  // caller finds them stale by their age.
  return strs(out.Item, 'socks').flatMap((e) => holderOf(username, e) ?? []);
}
