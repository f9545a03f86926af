import type { Deps } from './deps.ts';
import { encryptText } from './frame-crypto.ts';
import { deleteMemberships } from './memberships.ts';
import { isRetryable, POST_RETRY, RetriesExhausted, withRetries } from './post-retry.ts';
import { roomMembers } from './room-members.ts';
import { userRoom } from './rooms.ts';
import { deleteSocketRow, type SocketRow, socketIdsOfSession, socketsOfUser } from './socket-rows.ts';
import { releaseSlots } from './socket-slots.ts';
import type { ClosingFrame, ClosingReason, ServerFrame } from './wire.ts';

/** Why the server closes a socket (the `closing` frame's `reason`). */
export type CloseReason = ClosingReason;

/** Parallel `@connections` calls per fan-out: enough to hide latency, few enough to stay under API limits. */
export const FANOUT_CONCURRENCY = 16;

type SocketDeps = Pick<Deps, 'db' | 'tables' | 'api' | 'audit'>;

async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Forgets a socket (closed, gone with 410, or swept): deletes its row, memberships and
 * slot, and tells the rest of each of its rooms `member_left`. Safe to race: only the
 * call that actually deleted the row sends anything.
 */
export async function forgetSocket(deps: SocketDeps, connectionId: string): Promise<void> {
  const deleted = await deleteSocketRow(deps, connectionId);
  if (deleted) await forgetDeleted(deps, deleted);
}

/** The rest of forgetting, for the one call whose DeleteItem returned the row. */
async function forgetDeleted(deps: SocketDeps, deleted: SocketRow): Promise<void> {
  const { connectionId } = deleted;
  // Memberships and the socket's slot go, and each room is read, in the same round trip. A
  // `user:` room is joined without a word at $connect, and so left without one.
  const told = deleted.rooms.filter((room) => room !== userRoom(deleted.username));
  const [, , rooms] = await Promise.all([
    deleteMemberships(deps, connectionId, deleted.rooms),
    releaseSlots(deps, deleted.username, [deleted]),
    Promise.all(told.map(async (room) => ({ room, members: await roomMembers(deps, room) }))),
  ]);
  await Promise.all(
    rooms.map(async ({ room, members }) => {
      const others = members.filter((m) => m.connectionId !== connectionId);
      if (others.length === 0) return;
      await sendToSockets(deps, others, { type: 'member_left', room, username: deleted.username });
    }),
  );
}

export interface Delivery {
  readonly delivered: number;
  readonly gone: readonly string[];
  /** Sockets that still failed after the retries (429, 5xx) or failed for good. */
  readonly failed: number;
  /** Retries spent across all sockets. */
  readonly retries: number;
  /** The failed sockets whose last answer may change if tried later (429, 5xx, no answer). */
  readonly retryable: readonly string[];
}

/** A socket to deliver to; with a session key, the frame goes encrypted. */
export interface Recipient {
  readonly connectionId: string;
  readonly messageKey?: string | undefined;
}

/**
 * Sends one payload to each socket, a bounded number at a time (encrypted for sockets
 * whose session has a message key). Throttled and failed posts are retried (see
 * post-retry.ts); sockets that answer 410 are closed and forgotten, once. What still fails is
 * counted, not thrown, so one bad socket never stops a room's delivery, and reported
 * in one `delivery.failed` line per payload.
 */
export async function sendToSockets(
  deps: SocketDeps,
  recipients: readonly Recipient[],
  payload: ServerFrame,
  options: { quiet?: boolean } = {},
): Promise<Delivery> {
  const api = deps.api;
  if (!api) throw new Error('this function cannot post to sockets');
  const plain = JSON.stringify(payload);
  const deadline = Date.now() + POST_RETRY.budgetMs;
  const tally: Tally = { delivered: 0, failed: 0, retries: 0, lastError: undefined, gone: [], retryable: [] };
  const unique = [...new Map(recipients.map((r) => [r.connectionId, r])).values()];
  await mapLimit(unique, FANOUT_CONCURRENCY, async ({ connectionId: id, messageKey }) => {
    try {
      const data = messageKey ? JSON.stringify(await encryptText(messageKey, plain)) : plain;
      const sent = await withRetries(() => api.post(id, data), { deadline });
      tally.retries += sent.retries;
      if (sent.value) tally.delivered++;
      else tally.gone.push(id);
    } catch (err) {
      countFailure(tally, id, err);
    }
  });
  // `quiet`: the caller tries the failed sockets again later and reports what still fails then.
  if (tally.failed > 0 && !options.quiet) reportFailures(deps, payload, unique.length, tally);
  await forgetGone(deps, api, tally.gone);
  const { delivered, gone, failed, retries, retryable } = tally;
  return { delivered, gone, failed, retries, retryable };
}

/** What one `sendToSockets` counts as its posts settle. */
interface Tally {
  delivered: number;
  failed: number;
  retries: number;
  lastError: string | undefined;
  readonly gone: string[];
  readonly retryable: string[];
}

function countFailure(tally: Tally, id: string, err: unknown): void {
  tally.failed++;
  if (err instanceof RetriesExhausted) tally.retries += err.retries;
  if (isRetryable(err instanceof RetriesExhausted ? err.last : err)) tally.retryable.push(id);
  tally.lastError = (err as Error).name;
}

/** One `delivery.failed` line for the payload: its type and room, and the counts. */
function reportFailures(deps: SocketDeps, payload: unknown, count: number, tally: Tally): void {
  const { type, room } = (typeof payload === 'object' && payload !== null ? payload : {}) as {
    type?: unknown;
    room?: unknown;
  };
  deps.audit('warn', 'delivery.failed', {
    reason: typeof type === 'string' ? type : undefined,
    room: typeof room === 'string' ? room : undefined,
    count,
    delivered: tally.delivered,
    failed: tally.failed,
    retries: tally.retries,
    errorName: tally.lastError,
  });
}

/** 410 means gone; the DELETE makes sure, so no socket the rows no longer serve stays open and deaf. */
async function forgetGone(
  deps: SocketDeps,
  api: NonNullable<SocketDeps['api']>,
  gone: readonly string[],
): Promise<void> {
  await Promise.all(
    gone.map(async (id) => {
      await api.close(id).catch(() => false);
      await forgetSocket(deps, id).catch(() => {});
    }),
  );
}

/**
 * Closes one socket from the server: `{"type":"closing","reason"}` first (API Gateway's
 * DELETE carries no close code or reason), then DeleteConnection, then the rows.
 * With `ifJti` (the sweeper, which judged a row read earlier) the row is deleted first,
 * on condition that it still holds that token, and nothing is sent when it does not:
 * the socket refreshed its token meanwhile. Resolves whether this call closed it.
 */
export async function closeSocket(
  deps: SocketDeps,
  c: { connectionId: string; username?: string },
  reason: CloseReason,
  options: { ifJti?: string } = {},
): Promise<boolean> {
  const api = deps.api;
  if (!api) throw new Error('this function cannot close sockets');
  let deleted: SocketRow | undefined;
  if (options.ifJti !== undefined) {
    deleted = await deleteSocketRow(deps, c.connectionId, { ifJti: options.ifJti });
    if (!deleted) return false;
  }
  try {
    // The `closing` frame is a courtesy; the DELETE is not: a socket whose rows go is never left open.
    const open = await api
      .post(c.connectionId, JSON.stringify({ type: 'closing', reason } satisfies ClosingFrame))
      .catch(() => true);
    if (open) await api.close(c.connectionId);
  } finally {
    if (deleted) await forgetDeleted(deps, deleted);
    else await forgetSocket(deps, c.connectionId);
  }
  deps.audit('info', 'ws.closed_by_server', { connectionId: c.connectionId, username: c.username, reason });
  return true;
}

async function closeEach(
  deps: SocketDeps,
  targets: { connectionId: string; username?: string }[],
  reason: CloseReason,
): Promise<number> {
  let closed = 0;
  await mapLimit(targets, FANOUT_CONCURRENCY, async (t) => {
    try {
      await closeSocket(deps, t, reason);
      closed++;
    } catch (err) {
      deps.audit('warn', 'error', {
        reason: 'close_failed',
        connectionId: t.connectionId,
        errorName: (err as Error).name,
      });
    }
  });
  return closed;
}

/** Closes every socket of a user (GSI `byUser`). No-op where the function may not manage sockets. */
export async function closeUserSockets(
  deps: SocketDeps,
  username: string,
  reason: CloseReason,
): Promise<number> {
  if (!deps.api) return 0;
  return closeEach(deps, await socketsOfUser(deps, username), reason);
}

/** Closes every socket opened with a token of one refresh family (GSI `bySid`). */
export async function closeSessionSockets(
  deps: SocketDeps,
  sid: string,
  reason: CloseReason,
): Promise<number> {
  if (!deps.api) return 0;
  const ids = await socketIdsOfSession(deps, sid);
  return closeEach(
    deps,
    ids.map((connectionId) => ({ connectionId })),
    reason,
  );
}
