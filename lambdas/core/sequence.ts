import { randomBytes } from 'node:crypto';
import { GetItemCommand, UpdateItemCommand, type UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { type Item, isConditionFailure, N, num, S, storeCall, str } from './store.ts';

/** Where a room's numbering stands: its `epoch` and the latest `seq` it handed out. */
export interface RoomPosition {
  readonly epoch: string;
  readonly seq: number;
  /** When the epoch began, epoch seconds: no message of the epoch is older. */
  readonly startedAt: number;
}

type StoreDeps = Pick<Deps, 'db' | 'tables' | 'settings'>;

/**
 * The room's counter lives in its own history partition, under a sort key no message or
 * idempotency record can have (theirs start with `m#` and `k#`).
 */
const COUNTER_SK = '#seq';
const counterKey = (room: string): Item => ({ room: S(room), sk: S(COUNTER_SK) });

/** One conditional UpdateItem of the room's counter. */
function updateCounter(
  deps: StoreDeps,
  room: string,
  update: Omit<UpdateItemCommandInput, 'TableName' | 'Key'>,
) {
  return storeCall(
    'sequence',
    (db) =>
      db.send(new UpdateItemCommand({ TableName: deps.tables.messages, Key: counterKey(room), ...update })),
    deps.db,
  );
}

/**
 * A new epoch: the time it began (base 36, fixed width, so a later epoch sorts after an
 * earlier one and a room's history Query meets the current epoch's messages first) and
 * random bits, so two containers starting one at the same millisecond still differ.
 */
export function newEpoch(nowMs: number): string {
  return `${Math.floor(nowMs).toString(36).padStart(9, '0')}${randomBytes(4).toString('hex')}`;
}

/**
 * How long a counter outlives the room's last message: as long as its history, so that
 * once the counter has expired every message numbered under its epoch has expired too.
 * A room without history still numbers its messages, under an epoch that lasts a day.
 */
function counterLifetimeS(settings: Deps['settings']): number {
  return settings.historyTtlS > 0 ? settings.historyTtlS : 86_400;
}

function positionOf(item: Item | undefined): RoomPosition | undefined {
  const epoch = str(item, 'epoch');
  const seq = num(item, 'seq');
  if (epoch === undefined || seq === undefined) return undefined;
  return { epoch, seq, startedAt: num(item, 'startedAt') ?? 0 };
}

/**
 * Numbers one message of a room: one atomic UpdateItem that adds 1 to the room's `seq`
 * and returns it with the epoch. A counter that has expired (its history with it) starts
 * over under a new epoch; the condition decides, so two senders racing on an expired
 * counter start one epoch between them, not two.
 */
export async function nextSeq(deps: StoreDeps, room: string, nowMs: number): Promise<RoomPosition> {
  const nowSeconds = Math.floor(nowMs / 1000);
  const expiresAt = nowSeconds + counterLifetimeS(deps.settings);
  for (let attempt = 0; attempt < 4; attempt++) {
    const epoch = newEpoch(nowMs);
    try {
      const out = await updateCounter(deps, room, {
        UpdateExpression:
          'SET epoch = if_not_exists(epoch, :e), startedAt = if_not_exists(startedAt, :t), expiresAt = :x ADD seq :one',
        ConditionExpression: 'attribute_not_exists(seq) OR expiresAt > :now',
        ExpressionAttributeValues: {
          ':e': S(epoch),
          ':t': N(nowSeconds),
          ':x': N(expiresAt),
          ':one': N(1),
          ':now': N(nowSeconds),
        },
        ReturnValues: 'ALL_NEW',
      });
      const position = positionOf(out.Attributes);
      if (!position) throw new AppError('unavailable', 'the store is unavailable (sequence)');
      return position;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // The counter has expired: start the numbering over, unless another sender just did.
    const started = await restart(deps, room, epoch, 1, nowSeconds, expiresAt);
    if (started) return started;
  }
  throw new AppError('unavailable', 'the store is unavailable (sequence contention)');
}

/** Starts a room's numbering over at `seq` under `epoch`, if its counter is (still) missing or expired. */
async function restart(
  deps: StoreDeps,
  room: string,
  epoch: string,
  seq: number,
  nowSeconds: number,
  expiresAt: number,
): Promise<RoomPosition | undefined> {
  try {
    await updateCounter(deps, room, {
      UpdateExpression: 'SET epoch = :e, seq = :s, startedAt = :t, expiresAt = :x',
      ConditionExpression: 'attribute_not_exists(seq) OR expiresAt <= :now',
      ExpressionAttributeValues: {
        ':e': S(epoch),
        ':s': N(seq),
        ':t': N(nowSeconds),
        ':x': N(expiresAt),
        ':now': N(nowSeconds),
      },
    });
    return { epoch, seq, startedAt: nowSeconds };
  } catch (err) {
    if (isConditionFailure(err)) return undefined;
    throw err;
  }
}

/**
 * The room's position for a `joined` reply: one strongly consistent GetItem. A room that
 * has no live counter yet gets one at `seq` 0, so the epoch a joining client is told is the
 * one its room's next message is numbered under (one more write, once per epoch).
 */
export async function roomPosition(deps: StoreDeps, room: string, nowMs: number): Promise<RoomPosition> {
  const nowSeconds = Math.floor(nowMs / 1000);
  for (let attempt = 0; attempt < 4; attempt++) {
    const out = await storeCall(
      'sequence',
      (db) =>
        db.send(
          new GetItemCommand({
            TableName: deps.tables.messages,
            Key: counterKey(room),
            ConsistentRead: true,
          }),
        ),
      deps.db,
    );
    const position = positionOf(out.Item);
    if (position && (num(out.Item, 'expiresAt') ?? 0) > nowSeconds) return position;
    const started = await restart(
      deps,
      room,
      newEpoch(nowMs),
      0,
      nowSeconds,
      nowSeconds + counterLifetimeS(deps.settings),
    );
    if (started) return started;
  }
  throw new AppError('unavailable', 'the store is unavailable (sequence contention)');
}
