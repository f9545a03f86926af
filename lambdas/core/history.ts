import { PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { isLive, N, num, S, storeCall, str } from './store.ts';

export interface ChatMessage {
  readonly type: 'message';
  readonly room: string;
  readonly from: string;
  readonly text?: string;
  /** Any JSON value the sender attached. */
  readonly data?: unknown;
  readonly ts: number;
  readonly messageId: string;
}

type Store = Pick<Deps, 'db' | 'tables' | 'settings'>;

// Orders messages saved in the same millisecond by one container as they were sent
// (ties across containers fall back to the random id).
let sequence = 0;
function nextSequence(): string {
  sequence = (sequence + 1) % 1e9;
  return String(sequence).padStart(9, '0');
}

/** Keeps a message in its room's history for `historyTtlS` (nothing is kept when that is 0). */
export async function saveMessage(deps: Store, m: ChatMessage): Promise<void> {
  if (deps.settings.historyTtlS === 0) return;
  await storeCall(
    'save message',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.messages,
          Item: {
            room: S(m.room),
            sk: S(`${String(m.ts).padStart(15, '0')}#${nextSequence()}#${m.messageId}`),
            from: S(m.from),
            ...(m.text === undefined ? {} : { text: S(m.text) }),
            // Kept as JSON text: a DynamoDB map cannot hold every JSON value (empty strings in sets, nesting depth).
            ...(m.data === undefined ? {} : { data: S(JSON.stringify(m.data)) }),
            ts: N(m.ts),
            messageId: S(m.messageId),
            expiresAt: N(Math.floor(m.ts / 1000) + deps.settings.historyTtlS),
          },
        }),
      ),
    deps.db,
  );
}

/** The latest `limit` live messages of a room, oldest first (one Query, newest first, reversed). */
export async function recentMessages(
  deps: Store,
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
          KeyConditionExpression: 'room = :r',
          ExpressionAttributeValues: { ':r': S(room) },
          ScanIndexForward: false,
          Limit: limit,
        }),
      ),
    deps.db,
  );
  return (out.Items ?? [])
    .filter((i) => isLive(i, nowSeconds))
    .reverse()
    .map((i) => {
      const text = str(i, 'text');
      const data = str(i, 'data');
      return {
        type: 'message' as const,
        room,
        from: str(i, 'from') ?? '',
        ...(text === undefined ? {} : { text }),
        ...(data === undefined ? {} : { data: JSON.parse(data) as unknown }),
        ts: num(i, 'ts') ?? 0,
        messageId: str(i, 'messageId') ?? '',
      };
    });
}
