import { randomUUID } from 'node:crypto';
import type { Deps } from './deps.ts';
import { queuesDelivery, type RoomDelivery, readRoomForFanout, storeAndDeliver } from './fanout.ts';
import { type ChatMessage, saveMessage } from './history.ts';
import { claimIdempotencyKey, type PublishedRef, releaseIdempotencyKey } from './idempotency.ts';
import type { MembersPage } from './room-members.ts';
import { nextSeq } from './sequence.ts';
import type { AckFrame } from './wire.ts';

/** One message to publish to a room's members. */
export interface Publication {
  readonly room: string;
  readonly from: string;
  readonly content: { readonly text?: string; readonly data?: unknown };
  readonly idempotencyKey?: string;
}

/**
 * A published message's reference, with how it went out: `delivered` (posts made) for a room
 * posted to directly, `queued` with its `jobs` for a big room whose fan-out workers post after the answer.
 */
export type Published = PublishedRef & {
  readonly duplicate: boolean;
  readonly delivered?: number;
  readonly queued?: true;
  readonly jobs?: number;
};

/** Without a `recheck`, nothing can stop a publication. */
export type PublishResult<Stop> = [Stop] extends [never] ? Published : Published | { readonly stopped: Stop };

/**
 * Numbers, stores and delivers one message. One round trip, in parallel: the room's first
 * page of members (a bounded Query that tells a small room from a big one), the atomic `seq`
 * update, and `recheck` (the sender's own rows, read again, when it posts over a socket). With an idempotency key, one more: the conditional
 * write that makes a repeat (or a racing copy) of the key a duplicate, answered with the
 * first one's reference and neither stored nor delivered again; its `seq` is skipped.
 * Then the delivery beside the history write (see `storeAndDeliver`): a small room is posted to
 * before the result; a big room is stored first and its delivery queued, so the sender's answer
 * never waits for the room.
 */
export async function publishMessage<Stop = never>(
  deps: Deps,
  p: Publication,
  recheck?: () => Promise<Stop | undefined>,
): Promise<PublishResult<Stop>> {
  const now = deps.clock.now();
  const [first, position, stopped] = await Promise.all([
    readRoomForFanout(deps, p.room),
    nextSeq(deps, p.room, now),
    recheck?.(),
  ]);
  if (stopped !== undefined) return { stopped } as PublishResult<Stop>;
  const message: ChatMessage = {
    type: 'message',
    room: p.room,
    from: p.from,
    ...p.content,
    ts: now,
    messageId: randomUUID(),
    epoch: position.epoch,
    seq: position.seq,
  };
  if (p.idempotencyKey !== undefined) {
    const claimed = await claimIdempotencyKey(deps, p.room, p.from, p.idempotencyKey, message, now);
    if (claimed) return { ...claimed, duplicate: true, delivered: 0 } as PublishResult<Stop>;
  }
  const delivery = await deliver(deps, p, first, message);
  return {
    messageId: message.messageId,
    epoch: message.epoch,
    seq: message.seq,
    duplicate: false,
    ...(delivery.mode === 'direct'
      ? { delivered: delivery.delivered }
      : { queued: true as const, jobs: delivery.jobs }),
  } as PublishResult<Stop>;
}

/** Stores and delivers a numbered message; a big room's key is given back when its store failed. */
async function deliver(
  deps: Deps,
  p: Publication,
  first: MembersPage,
  message: ChatMessage,
): Promise<RoomDelivery> {
  let storeFailed = false;
  const store = () =>
    saveMessage(deps, message).catch((err: unknown) => {
      storeFailed = true;
      throw err;
    });
  try {
    return await storeAndDeliver(deps, p.room, first, message, store);
  } catch (err) {
    // A big room's message is stored before its delivery is queued: when the store failed,
    // nothing went out, so the key is given back and the sender's resend publishes the message
    // (kept, it would answer that resend `duplicate` for a message nobody got or can recover).
    if (p.idempotencyKey !== undefined && storeFailed && queuesDelivery(deps, first))
      await releaseIdempotencyKey(deps, p.room, p.from, p.idempotencyKey, message.messageId).catch(() => {});
    throw err;
  }
}

/** A published message's reference as its sender reads it: an `ack` but for its `type` and `id`. */
export type PublishedReply = Required<Pick<AckFrame, 'messageId' | 'epoch' | 'seq'>> &
  Pick<AckFrame, 'duplicate'>;

/** The reference a sender is answered with (`ack`, `202`): `duplicate` only when true. */
export function publishedReply(r: PublishedRef & { duplicate: boolean }): PublishedReply {
  return { messageId: r.messageId, epoch: r.epoch, seq: r.seq, ...(r.duplicate ? { duplicate: true } : {}) };
}
