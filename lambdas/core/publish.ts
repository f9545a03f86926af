import { randomUUID } from 'node:crypto';
import { roomMembers } from './connections.ts';
import type { Deps } from './deps.ts';
import { type ChatMessage, saveMessage } from './history.ts';
import { claimIdempotencyKey, type PublishedRef } from './idempotency.ts';
import { nextSeq } from './sequence.ts';
import { type CloseReason, sendToConnections } from './sockets.ts';

/** One message to publish to a room's members. */
export interface Publication {
  readonly room: string;
  readonly from: string;
  readonly content: { readonly text?: string; readonly data?: unknown };
  readonly idempotencyKey?: string;
}

export type PublishResult =
  | (PublishedRef & { readonly duplicate: boolean; readonly delivered: number })
  | { readonly stopped: CloseReason };

/**
 * Numbers, stores and delivers one message. One round trip, in parallel: the room's
 * members (a Query), the atomic `seq` update, and `recheck` (the sender's own rows, read
 * again, when it posts over a socket). With an idempotency key, one more: the conditional
 * write that makes a repeat (or a racing copy) of the key a duplicate, answered with the
 * first one's reference and neither stored nor delivered again; its `seq` is skipped.
 * Then the delivery beside the history write; the result comes once both are done.
 */
export async function publishMessage(
  deps: Deps,
  p: Publication,
  recheck?: () => Promise<CloseReason | undefined>,
): Promise<PublishResult> {
  const now = deps.clock.now();
  const [members, position, stopped] = await Promise.all([
    roomMembers(deps, p.room),
    nextSeq(deps, p.room, now),
    recheck?.(),
  ]);
  if (stopped) return { stopped };
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
    const first = await claimIdempotencyKey(deps, p.room, p.from, p.idempotencyKey, message, now);
    if (first) return { ...first, duplicate: true, delivered: 0 };
  }
  const [delivery] = await Promise.all([
    sendToConnections(deps, members, message),
    saveMessage(deps, message),
  ]);
  return {
    messageId: message.messageId,
    epoch: message.epoch,
    seq: message.seq,
    duplicate: false,
    delivered: delivery.delivered,
  };
}

/** The reference a sender is answered with (`ack`, `202`): `duplicate` only when true. */
export function publishedReply(r: PublishedRef & { duplicate: boolean }): Record<string, unknown> {
  return { messageId: r.messageId, epoch: r.epoch, seq: r.seq, ...(r.duplicate ? { duplicate: true } : {}) };
}
