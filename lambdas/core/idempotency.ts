import { DeleteItemCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { type Item, isConditionFailure, isLive, N, num, S, storeCall, str } from './store.ts';

/** What a publication is known by: the reply to it and to every repeat of its key. */
export interface PublishedRef {
  readonly messageId: string;
  readonly epoch: string;
  readonly seq: number;
}

type StoreDeps = Pick<Deps, 'db' | 'tables' | 'settings'>;

/** The record a key is claimed by, the time the claim is judged at, and until when it holds (epoch seconds). */
interface Claim {
  readonly key: Item;
  readonly nowSeconds: number;
  readonly expiresAt: number;
}

/**
 * Records `ref` as the publication of `key` by `username` in `room`, for `historyTtlS`,
 * unless a live record of that key is there already: then that first publication is
 * returned and this one must be dropped. One conditional PutItem decides between two
 * copies racing, so exactly one of them is published. The record sits in the room's own
 * history partition (`k#<username>#<key>`), beside the messages it stands for.
 */
export async function claimIdempotencyKey(
  deps: StoreDeps,
  room: string,
  username: string,
  key: string,
  ref: PublishedRef,
  nowMs: number,
): Promise<PublishedRef | undefined> {
  const ttl = deps.settings.historyTtlS;
  // Without history there is no window to repeat a key in.
  if (ttl === 0) return undefined;
  const nowSeconds = Math.floor(nowMs / 1000);
  const claim: Claim = {
    key: { room: S(room), sk: S(`k#${username}#${key}`) },
    nowSeconds,
    expiresAt: nowSeconds + ttl,
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await putClaim(deps, claim, ref)) return undefined;
    const first = await readClaim(deps, claim);
    if (first) return first;
    // The record expired between the write and the read: claim it again.
  }
  throw new AppError('unavailable', 'the store is unavailable (idempotency contention)');
}

/** Writes the record unless a live one is there; false when there is one (the condition). */
async function putClaim(deps: StoreDeps, claim: Claim, ref: PublishedRef): Promise<boolean> {
  try {
    await storeCall(
      'idempotency',
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: deps.tables.messages,
            Item: {
              ...claim.key,
              messageId: S(ref.messageId),
              epoch: S(ref.epoch),
              seq: N(ref.seq),
              expiresAt: N(claim.expiresAt),
            },
            // An expired record may linger (TTL deletes late, dynalite never): it no longer counts.
            ConditionExpression: 'attribute_not_exists(sk) OR expiresAt <= :now',
            ExpressionAttributeValues: { ':now': N(claim.nowSeconds) },
          }),
        ),
      deps.db,
    );
    return true;
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    return false;
  }
}

/** The first publication of the key, if its record is (still) live and whole. */
async function readClaim(deps: StoreDeps, claim: Claim): Promise<PublishedRef | undefined> {
  const out = await storeCall(
    'idempotency',
    (db) =>
      db.send(new GetItemCommand({ TableName: deps.tables.messages, Key: claim.key, ConsistentRead: true })),
    deps.db,
  );
  const first = out.Item;
  const messageId = str(first, 'messageId');
  const epoch = str(first, 'epoch');
  const seq = num(first, 'seq');
  if (isLive(first, claim.nowSeconds) && messageId && epoch && seq !== undefined)
    return { messageId, epoch, seq };
  return undefined;
}

/**
 * Gives back a key claimed by the publication `messageId` that neither stored nor delivered
 * anything, so that the sender's resend publishes it instead of being told `duplicate`. The
 * condition leaves a record of another publication alone.
 */
export async function releaseIdempotencyKey(
  deps: Pick<Deps, 'db' | 'tables'>,
  room: string,
  username: string,
  key: string,
  messageId: string,
): Promise<void> {
  try {
    await storeCall(
      'idempotency',
      (db) =>
        db.send(
          new DeleteItemCommand({
            TableName: deps.tables.messages,
            Key: { room: S(room), sk: S(`k#${username}#${key}`) },
            ConditionExpression: 'messageId = :m',
            ExpressionAttributeValues: { ':m': S(messageId) },
          }),
        ),
      deps.db,
    );
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
  }
}
