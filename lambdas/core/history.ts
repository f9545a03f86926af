import { PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import type { RoomPosition } from './sequence.ts';
import { type Item, isLive, N, num, S, storeCall, str } from './store.ts';
import type { ChatMessage } from './wire.ts';

/** A chat message as stored and delivered (the wire's): its text, its data (any JSON), or both. */
export type { ChatMessage };

type StoreDeps = Pick<Deps, 'db' | 'tables' | 'settings'>;

/** Widest `seq` the sort key holds in order (far beyond any room's lifetime). */
const SEQ_DIGITS = 15;

/**
 * Messages sort by epoch (time-ordered, see sequence.ts), then `seq`: `m#<epoch>#<seq>`.
 * So the room's latest messages are the partition's last `m#` items, and the messages
 * after one `seq` of an epoch are one key range: a Query, never a Scan.
 */
export function messageSk(epoch: string, seq: number): string {
  return `m#${epoch}#${String(seq).padStart(SEQ_DIGITS, '0')}`;
}

/** Keeps a message in its room's history for `historyTtlS` (nothing is kept when that is 0). */
export async function saveMessage(deps: StoreDeps, m: ChatMessage): Promise<void> {
  if (deps.settings.historyTtlS === 0) return;
  await storeCall(
    'save message',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.messages,
          Item: {
            room: S(m.room),
            sk: S(messageSk(m.epoch, m.seq)),
            from: S(m.from),
            ...(m.text === undefined ? {} : { text: S(m.text) }),
            // Kept as JSON text: a DynamoDB map cannot hold every JSON value (empty strings in sets, nesting depth).
            ...(m.data === undefined ? {} : { data: S(JSON.stringify(m.data)) }),
            ts: N(m.ts),
            messageId: S(m.messageId),
            epoch: S(m.epoch),
            seq: N(m.seq),
            expiresAt: N(Math.floor(m.ts / 1000) + deps.settings.historyTtlS),
          },
        }),
      ),
    deps.db,
  );
}

function messageFrom(room: string, i: Item): ChatMessage {
  const text = str(i, 'text');
  const data = str(i, 'data');
  return {
    type: 'message',
    room,
    from: str(i, 'from') ?? '',
    ...(text === undefined ? {} : { text }),
    ...(data === undefined ? {} : { data: JSON.parse(data) as unknown }),
    ts: num(i, 'ts') ?? 0,
    messageId: str(i, 'messageId') ?? '',
    epoch: str(i, 'epoch') ?? '',
    seq: num(i, 'seq') ?? 0,
  };
}

/** The latest `limit` live messages of a room, oldest first (one Query, newest first, reversed). */
export async function recentMessages(
  deps: StoreDeps,
  room: string,
  limit: number,
  nowSeconds: number,
): Promise<ChatMessage[]> {
  if (limit <= 0 || deps.settings.historyTtlS === 0) return [];
  const out = await storeCall(
    'history',
    (db) =>
      db.send(
        new QueryCommand({
          TableName: deps.tables.messages,
          KeyConditionExpression: 'room = :r AND begins_with(sk, :m)',
          ExpressionAttributeValues: { ':r': S(room), ':m': S('m#') },
          ScanIndexForward: false,
          Limit: limit,
        }),
      ),
    deps.db,
  );
  return (out.Items ?? [])
    .filter((i) => isLive(i, nowSeconds))
    .reverse()
    .map((i) => messageFrom(room, i));
}

/** What the history holds from one position on: see `messagesSince`. */
export interface MessagesSince {
  /** The message at `since.seq` itself is still held (not expired). */
  readonly anchored: boolean;
  /** Every held message after `since.seq` in its epoch, oldest first, up to the limit. */
  readonly messages: ChatMessage[];
  /** More than `limit` messages follow `since.seq`, or one of them has expired. */
  readonly incomplete: boolean;
}

/**
 * The messages of `since.epoch` from `since.seq` on, oldest first: one strongly
 * consistent Query over one key range, reading at most `limit` + 2 items (the message at
 * `since.seq`, `limit` after it, and one more to tell that more follow). When no message
 * holds `since.seq` (numbers may be skipped), a second Query of one item looks for the
 * latest one before it: any live message at or before `since.seq` proves that none after it
 * has expired.
 */
export async function messagesSince(
  deps: StoreDeps,
  room: string,
  since: Pick<RoomPosition, 'epoch' | 'seq'>,
  limit: number,
  nowSeconds: number,
): Promise<MessagesSince> {
  const query = (from: string, to: string, forward: boolean, max: number) =>
    storeCall(
      'history',
      (db) =>
        db.send(
          new QueryCommand({
            TableName: deps.tables.messages,
            KeyConditionExpression: 'room = :r AND sk BETWEEN :from AND :to',
            ExpressionAttributeValues: { ':r': S(room), ':from': S(from), ':to': S(to) },
            ScanIndexForward: forward,
            ConsistentRead: true,
            Limit: max,
          }),
        ),
      deps.db,
    );
  const at = messageSk(since.epoch, since.seq);
  const items = (await query(at, `m#${since.epoch}#~`, true, limit + 2)).Items ?? [];
  const after = items.filter((i) => (num(i, 'seq') ?? 0) > since.seq);
  const incomplete = after.length > limit || after.some((i) => !isLive(i, nowSeconds));
  const first = items[0];
  let anchored = first !== undefined && num(first, 'seq') === since.seq && isLive(first, nowSeconds);
  if (!anchored && !incomplete && since.seq > 0) {
    const before = (await query(messageSk(since.epoch, 0), at, false, 1)).Items ?? [];
    anchored = before[0] !== undefined && isLive(before[0], nowSeconds);
  }
  return { anchored, messages: after.slice(0, limit).map((i) => messageFrom(room, i)), incomplete };
}
